//! "Remember me": `"remember": false` gives a browser-session cookie (no
//! `Max-Age`, no `Expires`) and the shorter transient lifetime, kept
//! through id rotation and sealed-cookie re-seals.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

async fn login(server: &Server, remember: Option<bool>) -> reqwest::Response {
    let mut body = json!({"email": "alice@example.com", "password": PASSWORD});
    if let Some(remember) = remember {
        body["remember"] = json!(remember);
    }
    server.send_json(Method::POST, "/login", None, body).await
}

fn lifetime_seconds(body: &Value) -> i64 {
    let parse = |field: &str| {
        time::OffsetDateTime::parse(
            body["session"][field].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
    };
    (parse("absolute_expires_at") - parse("login_time")).whole_seconds()
}

#[tokio::test]
async fn remember_false_gives_a_browser_session_cookie_with_the_transient_lifetime() {
    let server =
        Server::start_with(Options::default().env("TESSERA_SESSION_TRANSIENT_TIMEOUT", 3600));
    let response = login(&server, Some(false)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let header = set_cookie_header(response.headers()).unwrap();
    assert!(
        !header.contains("Max-Age") && !header.contains("Expires"),
        "{header}"
    );
    assert!(
        header.contains("HttpOnly") && header.contains("Secure"),
        "{header}"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(lifetime_seconds(&body), 3600);
    // Remembered (explicitly or by default): a persistent cookie, 24 h.
    for remember in [Some(true), None] {
        let response = login(&server, remember).await;
        let header = set_cookie_header(response.headers()).unwrap();
        assert!(header.contains("Max-Age=86400"), "{header}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(lifetime_seconds(&body), 86400);
    }
}

#[tokio::test]
async fn a_rotated_id_of_a_transient_session_stays_a_browser_session_cookie() {
    let server = Server::start();
    server.data.add_user("bob@example.com", &["member"]);
    let admin = server.login_alice().await;
    let bob = server
        .send_json(
            Method::POST,
            "/login",
            None,
            json!({"email": "bob@example.com", "password": PASSWORD, "remember": false}),
        )
        .await;
    let bob = session_cookie(bob.headers()).unwrap();
    let change = server
        .send_json(
            Method::PATCH,
            "/admin/users/bob@example.com",
            Some(&admin),
            json!({"roles": ["billing"]}),
        )
        .await;
    assert_eq!(change.status(), StatusCode::OK);
    let response = server.get("/profile", Some(&bob)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let header = set_cookie_header(response.headers()).expect("a fresh id");
    assert!(
        !header.contains("Max-Age") && !header.contains("Expires"),
        "{header}"
    );
}

#[tokio::test]
async fn a_sealed_transient_session_is_resealed_without_max_age() {
    let server = Server::start_with(
        Options::default()
            .env("TESSERA_SESSION_STORAGE", "cookie")
            .env("TESSERA_SESSION_IDLE_TIMEOUT", 10),
    );
    let response = login(&server, Some(false)).await;
    let header = set_cookie_header(response.headers()).unwrap();
    assert!(!header.contains("Max-Age"), "{header}");
    let cookie = session_cookie(response.headers()).unwrap();
    // Past the touch interval (idle / 10): activity re-seals the cookie.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let response = server.get("/profile", Some(&cookie)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let resealed = set_cookie_header(response.headers()).expect("re-sealed");
    assert!(!resealed.contains("Max-Age"), "{resealed}");
}

#[tokio::test]
async fn tokens_without_remember_put_the_access_token_in_a_browser_session_cookie() {
    let server =
        Server::start_with(Options::default().env("TESSERA_JWT_ACCESS_TOKEN_COOKIE", "true"));
    let response = server
        .send_json(
            Method::POST,
            "/token",
            None,
            json!({"email": "alice@example.com", "password": PASSWORD, "remember": false}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let header = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with("__Host-tessera-at="))
        .unwrap();
    assert!(!header.contains("Max-Age"), "{header}");
}

#[test]
fn a_transient_timeout_as_long_as_the_absolute_one_is_refused() {
    let data = DataDir::new();
    let out = data.cli_with_env(
        &["config", "print"],
        "",
        &[("TESSERA_SESSION_TRANSIENT_TIMEOUT", "86400")],
    );
    assert!(out.status.success(), "config print only prints");
    let serve = std::process::Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .env("TESSERA_SESSION_TRANSIENT_TIMEOUT", "86400")
        .output()
        .unwrap();
    assert!(!serve.status.success());
    assert!(String::from_utf8_lossy(&serve.stderr).contains("session_transient_timeout"));
}
