//! Sessions sealed in the cookie (`session_storage = cookie`).

use std::time::Duration;

use axum::http::{Method, StatusCode};
use serde_json::json;
use tessera_axum::caller::sealed::CookieKey;
use tessera_axum::{AppConfig, SessionStorage};
use tessera_core::{Email, SessionPolicy, Timestamp};

use crate::support::{App, Call};

#[tokio::test]
async fn a_sealed_cookie_session_logs_in_keeps_patched_data_and_is_refused_after_logout() {
    let app = App::with_config(AppConfig {
        session_storage: SessionStorage::Cookie(CookieKey::generate()),
        ..AppConfig::default()
    });
    app.add_user("sealed@example.com", &[]).await;
    let login = app.login("sealed@example.com").await;
    let user = app
        .state
        .users()
        .by_email(&Email::parse("sealed@example.com").unwrap())
        .await
        .unwrap()
        .unwrap();
    let stored = app
        .state
        .sessions()
        .list_for_user(user.id, Timestamp::now())
        .await
        .unwrap();
    assert!(stored.is_empty(), "a sealed session was stored: {stored:?}");

    let patched = app
        .send(
            Call::new(Method::PATCH, "/session")
                .cookie(&login.cookie)
                .json(&json!({"theme": "dark"})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(patched.body["data"], json!({"theme": "dark"}));
    let resealed = patched.only_session_cookie().unwrap();
    assert_ne!(resealed.value(), login.cookie);

    let read = app
        .send(Call::new(Method::GET, "/session").cookie(resealed.value()))
        .await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    assert_eq!(read.body["data"], json!({"theme": "dark"}));

    let logout = app
        .send(Call::new(Method::POST, "/logout").cookie(resealed.value()))
        .await;
    assert_eq!(logout.status, StatusCode::OK, "{}", logout.body);
    for cookie in [resealed.value(), login.cookie.as_str()] {
        assert_eq!(
            app.profile_status(cookie).await,
            StatusCode::UNAUTHORIZED,
            "a sealed cookie still works after logout"
        );
    }
}

#[tokio::test]
async fn a_sealed_session_due_for_a_reseal_keeps_the_cookie_its_handler_set() {
    let policy = SessionPolicy::new(Duration::from_secs(10), Duration::from_secs(3600)).unwrap();
    let app = App::with_config(AppConfig {
        session_storage: SessionStorage::Cookie(CookieKey::generate()),
        policy,
        ..AppConfig::default()
    });
    app.add_user("reseal@example.com", &[]).await;
    let login = app.login("reseal@example.com").await;
    // Past the touch interval, every request with this cookie is due for a
    // reseal, which `reply` must not add over the handler's own cookie.
    tokio::time::sleep(policy.touch_interval() + Duration::from_millis(100)).await;

    let patched = app
        .send(
            Call::new(Method::PATCH, "/session")
                .cookie(&login.cookie)
                .json(&json!({"theme": "dark"})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    let carrying_data = patched.only_session_cookie().unwrap();
    let read = app
        .send(Call::new(Method::GET, "/session").cookie(carrying_data.value()))
        .await;
    assert_eq!(read.body["data"], json!({"theme": "dark"}));

    let logout = app
        .send(Call::new(Method::POST, "/logout").cookie(&login.cookie))
        .await;
    assert_eq!(logout.status, StatusCode::OK, "{}", logout.body);
    let cleared = logout.only_session_cookie().unwrap();
    assert_eq!(cleared.value(), "");
    assert_eq!(cleared.max_age(), Some(cookie::time::Duration::ZERO));
}
