use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::*;

async fn attempt(
    server: &Server,
    email: &str,
    password: &str,
    forwarded_for: Option<&str>,
) -> reqwest::Response {
    let mut request = server
        .request(Method::POST, "/login")
        .json(&json!({"email": email, "password": password}));
    if let Some(ip) = forwarded_for {
        request = request.header("x-forwarded-for", ip);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn repeated_failures_for_one_account_are_throttled_with_retry_after() {
    let server = Server::start_with(
        Options::default()
            .env("TESSERA_LOGIN_ACCOUNT_BURST", 3)
            .env("TESSERA_LOGIN_ACCOUNT_PER_MINUTE", 6)
            .env("TESSERA_TRUSTED_PROXIES", "127.0.0.1"),
    );
    for i in 0..3 {
        let ip = format!("198.51.100.{i}");
        assert_eq!(
            attempt(&server, "alice@example.com", "wrong", Some(&ip))
                .await
                .status(),
            StatusCode::UNAUTHORIZED
        );
    }
    // A fourth address does not help: the account itself is throttled.
    let response = attempt(&server, "alice@example.com", PASSWORD, Some("198.51.100.9")).await;
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=10).contains(&retry_after), "{retry_after}");
    assert_eq!(
        expect_error(response, StatusCode::TOO_MANY_REQUESTS).await,
        "too_many_attempts"
    );
}

