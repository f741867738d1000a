//! The Redis backend through the HTTP API: stateless nodes sharing one
//! Redis, faults (Redis killed, frozen, restarted) and revocations reaching
//! every node.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;

use tessera_testkit::{RedisCluster, RedisServer};

use crate::helpers::*;

/// Settings for nodes on `url` under a prefix of their own.
fn on_redis(url: &str, prefix: &str) -> Options {
    Options::default()
        .env("TESSERA_STORE", "redis")
        .env("TESSERA_REDIS_URL", url)
        .env("TESSERA_REDIS_PREFIX", prefix)
        .env("TESSERA_REDIS_TIMEOUT", 500)
}

/// A prefix of its own on the shared Redis (127.0.0.1:6379).
fn shared_redis() -> Options {
    let prefix = format!("tessera-api-{}", uuid_like());
    on_redis("redis://127.0.0.1:6379", &prefix)
}

fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{:x}{:x}", nanos, std::process::id())
}

/// `n` nodes on one data directory (users) and one Redis.
fn nodes(n: usize, options: &Options) -> Vec<Server> {
    let data = Arc::new(DataDir::new());
    data.add_user("alice@example.com", &["admin"]);
    (0..n)
        .map(|_| Server::start_on(Arc::clone(&data), options.clone()))
        .collect()
}

async fn status(server: &Server, cookie: &str) -> StatusCode {
    server.get("/profile", Some(cookie)).await.status()
}

