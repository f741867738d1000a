use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn health_answers_without_authentication() {
    let server = Server::start();
    let response = server.get("/health", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({"status": "ok"}), "the status and nothing else");
    for path in ["/health/live", "/health/ready"] {
        let response = server.get(path, None).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body, json!({"status": "ok"}), "{path}");
    }
    let admin = server.admin_health().await;
    assert_eq!(admin["store"]["backend"], "sqlite");
    assert_eq!(admin["ready"]["status"], "ok");
    assert!(
        server.logs().contains("listening on http://"),
        "logs say where it listens"
    );
    assert!(server.logs().contains("sqlite"), "logs say which store");
}

#[tokio::test]
async fn login_returns_the_user_and_a_hardened_session_cookie() {
    let server = Server::start();
    let response = server.login_response("alice@example.com", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let cookie = set_cookie_header(response.headers()).expect("cookie set");
    for attribute in [
        "HttpOnly",
        "Secure",
        "Path=/",
        "SameSite=Lax",
        "Max-Age=86400",
    ] {
        assert!(cookie.contains(attribute), "{cookie} lacks {attribute}");
    }
    assert!(!cookie.to_ascii_lowercase().contains("domain"), "{cookie}");
    let value = session_cookie(response.headers()).unwrap();
    assert_eq!(value.len(), 43, "256-bit id in base64url");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["user"]["email"], "alice@example.com");
    assert_eq!(body["user"]["roles"], json!(["admin"]));
    assert!(body["user"].get("password_hash").is_none());
}

#[tokio::test]
async fn profile_shows_the_user_and_login_time() {
    let server = Server::start();
    let cookie = server.login_alice().await;
    let response = server.get("/profile", Some(&cookie)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["user"]["email"], "alice@example.com");
    assert_eq!(body["user"]["roles"], json!(["admin"]));
    assert!(body["user"]["id"].as_str().unwrap().len() == 36);
    assert!(
        body["session"]["login_time"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
}

#[tokio::test]
async fn profile_without_a_cookie_is_401() {
    let server = Server::start();
    let code = expect_error(server.get("/profile", None).await, StatusCode::UNAUTHORIZED).await;
    assert_eq!(code, "unauthenticated");
}

#[tokio::test]
async fn logout_ends_the_session_server_side_and_clears_the_cookie() {
    let server = Server::start();
    let cookie = server.login_alice().await;
    let response = with_cookie(server.request(Method::POST, "/logout"), Some(&cookie))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let cleared = set_cookie_header(response.headers()).expect("cookie cleared");
    assert!(cleared.starts_with(&format!("{COOKIE}=;")), "{cleared}");
    assert!(
        cleared.contains("Max-Age=0") && cleared.contains("Path=/"),
        "{cleared}"
    );
    // The old cookie, replayed, no longer works.
    expect_error(
        server.get("/profile", Some(&cookie)).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
}

#[tokio::test]
async fn logout_everywhere_ends_every_session_of_the_user() {
    let server = Server::start();
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
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["sessions_ended"], 2);
    expect_error(
        server.get("/profile", Some(&second)).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
}

#[tokio::test]
async fn every_login_issues_a_fresh_id_and_ends_the_one_presented() {
    let server = Server::start();
    let old = server.login_alice().await;
    let response = with_cookie(server.request(Method::POST, "/login"), Some(&old))
        .json(&json!({"email": "alice@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let new = session_cookie(response.headers()).unwrap();
    assert_ne!(new, old);
    expect_error(
        server.get("/profile", Some(&old)).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(
        server.get("/profile", Some(&new)).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_client_chosen_session_id_is_never_adopted() {
    let server = Server::start();
    // Well-formed but never issued: an attacker planting an id (fixation).
    let planted = "A".repeat(43);
    expect_error(
        server.get("/profile", Some(&planted)).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let response = with_cookie(server.request(Method::POST, "/login"), Some(&planted))
        .json(&json!({"email": "alice@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let issued = session_cookie(response.headers()).unwrap();
    assert_ne!(issued, planted);
    expect_error(
        server.get("/profile", Some(&planted)).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
}

#[tokio::test]
async fn sigterm_stops_the_server_cleanly() {
    let mut server = Server::start();
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
    assert!(server.logs().contains("shutting down"));
}
