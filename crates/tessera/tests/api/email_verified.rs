//! `email_verified` on every credential: a user created unverified
//! (`tessera user add --unverified`) is shown so by `/profile`, by
//! `/auth/verify` and in the access token's claim; `tessera user verify`
//! (`Accounts::set_email_verified`) reaches a live server-side session on
//! its next request (SQLite and Redis) and an access token at its next
//! refresh.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

const BOB: &str = "bob@example.com";

/// A data directory with bob, whose address is not verified.
fn with_unverified_bob() -> Arc<DataDir> {
    let data = Arc::new(DataDir::new());
    let out = data.cli(
        &["user", "add", BOB, "--unverified", "--password-stdin"],
        &format!("{PASSWORD}\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    data
}

/// `tessera user verify|unverify bob` with the server's settings.
fn cli_set_verified(server: &Server, verified: bool) -> String {
    let env: Vec<(&str, &str)> = server
        .options()
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let command = if verified { "verify" } else { "unverify" };
    let out = server.data.cli_with_env(&["user", command, BOB], "", &env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `/profile` with the cookie: the user's flag, and the cookie to use next
/// (a rotated or re-sealed one if the answer set one).
async fn profile_flag(server: &Server, cookie: &str) -> (Value, String) {
    let response = server.get("/profile", Some(cookie)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let next = session_cookie(response.headers()).unwrap_or_else(|| cookie.to_owned());
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["user"]["email"], BOB);
    (body["user"]["email_verified"].clone(), next)
}

/// The `X-Auth-Email-Verified` header `/auth/verify` answers with.
async fn forward_auth_flag(server: &Server, cookie: &str) -> String {
    let response = server.get("/auth/verify", Some(cookie)).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    response.headers()["x-auth-email-verified"]
        .to_str()
        .unwrap()
        .to_owned()
}

/// The claims of an access token, read without checking the signature
/// (the server checks it when the token is used).
fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWS has three parts");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// Login, `/profile` and `/auth/verify` say false; after `user verify` the
/// same (rotated) session says true on its next request.
async fn a_stored_session_shows_the_verification_on_its_next_request(options: Options) {
    let server = Server::start_on(with_unverified_bob(), options);
    let login = server.login_response(BOB, PASSWORD).await;
    assert_eq!(login.status(), StatusCode::OK);
    let cookie = session_cookie(login.headers()).unwrap();
    let body: Value = login.json().await.unwrap();
    assert_eq!(body["user"]["email_verified"], json!(false));
    let (flag, cookie) = profile_flag(&server, &cookie).await;
    assert_eq!(flag, json!(false));
    assert_eq!(forward_auth_flag(&server, &cookie).await, "false");

    let said = cli_set_verified(&server, true);
    assert!(said.contains("1 live sessions updated"), "{said}");
    let response = server.get("/profile", Some(&cookie)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let rotated = session_cookie(response.headers()).expect("a fresh id after the change");
    assert_ne!(rotated, cookie);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["user"]["email_verified"], json!(true), "{body}");
    assert_eq!(forward_auth_flag(&server, &rotated).await, "true");

    // And back: the flag can be lowered the same way.
    cli_set_verified(&server, false);
    let (flag, _) = profile_flag(&server, &rotated).await;
    assert_eq!(flag, json!(false));
}

#[tokio::test]
async fn sqlite_sessions_show_email_verified_and_follow_a_verification() {
    a_stored_session_shows_the_verification_on_its_next_request(Options::default()).await;
}

#[tokio::test]
async fn redis_sessions_show_email_verified_and_follow_a_verification() {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let options = Options::default()
        .env("TESSERA_STORE", "redis")
        .env("TESSERA_REDIS_URL", "redis://127.0.0.1:6379")
        .env(
            "TESSERA_REDIS_PREFIX",
            format!("tessera-verified-{nanos:x}"),
        );
    a_stored_session_shows_the_verification_on_its_next_request(options).await;
}

/// A sealed cookie carries the flag; a verification, which takes nothing
/// away, leaves it until the next login; lowering the flag ends it.
#[tokio::test]
async fn sealed_cookies_carry_email_verified() {
    let server = Server::start_on(
        with_unverified_bob(),
        Options::default().env("TESSERA_SESSION_STORAGE", "cookie"),
    );
    let cookie = server.login(BOB, PASSWORD).await;
    let (flag, cookie) = profile_flag(&server, &cookie).await;
    assert_eq!(flag, json!(false));
    assert_eq!(forward_auth_flag(&server, &cookie).await, "false");

    cli_set_verified(&server, true);
    let (flag, cookie) = profile_flag(&server, &cookie).await;
    assert_eq!(flag, json!(false), "the sealed copy stays until next login");
    let fresh = server.login(BOB, PASSWORD).await;
    let (flag, fresh) = profile_flag(&server, &fresh).await;
    assert_eq!(flag, json!(true));
    assert_eq!(forward_auth_flag(&server, &fresh).await, "true");

    // Taking verification away ends the cookies that claim it, old and
    // new (the running server learns of the CLI's cutoff by its periodic
    // revocation sync).
    cli_set_verified(&server, false);
    for cookie in [&cookie, &fresh] {
        let started = std::time::Instant::now();
        while server.get("/profile", Some(cookie)).await.status() != StatusCode::UNAUTHORIZED {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(5),
                "the cookie still works"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
    let again = server.login(BOB, PASSWORD).await;
    assert_eq!(profile_flag(&server, &again).await.0, json!(false));
}

/// `POST /token`: the access token's `email_verified` claim and `/profile`
/// with the bearer token say false; after the verification, the next
/// refresh mints a token that says true.
#[tokio::test]
async fn access_tokens_carry_the_claim_and_a_refresh_brings_the_new_value() {
    let server = Server::start_on(with_unverified_bob(), Options::default());
    let response = server
        .send_json(
            Method::POST,
            "/token",
            None,
            json!({"email": BOB, "password": PASSWORD}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let tokens: Value = response.json().await.unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(claims(access)["email_verified"], json!(false));
    assert_eq!(claims(access)["email"], BOB);
    let profile: Value = bearer(&server, "/profile", access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(profile["user"]["email_verified"], json!(false), "{profile}");

    cli_set_verified(&server, true);
    // The token already issued keeps its claim until it expires.
    let profile: Value = bearer(&server, "/profile", access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(profile["user"]["email_verified"], json!(false));
    let response = refresh(&server, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(response.status(), StatusCode::OK);
    let refreshed: Value = response.json().await.unwrap();
    let access = refreshed["access_token"].as_str().unwrap();
    assert_eq!(claims(access)["email_verified"], json!(true));
    let response = bearer(&server, "/profile", access).await;
    assert_eq!(response.status(), StatusCode::OK);
    let profile: Value = response.json().await.unwrap();
    assert_eq!(profile["user"]["email_verified"], json!(true), "{profile}");
}

/// An operator's account is verified; `user list --json` shows the flag.
#[tokio::test]
async fn the_cli_creates_verified_accounts_unless_told_otherwise() {
    let data = with_unverified_bob();
    data.add_user("alice@example.com", &["admin"]);
    let out = data.cli(&["user", "list", "--json"], "");
    assert!(out.status.success());
    let users: Value = serde_json::from_slice(&out.stdout).unwrap();
    let flags: Vec<(&str, &Value)> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u["email"].as_str().unwrap(), &u["email_verified"]))
        .collect();
    assert_eq!(
        flags,
        [("alice@example.com", &json!(true)), (BOB, &json!(false))]
    );
    let out = data.cli(&["user", "verify", "alice@example.com"], "");
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("0 live sessions updated"),
        "already verified: nothing to change"
    );
    let out = data.cli(&["user", "verify", "nobody@example.com"], "");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no user"));
}
