//! Redis through Sentinel: a primary, a replica and three sentinels the
//! test starts (`down-after-milliseconds` 1000). The primary is SIGKILLed
//! under a load of logins, `/profile` and logouts; service resumes by
//! itself, and no credential whose logout was acknowledged is ever served
//! again. With `redis_wait_replicas = 1` an acknowledged logout survives
//! the failover.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;
use tessera_testkit::RedisSentinels;

use crate::helpers::*;

/// What the README states: service is back within this of the kill (with
/// `down-after-milliseconds` 1000; measured 2–4 s, see `bench/failover.sh`).
const RESUMES_WITHIN: Duration = Duration::from_secs(10);

fn through_sentinels(sentinels: &RedisSentinels, wait_replicas: u32) -> Options {
    Options::default()
        .env("TESSERA_STORE", "redis")
        .env("TESSERA_REDIS_URL", sentinels.url())
        .env("TESSERA_REDIS_TIMEOUT", 500)
        .env("TESSERA_REDIS_WAIT_REPLICAS", wait_replicas)
        // One client logs in again and again, and a login answered 503
        // while Redis is away keeps the throttle token it took.
        .env("TESSERA_LOGIN_IP_BURST", 1_000_000)
        .env("TESSERA_LOGIN_IP_PER_MINUTE", 1_000_000)
        .env("TESSERA_LOGIN_ACCOUNT_BURST", 1_000_000)
        .env("TESSERA_LOGIN_ACCOUNT_PER_MINUTE", 1_000_000)
}

/// What the load saw.
#[derive(Default)]
struct Seen {
    /// Start times of logins answered 200.
    logins_ok: Vec<Instant>,
    /// Start times of `/profile`s answered 200.
    profiles_ok: Vec<Instant>,
    /// Cookies whose logout was answered 200.
    revoked: Vec<String>,
    /// A revoked cookie answered 200: must stay empty.
    served_after_revocation: Vec<String>,
    /// Statuses other than 200/401/503 (must stay empty).
    unexpected: Vec<(String, StatusCode)>,
}

