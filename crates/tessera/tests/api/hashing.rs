use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::helpers::*;

#[tokio::test]
async fn a_full_hashing_queue_answers_503_with_retry_after() {
    let server = Server::start_with(
        Options::default()
            .env("TESSERA_HASH_WORKERS", 1)
            .env("TESSERA_HASH_QUEUE", 1)
            .env("TESSERA_LOGIN_IP_BURST", 1000)
            .env("TESSERA_LOGIN_ACCOUNT_BURST", 1000),
    );
    let logins: Vec<_> = (0..16)
        .map(|_| {
            let url = server.url("/login");
            tokio::spawn(async move {
                reqwest::Client::new()
                    .post(url)
                    .json(&serde_json::json!({"email": "alice@example.com", "password": PASSWORD}))
                    .send()
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut busy = 0;
    let mut ok = 0;
    for login in logins {
        let response = login.await.unwrap();
        match response.status() {
            StatusCode::OK => ok += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                assert!(response.headers().contains_key("retry-after"));
                assert_eq!(
                    expect_error(response, StatusCode::SERVICE_UNAVAILABLE).await,
                    "busy"
                );
                assert!(!server.logs().is_empty());
                busy += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(ok >= 1 && busy >= 1, "ok={ok} busy={busy}");
}

#[tokio::test]
async fn a_login_flood_does_not_starve_session_checks() {
    let server = Server::start_with(
        Options::default()
            .env("TESSERA_LOGIN_IP_BURST", 100_000)
            .env("TESSERA_LOGIN_ACCOUNT_BURST", 100_000),
    );
    let cookie = server.login_alice().await;
    let flood_until = Instant::now() + Duration::from_secs(3);
    let flooders: Vec<_> = (0..32)
        .map(|_| {
            let url = server.url("/login");
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                while Instant::now() < flood_until {
                    let _ = client
                        .post(&url)
                        .json(&serde_json::json!({"email": "alice@example.com", "password": "wrong guess"}))
                        .send()
                        .await;
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut worst = Duration::ZERO;
    for _ in 0..20 {
        let start = Instant::now();
        assert_eq!(
            server.get("/profile", Some(&cookie)).await.status(),
            StatusCode::OK
        );
        worst = worst.max(start.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for f in flooders {
        f.await.unwrap();
    }
    // A login costs ~25 ms of one core; a starved executor would put many of
    // them ahead of each /profile.
    assert!(
        worst < Duration::from_millis(250),
        "slowest /profile during the flood: {worst:?}"
    );
}

/// One client (here one address behind a trusted proxy) flooding logins
/// holds only its share of the hashing queue: another client's logins, sent
/// while the flood goes on, are hashed rather than refused with 503.
#[tokio::test]
async fn one_client_flooding_logins_leaves_room_for_the_others() {
    let server = Server::start_with(
        Options::default()
            .env("TESSERA_HASH_WORKERS", 1)
            .env("TESSERA_HASH_QUEUE", 7)
            .env("TESSERA_HASH_PER_CLIENT", 2)
            .env("TESSERA_TRUSTED_PROXIES", "127.0.0.1")
            .env("TESSERA_LOGIN_IP_BURST", 100_000)
            .env("TESSERA_LOGIN_ACCOUNT_BURST", 100_000),
    );
    let client = reqwest::Client::new();
    let url = server.url("/login");
    let login = move |from: &'static str| {
        client
            .post(url.clone())
            .header("x-forwarded-for", from)
            .json(&serde_json::json!({"email": "alice@example.com", "password": PASSWORD}))
            .send()
    };
    let until = Instant::now() + Duration::from_millis(2500);
    let flooders: Vec<_> = (0..24)
        .map(|_| {
            let request = login.clone();
            tokio::spawn(async move {
                let mut busy = 0u32;
                while Instant::now() < until {
                    let status = request("203.0.113.1").await.unwrap().status();
                    busy += u32::from(status == StatusCode::SERVICE_UNAVAILABLE);
                }
                busy
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut victim = Vec::new();
    for _ in 0..5 {
        victim.push(login("198.51.100.1").await.unwrap().status());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut busy = 0;
    for flooder in flooders {
        busy += flooder.await.unwrap();
    }
    assert!(busy > 0, "the flood was refused past its share");
    assert_eq!(victim, vec![StatusCode::OK; 5], "the other client's logins");
}
