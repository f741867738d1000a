//! Every account change has the same effect whatever the entry point: the
//! `tessera user` CLI ends exactly what the admin API ends, including sealed
//! cookie sessions, and its revocations last as long as the longest-lived
//! credential that could still carry the old state.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::*;

/// Sealed-cookie sessions with access tokens that expire (and whose
/// revocation cutoffs, if sized for them alone, are dropped) within seconds.
fn short_tokens(options: Options) -> Options {
    options
        .env("TESSERA_SESSION_STORAGE", "cookie")
        .env("TESSERA_JWT_ACCESS_TTL", 2)
        .env("TESSERA_JWT_LEEWAY", 0)
        .env("TESSERA_PURGE_INTERVAL", 1)
}

fn on_sqlite() -> Options {
    short_tokens(Options::default())
}

fn on_redis() -> Options {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    short_tokens(
        Options::default()
            .env("TESSERA_STORE", "redis")
            .env("TESSERA_REDIS_URL", "redis://127.0.0.1:6379")
            .env(
                "TESSERA_REDIS_PREFIX",
                format!("tessera-acct-{nanos:x}-{}", std::process::id()),
            ),
    )
}

/// Runs `tessera <args>` with the server's own settings, as an operator would.
fn cli(server: &Server, args: &[&str], stdin: &str) {
    let env: Vec<(&str, &str)> = server
        .options()
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let out = server.data.cli_with_env(args, stdin, &env);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn refused_within(server: &Server, cookie: &str, bound: Duration) {
    let started = Instant::now();
    loop {
        let status = server.get("/profile", Some(cookie)).await.status();
        if status == StatusCode::UNAUTHORIZED {
            return;
        }
        assert_eq!(status, StatusCode::OK);
        assert!(
            started.elapsed() < bound,
            "the old cookie still works after {bound:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Logs alice in, runs the CLI command, and checks that her old sealed
/// cookie is refused by the running server, and still refused by a server
/// started after every access token of the time has expired.
async fn old_cookie_stays_refused(options: Options, args: &[&str], stdin: &str) {
    let mut server = Server::start_with(options);
    let cookie = server.login_alice().await;
    assert_eq!(
        server.get("/profile", Some(&cookie)).await.status(),
        StatusCode::OK
    );
    cli(&server, args, stdin);
    refused_within(&server, &cookie, Duration::from_secs(3)).await;
    // Past the access-token lifetime (and a purge), on a fresh node.
    tokio::time::sleep(Duration::from_secs(4)).await;
    server.restart();
    let status = server.get("/profile", Some(&cookie)).await.status();
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a node started after the change accepts the old cookie"
    );
}

const DISABLE: &[&str] = &["user", "disable", "alice@example.com"];
const PASSWD: &[&str] = &["user", "passwd", "alice@example.com", "--password-stdin"];
const NEW_PASSWORD: &str = "another long passphrase\n";
const DROP_ROLES: &[&str] = &["user", "set-role", "alice@example.com"];

#[tokio::test]
async fn cli_disable_ends_sealed_cookies_for_good_on_sqlite() {
    old_cookie_stays_refused(on_sqlite(), DISABLE, "").await;
}

#[tokio::test]
async fn cli_disable_ends_sealed_cookies_for_good_on_redis() {
    old_cookie_stays_refused(on_redis(), DISABLE, "").await;
}

#[tokio::test]
async fn cli_passwd_ends_sealed_cookies_for_good_on_sqlite() {
    old_cookie_stays_refused(on_sqlite(), PASSWD, NEW_PASSWORD).await;
}

#[tokio::test]
async fn cli_passwd_ends_sealed_cookies_for_good_on_redis() {
    old_cookie_stays_refused(on_redis(), PASSWD, NEW_PASSWORD).await;
}

#[tokio::test]
async fn cli_set_role_ends_sealed_cookies_like_the_admin_api_on_sqlite() {
    old_cookie_stays_refused(on_sqlite(), DROP_ROLES, "").await;
}

#[tokio::test]
async fn cli_set_role_ends_sealed_cookies_like_the_admin_api_on_redis() {
    old_cookie_stays_refused(on_redis(), DROP_ROLES, "").await;
}

/// After a role change from the CLI, a fresh login carries the new roles
/// and the admin API refuses the former admin.
#[tokio::test]
async fn after_a_cli_role_change_a_new_sealed_cookie_carries_the_new_roles() {
    let server = Server::start_with(on_sqlite());
    cli(&server, DROP_ROLES, "");
    let cookie = server.login_alice().await;
    let body: serde_json::Value = server
        .get("/profile", Some(&cookie))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["user"]["roles"], json!([]));
    let response = server
        .send_json(
            Method::PATCH,
            "/admin/users/alice@example.com",
            Some(&cookie),
            json!({"roles": ["admin"]}),
        )
        .await;
    expect_error(response, StatusCode::FORBIDDEN).await;
}
