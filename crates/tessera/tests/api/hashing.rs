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
