use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

fn with_bob() -> Server {
    let server = Server::start();
    server.data.add_user("bob@example.com", &["member"]);
    server
}

#[tokio::test]
async fn a_role_change_reaches_a_live_session_on_its_next_request_under_a_fresh_id() {
    let server = with_bob();
    let admin = server.login_alice().await;
    let bob = server.login("bob@example.com", PASSWORD).await;
    let response = server
        .send_json(
            Method::PATCH,
            "/admin/users/bob@example.com",
            Some(&admin),
            json!({"roles": ["member", "billing"]}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["user"]["roles"], json!(["billing", "member"]));
    assert_eq!(body["sessions_affected"], 1);

    let response = server.get("/profile", Some(&bob)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let rotated = session_cookie(response.headers()).expect("privilege change issues a fresh id");
    assert_ne!(rotated, bob);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["user"]["roles"],
        json!(["billing", "member"]),
        "no re-login needed"
    );
    // Within the grace (see rotation.rs) the old id still names the
    // session, and hands out the same fresh id.
    let late = server.get("/profile", Some(&bob)).await;
    assert_eq!(late.status(), StatusCode::OK);
    assert_eq!(session_cookie(late.headers()), Some(rotated.clone()));
    let again = server.get("/profile", Some(&rotated)).await;
    assert_eq!(session_cookie(again.headers()), None, "the fresh id stays");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["user"]["roles"], json!(["billing", "member"]));
}

#[tokio::test]
async fn only_admins_may_change_users() {
    let server = with_bob();
    let bob = server.login("bob@example.com", PASSWORD).await;
    let response = server
        .send_json(
            Method::PATCH,
            "/admin/users/alice@example.com",
            Some(&bob),
            json!({"disabled": true}),
        )
        .await;
    assert_eq!(
        expect_error(response, StatusCode::FORBIDDEN).await,
        "forbidden"
    );
    assert_eq!(
        server
            .login_response("alice@example.com", PASSWORD)
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn disabling_a_user_ends_their_sessions_at_once_and_blocks_login() {
    let server = with_bob();
    let admin = server.login_alice().await;
    let bob1 = server.login("bob@example.com", PASSWORD).await;
    let bob2 = server.login("bob@example.com", PASSWORD).await;
    let response = server
        .send_json(
            Method::PATCH,
            "/admin/users/bob@example.com",
            Some(&admin),
            json!({"disabled": true}),
        )
        .await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["sessions_affected"], 2);
    assert_eq!(body["user"]["disabled"], true);
    for cookie in [&bob1, &bob2] {
        expect_error(
            server.get("/profile", Some(cookie)).await,
            StatusCode::UNAUTHORIZED,
        )
        .await;
    }
    expect_error(
        server.login_response("bob@example.com", PASSWORD).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
}

#[tokio::test]
async fn admin_patches_are_validated() {
    let server = with_bob();
    let admin = server.login_alice().await;
    let cases = [
        (
            "/admin/users/bob@example.com",
            json!({}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/admin/users/bob@example.com",
            json!({"roles": ["Not Valid"]}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/admin/users/bob@example.com",
            json!({"colour": "red"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/admin/users/nobody@example.com",
            json!({"roles": []}),
            StatusCode::NOT_FOUND,
        ),
        (
            "/admin/users/not-an-email",
            json!({"roles": []}),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (path, body, status) in cases {
        let response = server
            .send_json(Method::PATCH, path, Some(&admin), body)
            .await;
        expect_error(response, status).await;
    }
}

#[tokio::test]
async fn cli_role_changes_reach_sessions_of_a_running_server() {
    let server = with_bob();
    let bob = server.login("bob@example.com", PASSWORD).await;
    // Read it first, so that the server holds the session in its cache.
    assert_eq!(
        server.get("/profile", Some(&bob)).await.status(),
        StatusCode::OK
    );
    let out = server.data.cli(
        &["user", "set-role", "bob@example.com", "--role", "auditor"],
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body: Value = server
        .get("/profile", Some(&bob))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["user"]["roles"], json!(["auditor"]));
}

#[tokio::test]
async fn cli_disable_while_the_server_is_down_ends_sessions_for_good() {
    let mut server = with_bob();
    let bob = server.login("bob@example.com", PASSWORD).await;
    server.kill_9();
    let out = server.data.cli(&["user", "disable", "bob@example.com"], "");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 sessions ended"));
    server.restart();
    expect_error(
        server.get("/profile", Some(&bob)).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
}

#[tokio::test]
async fn cli_disable_ends_sessions_of_a_running_server_at_once() {
    let server = with_bob();
    let bob = server.login("bob@example.com", PASSWORD).await;
    assert_eq!(
        server.get("/profile", Some(&bob)).await.status(),
        StatusCode::OK
    );
    let out = server.data.cli(&["user", "disable", "bob@example.com"], "");
    assert!(out.status.success());
    expect_error(
        server.get("/profile", Some(&bob)).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
}

#[tokio::test]
async fn rotation_also_happens_on_error_answers_and_is_deferred_past_rejected_bodies() {
    let server = with_bob();
    let admin = server.login_alice().await;
    let bob = server.login("bob@example.com", PASSWORD).await;
    let change = server
        .send_json(
            Method::PATCH,
            "/admin/users/bob@example.com",
            Some(&admin),
            json!({"roles": ["viewer"]}),
        )
        .await;
    assert_eq!(change.status(), StatusCode::OK);

    // A malformed body is rejected before the handler runs: no rotation yet,
    // and the old id keeps working rather than logging bob out.
    let rejected = with_cookie(server.request(Method::PATCH, "/session"), Some(&bob))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(rejected.status(), StatusCode::BAD_REQUEST);
    assert!(session_cookie(rejected.headers()).is_none());

    // A 403 from the handler still carries the fresh id.
    let forbidden = server
        .send_json(
            Method::PATCH,
            "/admin/users/alice@example.com",
            Some(&bob),
            json!({"disabled": true}),
        )
        .await;
    let fresh = session_cookie(forbidden.headers()).expect("rotated on the 403 too");
    assert_eq!(
        expect_error(forbidden, StatusCode::FORBIDDEN).await,
        "forbidden"
    );
    assert_eq!(
        server.get("/profile", Some(&fresh)).await.status(),
        StatusCode::OK
    );
    // The old id, within the grace, leads to the same fresh id.
    let late = server.get("/profile", Some(&bob)).await;
    assert_eq!(late.status(), StatusCode::OK);
    assert_eq!(session_cookie(late.headers()), Some(fresh));
}
