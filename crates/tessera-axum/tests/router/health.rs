//! Health: anonymous callers get a status and nothing else; orchestrators
//! get liveness and named readiness checks; admins get the details.

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::support::{App, Call};

#[tokio::test]
async fn anonymous_health_is_the_status_only() {
    let app = App::new();
    let reply = app.send(Call::new(Method::GET, "/health")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, json!({"status": "ok"}));
    assert_eq!(
        reply.header(axum::http::header::CONTENT_TYPE),
        Some("application/json")
    );

    app.state.set_store_up(false);
    let reply = app.send(Call::new(Method::GET, "/health")).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.body, json!({"status": "unavailable"}));
}

#[tokio::test]
async fn liveness_holds_while_the_stores_are_down() {
    let app = App::new();
    app.state.set_store_up(false);
    app.state.set_users_up(false);
    let reply = app.send(Call::new(Method::GET, "/health/live")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, json!({"status": "ok"}));
}

#[tokio::test]
async fn readiness_names_each_failed_check_and_nothing_else() {
    let app = App::new();
    // Built without `Service::start`: the revocation list is not loaded yet.
    let reply = app.send(Call::new(Method::GET, "/health/ready")).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        reply.body,
        json!({"status": "unavailable", "failed": ["revocation_list"]})
    );

    app.state.tokens().revocations().sync().await.unwrap();
    let reply = app.send(Call::new(Method::GET, "/health/ready")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, json!({"status": "ok"}));

    app.state.set_users_up(false);
    let reply = app.send(Call::new(Method::GET, "/health/ready")).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        reply.body,
        json!({"status": "unavailable", "failed": ["user_store"]})
    );
    // The user store alone does not take `/health` down: sessions still work.
    let reply = app.send(Call::new(Method::GET, "/health")).await;
    assert_eq!(reply.status, StatusCode::OK);

    app.state.set_store_up(false);
    let reply = app.send(Call::new(Method::GET, "/health/ready")).await;
    assert_eq!(
        reply.body,
        json!({"status": "unavailable", "failed": ["session_store", "user_store"]})
    );
}

#[tokio::test]
async fn the_details_are_for_admins_only() {
    let app = App::new();
    app.add_user("admin@example.com", &["admin"]).await;
    app.add_user("member@example.com", &[]).await;
    app.state.tokens().revocations().sync().await.unwrap();

    let anonymous = app.send(Call::new(Method::GET, "/admin/v1/health")).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let member = app.login("member@example.com").await.cookie;
    let reply = app
        .send(Call::new(Method::GET, "/admin/v1/health").cookie(&member))
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(reply.body["error"]["code"], "forbidden");

    let admin = app.login("admin@example.com").await.cookie;
    app.state.set_users_up(false);
    let reply = app
        .send(Call::new(Method::GET, "/admin/v1/health").cookie(&admin))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let body = reply.body;
    assert_eq!(body["status"], "ok");
    assert_eq!(body["ready"]["status"], "unavailable");
    assert_eq!(
        body["ready"]["checks"],
        json!({"session_store": "ok", "user_store": "failed", "revocation_list": "ok"})
    );
    assert_eq!(body["store"]["backend"], "sqlite");
    assert_eq!(body["store"]["durable"], true);
    assert_eq!(
        body["users"],
        json!({"backend": "sqlite", "status": "down"})
    );
    assert_eq!(body["revocations"]["loaded"], true);
    assert_eq!(body["revocations"]["tokens"], 0);
    assert_eq!(body["mail"]["transport"], "none");
    assert_eq!(body["audit"]["dropped"], 0);
}
