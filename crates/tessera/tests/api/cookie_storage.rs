//! `session_storage = cookie`: the session sealed in the cookie, no rows.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

fn cookie_mode() -> Options {
    Options::default().env("TESSERA_SESSION_STORAGE", "cookie")
}

fn session_rows(server: &Server) -> i64 {
    let db = rusqlite::Connection::open(server.data.path().join("tessera.db")).unwrap();
    db.query_row("SELECT count(*) FROM sessions", [], |r| r.get(0))
        .unwrap()
}

#[tokio::test]
async fn login_seals_the_session_into_a_hardened_cookie_and_stores_nothing() {
    let server = Server::start_with(cookie_mode());
    let response = server.login_response("alice@example.com", PASSWORD).await;
    let header = set_cookie_header(response.headers()).unwrap();
    for attribute in ["HttpOnly", "Secure", "Path=/", "SameSite=Lax", "Max-Age="] {
        assert!(header.contains(attribute), "{header} lacks {attribute}");
    }
    let cookie = session_cookie(response.headers()).unwrap();
    assert!(!cookie.contains("alice"), "the cookie is encrypted");
    let body: Value = server
        .get("/profile", Some(&cookie))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["user"]["email"], "alice@example.com");
    assert_eq!(session_rows(&server), 0, "no row in any store");
    assert!(server.logs().contains("sealed cookies"));
}

