use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::*;

async fn patch_with(
    server: &Server,
    cookie: &str,
    headers: &[(&str, String)],
) -> reqwest::Response {
    let mut request =
        with_cookie(server.request(Method::PATCH, "/session"), Some(cookie)).json(&json!({"k": 1}));
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn state_changes_from_another_origin_are_refused() {
    let server = Server::start();
    let cookie = server.login_alice().await;
    let response = patch_with(
        &server,
        &cookie,
        &[("origin", "https://evil.example".into())],
    )
    .await;
    assert_eq!(
        expect_error(response, StatusCode::FORBIDDEN).await,
        "cross_site_request"
    );
    let response = with_cookie(server.request(Method::POST, "/logout"), Some(&cookie))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::FORBIDDEN).await;
    assert_eq!(
        server.get("/profile", Some(&cookie)).await.status(),
        StatusCode::OK,
        "logout was refused"
    );
}

#[tokio::test]
async fn sec_fetch_site_cross_site_is_refused() {
    let server = Server::start();
    let cookie = server.login_alice().await;
    let response = patch_with(&server, &cookie, &[("sec-fetch-site", "cross-site".into())]).await;
    expect_error(response, StatusCode::FORBIDDEN).await;
}

#[tokio::test]
async fn same_origin_and_header_less_requests_pass() {
    let server = Server::start();
    let cookie = server.login_alice().await;
    let own = format!("http://{}", server.addr);
    let response = patch_with(
        &server,
        &cookie,
        &[("origin", own), ("sec-fetch-site", "same-origin".into())],
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        patch_with(&server, &cookie, &[]).await.status(),
        StatusCode::OK,
        "curl-like client"
    );
}

#[tokio::test]
async fn reads_from_another_site_are_not_refused() {
    let server = Server::start();
    let cookie = server.login_alice().await;
    let response = with_cookie(server.request(Method::GET, "/profile"), Some(&cookie))
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn login_from_another_site_is_refused() {
    let server = Server::start();
    let response = server
        .request(Method::POST, "/login")
        .header("origin", "https://evil.example")
        .json(&json!({"email": "alice@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::FORBIDDEN).await;
}

#[tokio::test]
async fn configured_origins_may_change_state() {
    let server = Server::start_with(
        Options::default().env("TESSERA_ALLOWED_ORIGINS", "https://app.example.com"),
    );
    let cookie = server.login_alice().await;
    let response = patch_with(
        &server,
        &cookie,
        &[("origin", "https://app.example.com".into())],
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
}