#[tokio::test]
async fn a_lockout_ends_when_the_bucket_refills() {
    let server = Server::start_with(
        Options::default()
            .env("TESSERA_LOGIN_ACCOUNT_BURST", 1)
            .env("TESSERA_LOGIN_ACCOUNT_PER_MINUTE", 60),
    );
    attempt(&server, "alice@example.com", "wrong", None).await;
    let throttled = attempt(&server, "alice@example.com", PASSWORD, None).await;
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(
        attempt(&server, "alice@example.com", PASSWORD, None)
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn one_client_spraying_many_accounts_is_throttled() {
    let server = Server::start_with(Options::default().env("TESSERA_LOGIN_IP_BURST", 3));
    for i in 0..3 {
        attempt(&server, &format!("user{i}@example.com"), "guess", None).await;
    }
    let response = attempt(&server, "alice@example.com", PASSWORD, None).await;
    expect_error(response, StatusCode::TOO_MANY_REQUESTS).await;
}

#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_does_not_dodge_the_ip_limit() {
    let server = Server::start_with(Options::default().env("TESSERA_LOGIN_IP_BURST", 2));
    for i in 0..2 {
        attempt(
            &server,
            &format!("user{i}@example.com"),
            "guess",
            Some(&format!("203.0.113.{i}")),
        )
        .await;
    }
    let response = attempt(
        &server,
        "someone@example.com",
        "guess",
        Some("203.0.113.77"),
    )
    .await;
    expect_error(response, StatusCode::TOO_MANY_REQUESTS).await;
}

#[tokio::test]
async fn successful_logins_are_not_counted() {
    let server = Server::start_with(Options::default().env("TESSERA_LOGIN_ACCOUNT_BURST", 2));
    for _ in 0..6 {
        assert_eq!(
            attempt(&server, "alice@example.com", PASSWORD, None)
                .await
                .status(),
            StatusCode::OK
        );
    }
}

/// Password spraying from one IPv6 /64 (a home line or a VPS holds a whole
/// one): its addresses share one budget, another /64 has its own.
#[tokio::test]
async fn the_addresses_of_one_ipv6_64_count_as_one_client() {
    let server = Server::start_with(
        Options::default()
            .env("TESSERA_LOGIN_IP_BURST", 5)
            .env("TESSERA_TRUSTED_PROXIES", "127.0.0.1"),
    );
    for i in 1..=5 {
        let ip = format!("2001:db8:7:1::{i:x}");
        let response = attempt(&server, &format!("u{i}@example.com"), "wrong", Some(&ip)).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    let same_64 = attempt(
        &server,
        "u6@example.com",
        "wrong",
        Some("2001:db8:7:1:abcd::1"),
    )
    .await;
    expect_error(same_64, StatusCode::TOO_MANY_REQUESTS).await;
    let other_64 = attempt(&server, "u7@example.com", "wrong", Some("2001:db8:7:2::1")).await;
    assert_eq!(other_64.status(), StatusCode::UNAUTHORIZED);
}

const DEVICE_COOKIE: &str = "__Host-tessera-device";

/// The device cookie a response sets, and its whole header.
fn device_cookie(response: &reqwest::Response) -> Option<(String, String)> {
    let header = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{DEVICE_COOKIE}=")))?
        .to_owned();
    let value = header[DEVICE_COOKIE.len() + 1..]
        .split(';')
        .next()?
        .to_owned();
    Some((value, header))
}

async fn attempt_from_device(
    server: &Server,
    email: &str,
    password: &str,
    forwarded_for: &str,
    device: &str,
) -> reqwest::Response {
    server
        .request(Method::POST, "/login")
        .header("x-forwarded-for", forwarded_for)
        .header("cookie", format!("{DEVICE_COOKIE}={device}"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
}

/// Targeted lockout (OWASP device cookies): an attacker elsewhere empties
/// alice's budget and keeps polling it; alice, from her own address and
/// the browser she logged in with before, logs in at once every time.
#[tokio::test]
async fn an_attacker_emptying_an_account_does_not_lock_out_a_device_that_logged_in_before() {
    let server = Server::start_with(
        Options::default()
            .env("TESSERA_LOGIN_ACCOUNT_BURST", 3)
            .env("TESSERA_LOGIN_ACCOUNT_PER_MINUTE", 1)
            .env("TESSERA_TRUSTED_PROXIES", "127.0.0.1"),
    );
    let alice_ip = "198.51.100.10";
    let first = attempt(&server, "alice@example.com", PASSWORD, Some(alice_ip)).await;
    assert_eq!(first.status(), StatusCode::OK);
    let (device, header) = device_cookie(&first).expect("a device cookie");
    for attribute in ["HttpOnly", "Secure", "Path=/", "SameSite=Lax", "Max-Age="] {
        assert!(header.contains(attribute), "{header} lacks {attribute}");
    }
    assert!(!header.contains("Domain"), "{header}");

    for _ in 0..3 {
        let response = attempt(&server, "alice@example.com", "wrong", Some("203.0.113.5")).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let refused = attempt(&server, "alice@example.com", "wrong", Some("203.0.113.6")).await;
    expect_error(refused, StatusCode::TOO_MANY_REQUESTS).await;
    // A client that never logged in to alice shares the empty budget.
    let stranger = attempt(&server, "alice@example.com", PASSWORD, Some(alice_ip)).await;
    expect_error(stranger, StatusCode::TOO_MANY_REQUESTS).await;

    for round in 0..5 {
        let polled = attempt(&server, "alice@example.com", "wrong", Some("203.0.113.7")).await;
        assert_eq!(
            polled.status(),
            StatusCode::TOO_MANY_REQUESTS,
            "round {round}"
        );
        let started = std::time::Instant::now();
        let response =
            attempt_from_device(&server, "alice@example.com", PASSWORD, alice_ip, &device).await;
        assert_eq!(response.status(), StatusCode::OK, "round {round}");
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        assert!(device_cookie(&response).is_some(), "a fresh device cookie");
    }
    // The cookie vouches for alice only.
    let elsewhere = attempt_from_device(&server, "bob@example.com", "x", alice_ip, &device).await;
    assert_eq!(elsewhere.status(), StatusCode::UNAUTHORIZED);
    let forged =
        attempt_from_device(&server, "alice@example.com", PASSWORD, alice_ip, "AAAA").await;
    expect_error(forged, StatusCode::TOO_MANY_REQUESTS).await;
}

/// Polling a throttled account is not free: each refused attempt costs the
/// poller's own budget, so it soon cannot try any account at all.
#[tokio::test]
async fn refused_attempts_cost_the_client_that_makes_them() {
    let server = Server::start_with(
        Options::default()
            .env("TESSERA_LOGIN_ACCOUNT_BURST", 2)
            .env("TESSERA_LOGIN_ACCOUNT_PER_MINUTE", 1)
            .env("TESSERA_LOGIN_IP_BURST", 5)
            .env("TESSERA_LOGIN_IP_PER_MINUTE", 1)
            .env("TESSERA_TRUSTED_PROXIES", "127.0.0.1"),
    );
    let attacker = Some("203.0.113.9");
    for _ in 0..2 {
        let response = attempt(&server, "alice@example.com", "wrong", attacker).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    for _ in 0..3 {
        let response = attempt(&server, "alice@example.com", "wrong", attacker).await;
        expect_error(response, StatusCode::TOO_MANY_REQUESTS).await;
    }
    let other_account = attempt(&server, "carol@example.com", "wrong", attacker).await;
    expect_error(other_account, StatusCode::TOO_MANY_REQUESTS).await;
    let other_client = attempt(&server, "carol@example.com", "wrong", Some("198.51.100.3")).await;
    assert_eq!(other_client.status(), StatusCode::UNAUTHORIZED);
}
