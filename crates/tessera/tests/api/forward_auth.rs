//! Forward authentication through a real nginx with the shipped
//! `deploy/nginx/forward-auth.conf` (`.ci/run` installs nginx). The
//! browser journeys run through it, Caddy and Traefik alike are in
//! `proxies.rs`.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tessera_testkit::{Nginx, NginxConfig, ProcessGroup};

use crate::helpers::*;

const CONFIG: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../deploy/nginx/forward-auth.conf"
);
const ECHO_APP: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/forward_auth/echo_app.py"
);

/// tessera, the echo app and nginx in front of both.
struct Stack {
    tessera: Server,
    url: String,
    _app: ProcessGroup,
    _nginx: Nginx,
}

async fn stack() -> Stack {
    let tessera = Server::start();
    let app_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut app = ProcessGroup::spawn(
        "the echo app",
        Command::new("python3")
            .args([ECHO_APP, &app_addr.port().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
    .unwrap();
    app.wait_for_listener(app_addr, Duration::from_secs(10))
        .unwrap();
    // The shipped file marks its upstreams `# TESSERA` and `# APP`.
    let template = std::fs::read_to_string(CONFIG).unwrap();
    let nginx = NginxConfig::new(&template, free_port())
        .upstream("TESSERA", &[tessera.addr])
        .upstream("APP", &[app_addr])
        .start()
        .expect("nginx (see scripts/test)");
    Stack {
        tessera,
        url: nginx.url(),
        _app: app,
        _nginx: nginx,
    }
}

impl Stack {
    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        reqwest::Client::new().request(method, format!("{}{path}", self.url))
    }

    async fn login_through_nginx(&self) -> String {
        let response = self
            .request(Method::POST, "/login")
            .json(&json!({"email": "alice@example.com", "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        session_cookie(response.headers()).unwrap()
    }
}

#[tokio::test]
async fn nginx_refuses_the_app_without_a_session() {
    let stack = stack().await;
    let response = stack.request(Method::GET, "/reports").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_session_cookie_reaches_the_app_with_the_identity_headers() {
    let stack = stack().await;
    let cookie = stack.login_through_nginx().await;
    let response = with_cookie(stack.request(Method::GET, "/reports"), Some(&cookie))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let seen: Value = response.json().await.unwrap();
    assert_eq!(seen["X-Auth-Email"], "alice@example.com");
    assert_eq!(seen["X-Auth-Roles"], "admin");
    assert_eq!(seen["X-Auth-User-Id"].as_str().unwrap().len(), 36);
    assert_eq!(seen["X-Auth-Email-Verified"], "true");
}

#[tokio::test]
async fn identity_headers_sent_by_the_client_are_never_trusted() {
    let stack = stack().await;
    let forged = stack
        .request(Method::GET, "/reports")
        .header("x-auth-email", "root@example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    let cookie = stack.login_through_nginx().await;
    let response = with_cookie(stack.request(Method::GET, "/reports"), Some(&cookie))
        .header("x-auth-email", "root@example.com")
        .send()
        .await
        .unwrap();
    let seen: Value = response.json().await.unwrap();
    assert_eq!(seen["X-Auth-Email"], "alice@example.com");
}

#[tokio::test]
async fn a_bearer_token_also_passes_and_a_revoked_one_does_not() {
    let stack = stack().await;
    let body = stack.tessera.token_alice().await;
    let access = body["access_token"].as_str().unwrap();
    let response = stack
        .request(Method::GET, "/api/data")
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    stack
        .tessera
        .send_json(
            Method::POST,
            "/token/revoke",
            None,
            json!({"token": access}),
        )
        .await;
    let response = stack
        .request(Method::GET, "/api/data")
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_cross_site_state_change_to_the_app_is_refused() {
    let stack = stack().await;
    let cookie = stack.login_through_nginx().await;
    let response = with_cookie(stack.request(Method::POST, "/reports"), Some(&cookie))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let same_site = with_cookie(stack.request(Method::POST, "/reports"), Some(&cookie))
        .send()
        .await
        .unwrap();
    assert_eq!(same_site.status(), StatusCode::OK);
}

#[tokio::test]
async fn logout_through_nginx_locks_the_app_again() {
    let stack = stack().await;
    let cookie = stack.login_through_nginx().await;
    let response = with_cookie(stack.request(Method::POST, "/logout"), Some(&cookie))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let response = with_cookie(stack.request(Method::GET, "/reports"), Some(&cookie))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

/// What Chromium sends with a same-origin `fetch(..., {method: "POST"})`
/// from a page served by nginx.
fn same_origin(stack: &Stack, builder: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    builder
        .header("origin", &stack.url)
        .header("sec-fetch-site", "same-origin")
        .header("sec-fetch-mode", "cors")
}

#[tokio::test]
async fn a_browser_logs_in_posts_to_the_app_and_logs_out_with_its_own_origin() {
    let stack = stack().await;
    let login = same_origin(&stack, stack.request(Method::POST, "/login"))
        .json(&json!({"email": "alice@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        login.status(),
        StatusCode::OK,
        "login from the page's origin"
    );
    let cookie = session_cookie(login.headers()).unwrap();
    let post = same_origin(
        &stack,
        with_cookie(stack.request(Method::POST, "/reports"), Some(&cookie)),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(
        post.status(),
        StatusCode::OK,
        "a same-origin POST to the app"
    );
    let logout = same_origin(
        &stack,
        with_cookie(stack.request(Method::POST, "/logout"), Some(&cookie)),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(
        logout.status(),
        StatusCode::OK,
        "logout from the page's origin"
    );
    let after = with_cookie(stack.request(Method::GET, "/reports"), Some(&cookie))
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
}
