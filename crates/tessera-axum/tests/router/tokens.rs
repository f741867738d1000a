//! Access tokens from `POST /token` on protected routes.

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::support::{App, Call};

#[tokio::test]
async fn an_access_token_from_post_token_identifies_its_user_on_profile() {
    let app = App::new();
    app.add_user("token@example.com", &["admin"]).await;
    let token = app.access_token("token@example.com").await;
    let reply = app
        .send(Call::new(Method::GET, "/profile").bearer(&token))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["user"]["email"], "token@example.com");
    assert_eq!(reply.body["user"]["roles"], json!(["admin"]));
    assert!(reply.session_cookies().is_empty(), "{:?}", reply.headers);
}

#[tokio::test]
async fn session_data_cannot_be_patched_with_a_bearer_token() {
    let app = App::new();
    app.add_user("token-patch@example.com", &[]).await;
    let token = app.access_token("token-patch@example.com").await;
    let reply = app
        .send(
            Call::new(Method::PATCH, "/session")
                .bearer(&token)
                .json(&json!({"theme": "dark"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.body);
    assert_eq!(reply.body["error"]["code"], "unauthenticated");
}