#[tokio::test]
async fn sessions_live_in_redis_and_outlive_every_node() {
    let mut server = Server::start_with(shared_redis());
    let cookie = server.login_alice().await;
    assert_eq!(status(&server, &cookie).await, StatusCode::OK);
    server.restart();
    assert_eq!(status(&server, &cookie).await, StatusCode::OK);
    let health = server.admin_health().await;
    assert_eq!(health["store"]["backend"], "redis", "{health}");
    let logout = server
        .send_json(Method::POST, "/logout", Some(&cookie), json!({}))
        .await;
    assert_eq!(logout.status(), StatusCode::OK);
    assert_eq!(status(&server, &cookie).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn nodes_share_sessions_refresh_families_and_logouts() {
    let cluster = nodes(2, &shared_redis());
    let (a, b) = (&cluster[0], &cluster[1]);
    let cookie = a.login_alice().await;
    assert_eq!(status(b, &cookie).await, StatusCode::OK);
    let listed: serde_json::Value = b
        .get("/sessions", Some(&cookie))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed["sessions"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );

    let tokens = a.token_alice().await;
    let first = tokens["refresh_token"].as_str().unwrap();
    assert_eq!(refresh(b, first).await.status(), StatusCode::OK);
    // The old refresh token, replayed on the other node after the grace
    // window would be reuse; within it, the same successor comes back.
    assert_eq!(refresh(a, first).await.status(), StatusCode::OK);

    let logout = b
        .send_json(Method::POST, "/logout", Some(&cookie), json!({}))
        .await;
    assert_eq!(logout.status(), StatusCode::OK);
    assert_eq!(status(a, &cookie).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn logins_past_the_cap_end_the_oldest_sessions_in_redis() {
    crate::sessions::logins_past_the_cap_end_the_oldest_sessions_on(shared_redis()).await;
}

#[tokio::test]
async fn login_failures_count_on_every_node() {
    let options = shared_redis()
        .env("TESSERA_LOGIN_ACCOUNT_BURST", 3)
        .env("TESSERA_LOGIN_ACCOUNT_PER_MINUTE", 1);
    let cluster = nodes(2, &options);
    for node in [&cluster[0], &cluster[1], &cluster[0]] {
        let r = node
            .login_response("alice@example.com", "wrong password")
            .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = cluster[1]
        .login_response("alice@example.com", "wrong password")
        .await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().contains_key("retry-after"));
}

/// Asserts a 503 with a JSON body, answered within `bound`.
async fn fails_closed(request: reqwest::RequestBuilder, bound: Duration) -> reqwest::Response {
    let started = Instant::now();
    let response = request.send().await.unwrap();
    let took = started.elapsed();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(took < bound, "answered after {took:?}");
    response
}

async fn eventually_ok(server: &Server, cookie: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if status(server, cookie).await == StatusCode::OK {
            return;
        }
        assert!(Instant::now() < deadline, "service did not resume");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_killed_redis_fails_closed_and_service_resumes_when_it_returns() {
    let mut redis = RedisServer::start_persistent();
    let server = Server::start_with(on_redis(&redis.url(), "tessera"));
    let cookie = server.login_alice().await;
    let tokens = server.token_alice().await;
    let revoked = server.login_alice().await;
    let logout = server
        .send_json(Method::POST, "/logout", Some(&revoked), json!({}))
        .await;
    assert_eq!(logout.status(), StatusCode::OK);

    redis.kill();
    let bound = Duration::from_secs(3);
    let r = fails_closed(
        with_cookie(server.request(Method::GET, "/profile"), Some(&cookie)),
        bound,
    )
    .await;
    assert!(r.headers().contains_key("retry-after"));
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "store_unavailable", "{body}");
    let login = fails_closed(
        server
            .request(Method::POST, "/login")
            .json(&json!({"email": "alice@example.com", "password": PASSWORD})),
        bound,
    )
    .await;
    assert!(session_cookie(login.headers()).is_none(), "no cookie");
    // A logout or revocation that cannot be saved is not acknowledged.
    fails_closed(
        with_cookie(server.request(Method::POST, "/logout"), Some(&cookie)),
        bound,
    )
    .await;
    fails_closed(
        server
            .request(Method::POST, "/token/revoke")
            .json(&json!({"token": tokens["refresh_token"]})),
        bound,
    )
    .await;
    // /health follows the store (probed in the background).
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.get("/health", None).await.status() != StatusCode::SERVICE_UNAVAILABLE {
        assert!(Instant::now() < deadline, "/health kept reporting up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    redis.restart();
    eventually_ok(&server, &cookie).await;
    assert_eq!(status(&server, &revoked).await, StatusCode::UNAUTHORIZED);
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.get("/health", None).await.status() != StatusCode::OK {
        assert!(Instant::now() < deadline, "/health did not recover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        server
            .login_response("alice@example.com", PASSWORD)
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_frozen_redis_fails_closed_within_the_timeout() {
    let redis = RedisServer::start();
    let server = Server::start_with(on_redis(&redis.url(), "tessera"));
    let cookie = server.login_alice().await;
    redis.pause();
    // Timeout 500 ms: the answer comes well within 2 s, never a 200 or 401.
    for _ in 0..3 {
        fails_closed(
            with_cookie(server.request(Method::GET, "/profile"), Some(&cookie)),
            Duration::from_secs(2),
        )
        .await;
    }
    redis.resume();
    eventually_ok(&server, &cookie).await;
}

/// Polls `/profile` with the access token every millisecond until `node`
/// refuses it; fails once `bound` has passed since `since`.
async fn refused_by(node: &Server, token: &str, since: Instant, bound: Duration) {
    while bearer(node, "/profile", token).await.status() != StatusCode::UNAUTHORIZED {
        assert!(
            since.elapsed() < bound,
            "{} still accepts the token",
            node.addr
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test]
async fn revocations_reach_every_node_within_100_ms() {
    let cluster = nodes(3, &shared_redis());
    let mut delays = Vec::new();
    // REVOCATION_TRIALS=200 for a p99 worth reporting (the suite runs 10).
    let trials: usize = std::env::var("REVOCATION_TRIALS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10);
    for _ in 0..trials {
        let tokens = cluster[0].token_alice().await;
        let access = tokens["access_token"].as_str().unwrap();
        for node in &cluster {
            assert_eq!(
                bearer(node, "/profile", access).await.status(),
                StatusCode::OK
            );
        }
        let logout = cluster[0]
            .request(Method::POST, "/logout")
            .bearer_auth(access)
            .send()
            .await
            .unwrap();
        assert_eq!(logout.status(), StatusCode::OK);
        let revoked_at = Instant::now();
        for node in &cluster[1..] {
            refused_by(node, access, revoked_at, Duration::from_secs(3)).await;
        }
        delays.push(revoked_at.elapsed());
    }
    delays.sort();
    let median = delays[delays.len() / 2];
    let p99 = delays[(delays.len() * 99).div_ceil(100) - 1];
    let max = delays[delays.len() - 1];
    eprintln!(
        "revocation reached both other nodes ({trials} trials): median {median:?}, p99 {p99:?}, max {max:?}"
    );
    // Without the announcements, the 1 s periodic sync would take ~500 ms on
    // average; the bound leaves room for a loaded CI machine.
    assert!(median < Duration::from_millis(100), "median {median:?}");
    assert!(max < Duration::from_millis(400), "max {max:?}");
}

#[tokio::test]
async fn nodes_on_a_redis_cluster_share_sessions_and_revocations() {
    let cluster = RedisCluster::start();
    let nodes = nodes(2, &on_redis(&cluster.url(), "tessera"));
    let (a, b) = (&nodes[0], &nodes[1]);
    // Sessions of several users, spread over the primaries.
    let data = &a.data;
    let mut cookies = vec![a.login_alice().await];
    for i in 0..6 {
        let email = format!("user{i}@example.com");
        data.add_user(&email, &[]);
        cookies.push(a.login(&email, PASSWORD).await);
    }
    for cookie in &cookies {
        assert_eq!(status(b, cookie).await, StatusCode::OK);
    }
    let counts = cluster.key_counts();
    assert!(counts.iter().filter(|&&n| n > 0).count() >= 2, "{counts:?}");

    // Logout everywhere on one node ends the user's sessions on both.
    let second = b.login_alice().await;
    let everywhere = a
        .send_json(
            Method::POST,
            "/logout",
            Some(&cookies[0]),
            json!({"everywhere": true}),
        )
        .await;
    assert_eq!(everywhere.status(), StatusCode::OK);
    assert_eq!(status(b, &second).await, StatusCode::UNAUTHORIZED);

    // A token revoked on one node is refused by the other (announced across
    // the cluster's primaries).
    let tokens = a.token_alice().await;
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(bearer(b, "/profile", access).await.status(), StatusCode::OK);
    let revoke = a
        .send_json(
            Method::POST,
            "/token/revoke",
            None,
            json!({"token": tokens["access_token"]}),
        )
        .await;
    assert_eq!(revoke.status(), StatusCode::OK);
    refused_by(b, access, Instant::now(), Duration::from_millis(500)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_load_a_redis_outage_never_logs_anyone_out() {
    let mut redis = RedisServer::start_persistent();
    let server = Arc::new(Server::start_with(on_redis(&redis.url(), "tessera")));
    let cookie = server.login_alice().await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load: Vec<_> = (0..8)
        .map(|_| {
            let (server, cookie, stop) = (Arc::clone(&server), cookie.clone(), Arc::clone(&stop));
            tokio::spawn(async move {
                let mut seen = std::collections::BTreeMap::<u16, usize>::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let code = status(&server, &cookie).await.as_u16();
                    *seen.entry(code).or_default() += 1;
                }
                seen
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    redis.kill();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    redis.restart();
    eventually_ok(&server, &cookie).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut seen = std::collections::BTreeMap::<u16, usize>::new();
    for task in load {
        for (code, n) in task.await.unwrap() {
            *seen.entry(code).or_default() += n;
        }
    }
    eprintln!("statuses under load through the outage: {seen:?}");
    assert!(seen.get(&200).copied().unwrap_or(0) > 0);
    assert!(
        seen.get(&503).copied().unwrap_or(0) > 0,
        "the outage was seen"
    );
    assert!(
        seen.keys().all(|code| *code == 200 || *code == 503),
        "only 200 or 503, never a 401 or a 500: {seen:?}"
    );
}

/// Commands Redis has run since the last `CONFIG RESETSTAT`, by name,
/// leaving out the health probe's `PING` and this test's own `INFO`.
fn command_counts(redis: &RedisServer) -> std::collections::BTreeMap<String, u64> {
    tessera_testkit::redis_cli(redis.port(), &["INFO", "commandstats"])
        .lines()
        .filter_map(|line| {
            let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest
                .strip_prefix("calls=")?
                .split(',')
                .next()?
                .parse()
                .ok()?;
            Some((name.to_owned(), calls))
        })
        .filter(|(name, _)| name != "ping" && name != "info" && name != "config|resetstat")
        .collect()
}

#[tokio::test]
async fn an_authenticated_request_costs_exactly_one_redis_command() {
    let redis = RedisServer::start();
    let server = Server::start_with(on_redis(&redis.url(), "tessera"));
    let cookie = server.login_alice().await;
    assert_eq!(status(&server, &cookie).await, StatusCode::OK);
    tessera_testkit::redis_cli(redis.port(), &["CONFIG", "RESETSTAT"]);
    for _ in 0..50 {
        assert_eq!(status(&server, &cookie).await, StatusCode::OK);
    }
    // One GET each; no write, since the touch interval has not passed.
    let counts = command_counts(&redis);
    assert_eq!(counts.get("get"), Some(&50), "{counts:?}");
    assert_eq!(counts.values().sum::<u64>(), 50, "{counts:?}");
}

#[tokio::test]
async fn a_user_disabled_from_the_cli_is_refused_at_once_on_every_node() {
    let options = shared_redis();
    let cluster = nodes(2, &options);
    let tokens = cluster[0].token_alice().await;
    let cookie = cluster[1].login_alice().await;
    let access = tokens["access_token"].as_str().unwrap();
    let env: Vec<(&str, &str)> = options
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let out = cluster[0]
        .data
        .cli_with_env(&["user", "disable", "alice@example.com"], "", &env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Sessions are gone from Redis; the access token's revocation is
    // announced (the periodic reload runs only every 30 s with Redis).
    let started = Instant::now();
    for node in &cluster {
        assert_eq!(status(node, &cookie).await, StatusCode::UNAUTHORIZED);
        refused_by(node, access, started, Duration::from_secs(2)).await;
    }
}

#[tokio::test]
async fn with_the_near_cache_a_frozen_redis_still_fails_closed_within_a_bound() {
    let redis = RedisServer::start();
    let server =
        Server::start_with(on_redis(&redis.url(), "tessera").env("TESSERA_REDIS_NEAR_CACHE", 1000));
    let cookie = server.login_alice().await;
    assert_eq!(status(&server, &cookie).await, StatusCode::OK);
    redis.pause();
    // Cached sessions may be served until the client gives up on the frozen
    // connection (2 × redis_timeout); from then on, 503 and nothing else.
    let frozen_at = Instant::now();
    loop {
        let code = status(&server, &cookie).await;
        if code == StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
        assert_eq!(code, StatusCode::OK);
        assert!(
            frozen_at.elapsed() < Duration::from_secs(4),
            "still served after 4 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for _ in 0..3 {
        assert_eq!(
            status(&server, &cookie).await,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
    let logout = server
        .send_json(Method::POST, "/logout", Some(&cookie), json!({}))
        .await;
    assert_eq!(logout.status(), StatusCode::SERVICE_UNAVAILABLE);
    redis.resume();
    eventually_ok(&server, &cookie).await;
}

#[tokio::test]
async fn a_slow_redis_fails_closed_within_the_timeout() {
    let redis = RedisServer::start();
    let server = Server::start_with(on_redis(&redis.url(), "tessera"));
    let cookie = server.login_alice().await;
    // Redis busy for 2 s (a slow script, a huge KEYS, a fork...).
    let port = redis.port();
    let sleeper =
        std::thread::spawn(move || tessera_testkit::redis_cli(port, &["DEBUG", "SLEEP", "2"]));
    std::thread::sleep(Duration::from_millis(100));
    fails_closed(
        with_cookie(server.request(Method::GET, "/profile"), Some(&cookie)),
        Duration::from_millis(1500),
    )
    .await;
    sleeper.join().unwrap();
    eventually_ok(&server, &cookie).await;
}

#[tokio::test]
async fn on_redis_past_the_family_cap_a_token_grant_ends_the_oldest_family() {
    crate::tokens::past_the_family_cap_the_oldest_tokens_are_refused(shared_redis()).await;
}

#[tokio::test]
async fn on_redis_past_the_sealed_cap_the_oldest_logouts_collapse_into_a_cutoff() {
    crate::cookie_storage::past_the_sealed_cap_logged_out_cookies_stay_refused(shared_redis())
        .await;
}