#[tokio::test]
async fn modified_truncated_and_foreign_cookies_are_401() {
    let data = Arc::new(DataDir::new());
    data.add_user("alice@example.com", &["admin"]);
    let key_a = URL_SAFE_NO_PAD.encode([1u8; 32]);
    let key_b = URL_SAFE_NO_PAD.encode([2u8; 32]);
    let mut server = Server::start_on(
        Arc::clone(&data),
        cookie_mode().env("TESSERA_SESSION_COOKIE_KEY", &key_a),
    );
    let cookie = server.login_alice().await;
    let mut bytes = URL_SAFE_NO_PAD.decode(&cookie).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    for bad in [
        URL_SAFE_NO_PAD.encode(&bytes),
        cookie[..cookie.len() - 8].to_owned(),
        "A".repeat(cookie.len()),
    ] {
        expect_error(
            server.get("/profile", Some(&bad)).await,
            StatusCode::UNAUTHORIZED,
        )
        .await;
    }
    assert_eq!(
        server.get("/profile", Some(&cookie)).await.status(),
        StatusCode::OK
    );
    // The same cookie under another key (a re-encryption the server never made).
    server.kill_9();
    let other = Server::start_on(
        Arc::clone(&data),
        cookie_mode().env("TESSERA_SESSION_COOKIE_KEY", &key_b),
    );
    expect_error(
        other.get("/profile", Some(&cookie)).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
}

#[tokio::test]
async fn logout_revokes_the_sealed_cookie_even_across_a_restart() {
    let mut server = Server::start_with(cookie_mode());
    let cookie = server.login_alice().await;
    let response = with_cookie(server.request(Method::POST, "/logout"), Some(&cookie))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    expect_error(
        server.get("/profile", Some(&cookie)).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    server.restart();
    expect_error(
        server.get("/profile", Some(&cookie)).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(
        server
            .get("/profile", Some(&server.login_alice().await))
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn logout_everywhere_ends_every_sealed_cookie_of_the_user() {
    let server = Server::start_with(cookie_mode());
    let first = server.login_alice().await;
    let second = server.login_alice().await;
    let response = server
        .send_json(
            Method::POST,
            "/logout",
            Some(&first),
            json!({"everywhere": true}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    expect_error(
        server.get("/profile", Some(&second)).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
}

#[tokio::test]
async fn sealed_sessions_follow_the_idle_timeout_and_slide_with_activity() {
    let server = Server::start_with(
        cookie_mode()
            .env("TESSERA_SESSION_IDLE_TIMEOUT", 2)
            .env("TESSERA_SESSION_ABSOLUTE_TIMEOUT", 60),
    );
    let mut cookie = server.login_alice().await;
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let response = server.get("/profile", Some(&cookie)).await;
        assert_eq!(response.status(), StatusCode::OK);
        if let Some(resealed) = session_cookie(response.headers()) {
            cookie = resealed;
        }
    }
    tokio::time::sleep(Duration::from_millis(2300)).await;
    expect_error(
        server.get("/profile", Some(&cookie)).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
}

#[tokio::test]
async fn session_data_travels_in_the_sealed_cookie() {
    let server = Server::start_with(cookie_mode());
    let cookie = server.login_alice().await;
    let response = server
        .send_json(
            Method::PATCH,
            "/session",
            Some(&cookie),
            json!({"theme": "dark"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let resealed = session_cookie(response.headers()).expect("re-sealed cookie");
    let read: Value = server
        .get("/session", Some(&resealed))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(read["data"], json!({"theme": "dark"}));
    let big = json!({"blob": "x".repeat(2000)});
    let response = server
        .send_json(Method::PATCH, "/session", Some(&resealed), big)
        .await;
    expect_error(response, StatusCode::PAYLOAD_TOO_LARGE).await;
}

/// The revocation list's sealed entries, as `/admin/v1/health` reports
/// them: (ended sealed sessions, per-user sealed cutoffs).
async fn sealed_revocations(server: &Server) -> (i64, i64) {
    let health = server.admin_health().await;
    let revocations = &health["revocations"];
    (
        revocations["sealed"].as_i64().unwrap(),
        revocations["sealed_cutoffs"].as_i64().unwrap(),
    )
}

/// With a cap of two ended sealed sessions per user: four logins, three
/// logouts. The list keeps two entries and one cutoff, all three
/// logged-out cookies stay refused (across a restart too), the fourth
/// works. Run on SQLite here and on Redis in `redis_store.rs`. Returns the
/// server for backend-specific checks.
pub async fn past_the_sealed_cap_logged_out_cookies_stay_refused(options: Options) -> Server {
    let mut server = Server::start_with(
        options
            .env("TESSERA_SESSION_STORAGE", "cookie")
            .env("TESSERA_MAX_SEALED_REVOCATIONS_PER_USER", 2),
    );
    let mut cookies = Vec::new();
    for _ in 0..4 {
        cookies.push(server.login_alice().await);
    }
    let (ended, live) = cookies.split_at(3);
    for cookie in ended {
        let response = with_cookie(server.request(Method::POST, "/logout"), Some(cookie))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert_eq!(sealed_revocations(&server).await, (2, 1), "bounded");
    assert!(
        server.logs().contains("collapsed into a cutoff"),
        "{}",
        server.logs()
    );
    for round in ["before", "after"] {
        for cookie in ended {
            assert_eq!(
                server.get("/profile", Some(cookie)).await.status(),
                StatusCode::UNAUTHORIZED,
                "a logged-out cookie, {round} a restart"
            );
        }
        assert_eq!(
            server.get("/profile", Some(&live[0])).await.status(),
            StatusCode::OK,
            "{round} a restart"
        );
        if round == "before" {
            server.restart();
            assert_eq!(sealed_revocations(&server).await, (2, 1), "as loaded");
        }
    }
    server
}

#[tokio::test]
async fn past_the_sealed_cap_the_oldest_logouts_collapse_into_a_cutoff() {
    let server = past_the_sealed_cap_logged_out_cookies_stay_refused(Options::default()).await;
    let db = rusqlite::Connection::open(server.data.path().join("tessera.db")).unwrap();
    let rows: (i64, i64) = db
        .query_row(
            "SELECT count(*) FILTER (WHERE kind = 'sealed'),
                    count(*) FILTER (WHERE kind = 'sealed_user') FROM revocations",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(rows, (2, 1), "two entries and the cutoff are stored");
}
