//! Bad input of every kind gets a 4xx with a JSON error body, never a 500.

use reqwest::{Method, StatusCode};

use crate::helpers::*;

#[tokio::test]
async fn malformed_json_is_400() {
    let server = Server::start();
    for body in [
        "{",
        "{\"email\": 1}",
        "null",
        "[]",
        "{\"email\":\"a@b.c\"}",
        "\u{0}",
    ] {
        let response = server
            .request(Method::POST, "/login")
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        expect_error(response, StatusCode::BAD_REQUEST).await;
    }
}

#[tokio::test]
async fn unknown_fields_are_400_not_ignored() {
    let server = Server::start();
    let response = server
        .request(Method::POST, "/login")
        .header("content-type", "application/json")
        .body(r#"{"email":"alice@example.com","password":"x","admin":true}"#)
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::BAD_REQUEST).await;
}

#[tokio::test]
async fn a_body_that_is_not_json_is_415() {
    let server = Server::start();
    let response = server
        .request(Method::POST, "/login")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("email=alice%40example.com&password=x")
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    let cookie = server.login_alice().await;
    let response = with_cookie(server.request(Method::POST, "/logout"), Some(&cookie))
        .header("content-type", "text/plain")
        .body("everywhere")
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
}

#[tokio::test]
async fn an_oversized_body_is_413() {
    let server = Server::start();
    let huge = format!(
        r#"{{"email":"a@example.com","password":"{}"}}"#,
        "p".repeat(200_000)
    );
    let response = server
        .request(Method::POST, "/login")
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::PAYLOAD_TOO_LARGE).await;
}

#[tokio::test]
async fn garbage_and_truncated_cookies_are_401() {
    let server = Server::start();
    let real = server.login_alice().await;
    let garbage = [
        String::new(),
        "not-a-session".into(),
        real[..42].to_owned(),
        format!("{real}A"),
        format!("{real}="),
        real.replace(|c: char| c.is_ascii_lowercase(), "+"),
        "%00%ff".into(),
        "é".repeat(43),
    ];
    for value in garbage {
        let response = server
            .request(Method::GET, "/profile")
            .header("cookie", format!("{COOKIE}={value}"))
            .send()
            .await
            .unwrap();
        expect_error(response, StatusCode::UNAUTHORIZED).await;
    }
    let response = server
        .request(Method::GET, "/profile")
        .header("cookie", ";;;=;==; garbage")
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::UNAUTHORIZED).await;
}

#[tokio::test]
async fn unknown_routes_and_methods_are_json_errors() {
    let server = Server::start();
    expect_error(server.get("/nope", None).await, StatusCode::NOT_FOUND).await;
    let response = server
        .request(Method::DELETE, "/login")
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::METHOD_NOT_ALLOWED).await;
    let cookie = server.login_alice().await;
    let response = with_cookie(
        server.request(Method::DELETE, "/sessions/%FF%FE"),
        Some(&cookie),
    )
    .send()
    .await
    .unwrap();
    assert!(response.status().is_client_error(), "{}", response.status());
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(content_type, "application/json");
}

/// A 413 closes its connection (the rest of the body may still be on its
/// way) and says so, so that a client sending the next request does not
/// reuse it and find it closed (seen as `IncompleteMessage` in a loop of
/// requests on one pooled client).
#[tokio::test]
async fn after_a_413_the_next_request_on_the_same_client_is_answered() {
    let server = Server::start();
    let huge = format!(r#"{{"email":"{}"}}"#, "a".repeat(200_000));
    for _ in 0..20 {
        let response = server
            .request(Method::POST, "/login")
            .header("content-type", "application/json")
            .body(huge.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()["connection"], "close");
        expect_error(response, StatusCode::PAYLOAD_TOO_LARGE).await;
        let next = server
            .request(Method::POST, "/login")
            .header("content-type", "application/json")
            .body("{")
            .send()
            .await
            .expect("the next request is answered");
        expect_error(next, StatusCode::BAD_REQUEST).await;
    }
}