/// One simulated user: login, a few `/profile`s, logout, and the revoked
/// cookie tried once more; again and again until `until`.
async fn user_loop(server: Arc<Server>, seen: Arc<Mutex<Seen>>, until: Instant) {
    while Instant::now() < until {
        let started = Instant::now();
        let response = server.login_response("alice@example.com", PASSWORD).await;
        let status = response.status();
        let cookie = match status {
            StatusCode::OK => {
                seen.lock().unwrap().logins_ok.push(started);
                session_cookie(response.headers()).expect("a login sets a cookie")
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            other => {
                seen.lock()
                    .unwrap()
                    .unexpected
                    .push(("login".into(), other));
                continue;
            }
        };
        for _ in 0..5 {
            let started = Instant::now();
            match server.get("/profile", Some(&cookie)).await.status() {
                StatusCode::OK => seen.lock().unwrap().profiles_ok.push(started),
                StatusCode::SERVICE_UNAVAILABLE | StatusCode::UNAUTHORIZED => {}
                other => seen
                    .lock()
                    .unwrap()
                    .unexpected
                    .push(("profile".into(), other)),
            }
        }
        let logout = server
            .send_json(Method::POST, "/logout", Some(&cookie), json!({}))
            .await
            .status();
        match logout {
            StatusCode::OK => {
                let again = server.get("/profile", Some(&cookie)).await.status();
                let mut seen = seen.lock().unwrap();
                if again == StatusCode::OK {
                    seen.served_after_revocation.push(cookie.clone());
                }
                seen.revoked.push(cookie);
            }
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::UNAUTHORIZED => {}
            other => seen
                .lock()
                .unwrap()
                .unexpected
                .push(("logout".into(), other)),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_resumes_by_itself_after_the_primary_is_killed_under_load() {
    let mut sentinels = RedisSentinels::start(1, Duration::from_millis(1000));
    let server = Arc::new(Server::start_with(through_sentinels(&sentinels, 0)));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let kill_after = Duration::from_secs(3);
    let until = Instant::now() + kill_after + Duration::from_secs(20);
    let users: Vec<_> = (0..6)
        .map(|_| tokio::spawn(user_loop(Arc::clone(&server), Arc::clone(&seen), until)))
        .collect();
    tokio::time::sleep(kill_after).await;
    let old = sentinels.kill_primary();
    let killed = Instant::now();
    let sentinels = Arc::new(sentinels);
    let promoted = tokio::task::spawn_blocking({
        let sentinels = Arc::clone(&sentinels);
        move || sentinels.wait_for_failover(old, Duration::from_secs(30))
    })
    .await
    .unwrap();
    let (_, promoted_at) = promoted.expect("the sentinels promoted the replica");
    for user in users {
        user.await.unwrap();
    }
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    assert!(
        seen.unexpected.is_empty(),
        "{} unexpected answers, first {:?}",
        seen.unexpected.len(),
        seen.unexpected.first()
    );
    assert!(
        seen.served_after_revocation.is_empty(),
        "{} logged-out cookies were served",
        seen.served_after_revocation.len()
    );
    assert!(
        seen.logins_ok.iter().any(|&t| t < killed),
        "no login worked before the kill"
    );
    let first_login = seen
        .logins_ok
        .iter()
        .filter(|&&t| t > killed)
        .min()
        .expect("logins never resumed");
    let first_profile = seen
        .profiles_ok
        .iter()
        .filter(|&&t| t > killed)
        .min()
        .expect("/profile never resumed");
    let resumed = first_login.duration_since(killed);
    eprintln!(
        "primary promoted after {:?}; first login after {resumed:?}, first /profile after {:?}; {} logouts checked",
        promoted_at.duration_since(killed),
        first_profile.duration_since(killed),
        seen.revoked.len()
    );
    assert!(resumed < RESUMES_WITHIN, "logins resumed after {resumed:?}");
    // Every credential revoked before or during the failover stays refused.
    for cookie in &seen.revoked {
        let status = server.get("/profile", Some(cookie)).await.status();
        assert_eq!(status, StatusCode::UNAUTHORIZED, "a logged-out cookie");
    }
    // And the service is steady again.
    let cookie = server.login_alice().await;
    assert_eq!(
        server.get("/profile", Some(&cookie)).await.status(),
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_logout_survives_the_primarys_death_with_wait_replicas() {
    let mut sentinels = RedisSentinels::start(1, Duration::from_millis(1000));
    let server = Server::start_with(through_sentinels(&sentinels, 1));
    let kept = server.login_alice().await;
    // While the replica cannot confirm, a logout is not acknowledged.
    let primary = sentinels.primary_port().unwrap();
    let unconfirmed = server.login_alice().await;
    let replica = sentinels
        .servers()
        .iter()
        .find(|s| s.port() != primary)
        .unwrap();
    replica.pause();
    let logout = server
        .send_json(Method::POST, "/logout", Some(&unconfirmed), json!({}))
        .await
        .status();
    replica.resume();
    assert_eq!(logout, StatusCode::SERVICE_UNAVAILABLE);
    let ended = server.login_alice().await;
    let logout = server
        .send_json(Method::POST, "/logout", Some(&ended), json!({}))
        .await;
    assert_eq!(logout.status(), StatusCode::OK);
    // At once: nothing gets a chance to replicate after the answer.
    let old = sentinels.kill_primary();
    let sentinels = Arc::new(sentinels);
    let promoted = tokio::task::spawn_blocking({
        let sentinels = Arc::clone(&sentinels);
        move || sentinels.wait_for_failover(old, Duration::from_secs(30))
    })
    .await
    .unwrap();
    assert!(promoted.is_some(), "the sentinels promoted the replica");
    // Wait for tessera to reach the new primary.
    let deadline = Instant::now() + RESUMES_WITHIN;
    let kept_status = loop {
        let status = server.get("/profile", Some(&kept)).await.status();
        if status != StatusCode::SERVICE_UNAVAILABLE || Instant::now() > deadline {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        kept_status,
        StatusCode::OK,
        "the acknowledged login was lost"
    );
    assert_eq!(
        server.get("/profile", Some(&ended)).await.status(),
        StatusCode::UNAUTHORIZED,
        "the acknowledged logout was lost"
    );
    // The promoted primary has no replica left: a login cannot be
    // confirmed, so it is refused, not acknowledged.
    let login = server.login_response("alice@example.com", PASSWORD).await;
    assert_eq!(login.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(session_cookie(login.headers()).is_none());
}
