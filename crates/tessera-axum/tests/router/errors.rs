//! Every failure answers `{"error": {"code", "message"}}`, whoever produced
//! it: our handlers, our extractors or axum itself.

use axum::http::{Method, StatusCode, header};
use serde_json::json;
use tessera_axum::AppConfig;

use crate::support::{App, Call, login_body};

#[tokio::test]
async fn every_error_is_a_json_object_with_a_code_and_a_message() {
    let app = App::with_config(AppConfig {
        max_body_bytes: 1024,
        ..AppConfig::default()
    });
    app.add_user("errors@example.com", &[]).await;
    let login = app.login("errors@example.com").await;
    let oversized = json!({"email": "x".repeat(2048), "password": "p"});
    let cases = [
        (
            "an unknown route",
            Call::new(Method::GET, "/nowhere"),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "a known route with the wrong method",
            Call::new(Method::GET, "/login"),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            "malformed JSON",
            Call::new(Method::POST, "/login").raw("application/json", "{\"email\":"),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            "a body that is not JSON",
            Call::new(Method::POST, "/login").raw("text/plain", login_body("a@b").to_string()),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "a JSON body over max_body_bytes",
            Call::new(Method::POST, "/login").json(&oversized),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            "an optional body over max_body_bytes",
            Call::new(Method::POST, "/logout")
                .cookie(&login.cookie)
                .json(&oversized),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            "a path parameter that is not UTF-8 (axum's own rejection)",
            Call::new(Method::DELETE, "/sessions/%FF").cookie(&login.cookie),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "no credential",
            Call::new(Method::GET, "/profile"),
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        ),
    ];
    let mut failures = Vec::new();
    for (what, call, status, code) in cases {
        let reply = app.send(call).await;
        let json_type = reply
            .header(header::CONTENT_TYPE)
            .is_some_and(|t| t.starts_with("application/json"));
        let error = &reply.body["error"];
        let shaped = reply.body.as_object().is_some_and(|o| o.len() == 1)
            && error.as_object().is_some_and(|o| o.len() == 2)
            && error["message"].as_str().is_some_and(|m| !m.is_empty());
        if reply.status != status || !json_type || !shaped || error["code"] != code {
            failures.push(format!(
                "{what}: expected {status} {code}, got {} {:?} {}",
                reply.status,
                reply.header(header::CONTENT_TYPE),
                reply.body
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn a_refused_credential_is_answered_with_a_bearer_challenge() {
    let app = App::new();
    let none = app.send(Call::new(Method::GET, "/profile")).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        none.header(header::WWW_AUTHENTICATE),
        Some("Bearer realm=\"tessera\"")
    );
    let forged = app
        .send(Call::new(Method::GET, "/profile").bearer("not.a.token"))
        .await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
    assert_eq!(forged.body["error"]["code"], "invalid_token");
    assert_eq!(
        forged.header(header::WWW_AUTHENTICATE),
        Some("Bearer realm=\"tessera\", error=\"invalid_token\"")
    );
}
