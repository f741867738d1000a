//! Cross-site state changes with an ambient credential are refused.

use axum::http::{Method, StatusCode};

use crate::support::{App, Call, HOST};

const EVIL: &str = "https://evil.example";

#[tokio::test]
async fn a_cookie_logout_from_another_site_is_refused_and_the_session_lives_on() {
    let app = App::new();
    app.add_user("csrf@example.com", &[]).await;
    let login = app.login("csrf@example.com").await;
    let reply = app
        .send(
            Call::new(Method::POST, "/logout")
                .cookie(&login.cookie)
                .sent_from(EVIL),
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(reply.body["error"]["code"], "cross_site_request");
    assert!(reply.session_cookies().is_empty(), "{:?}", reply.headers);
    assert_eq!(app.profile_status(&login.cookie).await, StatusCode::OK);
}

#[tokio::test]
async fn a_cookie_logout_from_the_same_origin_ends_the_session() {
    let app = App::new();
    app.add_user("same-origin@example.com", &[]).await;
    let login = app.login("same-origin@example.com").await;
    let reply = app
        .send(
            Call::new(Method::POST, "/logout")
                .cookie(&login.cookie)
                .sent_from(&format!("https://{HOST}")),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["sessions_ended"], 1);
    assert_eq!(
        app.profile_status(&login.cookie).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_bearer_token_is_not_subject_to_the_cross_site_check() {
    let app = App::new();
    app.add_user("bearer-csrf@example.com", &[]).await;
    let token = app.access_token("bearer-csrf@example.com").await;
    let reply = app
        .send(
            Call::new(Method::POST, "/logout")
                .bearer(&token)
                .sent_from(EVIL)
                .header("sec-fetch-site", "cross-site"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let after = app
        .send(Call::new(Method::GET, "/profile").bearer(&token))
        .await;
    assert_eq!(
        after.status,
        StatusCode::UNAUTHORIZED,
        "the logout did not end the token"
    );
}
