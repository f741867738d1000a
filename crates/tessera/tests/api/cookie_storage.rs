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
