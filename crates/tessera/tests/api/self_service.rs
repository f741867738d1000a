//! The logged-in user's own account: `POST /password`, `POST /email` with
//! `POST /email/confirm`, and `DELETE /account`.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::mailbox::{Mailbox, mailing, user_id};

const NEW_PASSWORD: &str = "a fresh and long passphrase";

async fn as_alice(
    server: &Server,
    method: Method,
    path: &str,
    cookie: &str,
    body: Value,
) -> reqwest::Response {
    server.send_json(method, path, Some(cookie), body).await
}

#[tokio::test]
async fn changing_the_password_keeps_this_browser_and_ends_every_other_credential() {
    let server = Server::start_with(mailing());
    let mailbox = Mailbox::of(&server.data);
    let here = server.login_alice().await;
    let elsewhere = server.login_alice().await;
    let tokens = server.token_alice().await;

    let response = as_alice(
        &server,
        Method::POST,
        "/password",
        &here,
        json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let fresh = session_cookie(response.headers()).expect("a fresh session cookie");
    assert_ne!(fresh, here);
    assert_eq!(
        server.get("/profile", Some(&fresh)).await.status(),
        StatusCode::OK
    );
    for old in [&here, &elsewhere] {
        assert_eq!(
            server.get("/profile", Some(old)).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        refresh(&server, tokens["refresh_token"].as_str().unwrap())
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    server.login("alice@example.com", NEW_PASSWORD).await;
    mailbox.wait_for("alice@example.com", 1).await;
}

#[tokio::test]
async fn a_password_change_can_keep_the_other_sessions() {
    let server = Server::start();
    let here = server.login_alice().await;
    let elsewhere = server.login_alice().await;
    let response = as_alice(
        &server,
        Method::POST,
        "/password",
        &here,
        json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD,
               "end_other_sessions": false}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    for cookie in [&here, &elsewhere] {
        assert_eq!(
            server.get("/profile", Some(cookie)).await.status(),
            StatusCode::OK
        );
    }
    server.login("alice@example.com", NEW_PASSWORD).await;
}

#[tokio::test]
async fn a_password_change_needs_the_current_password_and_a_good_new_one() {
    let server = Server::start();
    let cookie = server.login_alice().await;
    let wrong = as_alice(
        &server,
        Method::POST,
        "/password",
        &cookie,
        json!({"current_password": "not it", "new_password": NEW_PASSWORD}),
    )
    .await;
    assert_eq!(
        expect_error(wrong, StatusCode::UNAUTHORIZED).await,
        "invalid_credentials"
    );
    let weak = as_alice(
        &server,
        Method::POST,
        "/password",
        &cookie,
        json!({"current_password": PASSWORD, "new_password": "short"}),
    )
    .await;
    assert_eq!(
        expect_error(weak, StatusCode::BAD_REQUEST).await,
        "weak_password"
    );
    // Nothing changed, and the caller is still logged in.
    assert_eq!(
        server.get("/profile", Some(&cookie)).await.status(),
        StatusCode::OK
    );
    server.login_alice().await;
    // Without a credential: 401.
    let anonymous = server
        .send_json(
            Method::POST,
            "/password",
            None,
            json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}),
        )
        .await;
    expect_error(anonymous, StatusCode::UNAUTHORIZED).await;
}

#[tokio::test]
async fn a_bearer_caller_changes_its_password_and_logs_in_again() {
    let server = Server::start();
    let tokens = server.token_alice().await;
    let access = tokens["access_token"].as_str().unwrap();
    let response = server
        .request(Method::POST, "/password")
        .bearer_auth(access)
        .json(&json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        bearer(&server, "/profile", access).await.status(),
        StatusCode::UNAUTHORIZED
    );
    server.login("alice@example.com", NEW_PASSWORD).await;
}

#[tokio::test]
async fn guessing_the_current_password_is_throttled_like_a_login() {
    let server = Server::start_with(Options::default().env("TESSERA_LOGIN_ACCOUNT_BURST", 3));
    let cookie = server.login_alice().await;
    let mut statuses = Vec::new();
    for i in 0..5 {
        let response = as_alice(
            &server,
            Method::POST,
            "/password",
            &cookie,
            json!({"current_password": format!("guess {i}"), "new_password": NEW_PASSWORD}),
        )
        .await;
        statuses.push(response.status());
    }
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn an_address_changes_only_once_the_new_one_confirms() {
    let server = Server::start_with(mailing());
    let mailbox = Mailbox::of(&server.data);
    let cookie = server.login_alice().await;
    let response = as_alice(
        &server,
        Method::POST,
        "/email",
        &cookie,
        json!({"new_email": "alice@new.example", "password": PASSWORD}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let confirmation = &mailbox.wait_for("alice@new.example", 1).await[0];
    let (link, token) = confirmation.link().unwrap();
    assert!(link.contains("/confirm-email?token="), "{link}");
    let notice = &mailbox.wait_for("alice@example.com", 1).await[0];
    assert!(notice.link().is_none());
    // Nothing changed yet.
    server.login_alice().await;

    let confirmed = server
        .send_json(
            Method::POST,
            "/email/confirm",
            None,
            json!({"token": token}),
        )
        .await;
    assert_eq!(confirmed.status(), StatusCode::OK);
    let body: Value = confirmed.json().await.unwrap();
    assert_eq!(body["user"]["email"], "alice@new.example");
    server.login("alice@new.example", PASSWORD).await;
    let old = server.login_response("alice@example.com", PASSWORD).await;
    assert_eq!(old.status(), StatusCode::UNAUTHORIZED);
    let profile: Value = server
        .get("/profile", Some(&cookie))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(profile["user"]["email"], "alice@new.example", "{profile}");
    // The old address is told.
    mailbox.wait_for("alice@example.com", 2).await;
    let again = server
        .send_json(
            Method::POST,
            "/email/confirm",
            None,
            json!({"token": token}),
        )
        .await;
    assert_eq!(
        expect_error(again, StatusCode::BAD_REQUEST).await,
        "invalid_ticket"
    );
}

#[tokio::test]
async fn asking_for_a_taken_address_answers_alike_and_mails_it_nothing() {
    let server = Server::start_with(mailing());
    let mailbox = Mailbox::of(&server.data);
    server.data.add_user("bob@example.com", &[]);
    let cookie = server.login_alice().await;
    let mut seen = Vec::new();
    for new_email in ["bob@example.com", "fresh@example.com"] {
        let response = as_alice(
            &server,
            Method::POST,
            "/email",
            &cookie,
            json!({"new_email": new_email, "password": PASSWORD}),
        )
        .await;
        seen.push((response.status(), response.bytes().await.unwrap()));
    }
    assert_eq!(seen[0].0, StatusCode::ACCEPTED);
    assert_eq!(seen[0], seen[1]);
    mailbox.wait_for("fresh@example.com", 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(mailbox.to("bob@example.com").is_empty());
}

#[tokio::test]
async fn an_address_taken_before_the_confirmation_is_refused() {
    let server = Server::start_with(mailing());
    let mailbox = Mailbox::of(&server.data);
    let cookie = server.login_alice().await;
    as_alice(
        &server,
        Method::POST,
        "/email",
        &cookie,
        json!({"new_email": "bob@example.com", "password": PASSWORD}),
    )
    .await;
    let token = mailbox.token("bob@example.com", 1).await;
    server.data.add_user("bob@example.com", &[]);
    let response = server
        .send_json(
            Method::POST,
            "/email/confirm",
            None,
            json!({"token": token}),
        )
        .await;
    assert_eq!(
        expect_error(response, StatusCode::CONFLICT).await,
        "email_taken"
    );
    server.login_alice().await;
}

#[tokio::test]
async fn deleting_the_account_ends_everything_and_frees_the_address() {
    let server = Server::start_with(mailing());
    let mailbox = Mailbox::of(&server.data);
    let cookie = server.login_alice().await;
    let other = server.login_alice().await;
    let tokens = server.token_alice().await;

    let wrong = as_alice(
        &server,
        Method::DELETE,
        "/account",
        &cookie,
        json!({"password": "not it"}),
    )
    .await;
    assert_eq!(
        expect_error(wrong, StatusCode::UNAUTHORIZED).await,
        "invalid_credentials"
    );

    let response = as_alice(
        &server,
        Method::DELETE,
        "/account",
        &cookie,
        json!({"password": PASSWORD}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let cleared = set_cookie_header(response.headers()).expect("the cookie is cleared");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    for c in [&cookie, &other] {
        assert_eq!(
            server.get("/profile", Some(c)).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        bearer(
            &server,
            "/profile",
            tokens["access_token"].as_str().unwrap()
        )
        .await
        .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        refresh(&server, tokens["refresh_token"].as_str().unwrap())
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let login = server.login_response("alice@example.com", PASSWORD).await;
    assert_eq!(login.status(), StatusCode::UNAUTHORIZED);
    mailbox.wait_for("alice@example.com", 1).await;
    // The address can be used again.
    server.data.add_user("alice@example.com", &[]);
    server.login_alice().await;
}

#[tokio::test]
async fn bad_bodies_on_the_account_routes_are_4xx_json() {
    let server = Server::start();
    let cookie = server.login_alice().await;
    for (method, path) in [
        (Method::POST, "/password"),
        (Method::POST, "/email"),
        (Method::DELETE, "/account"),
    ] {
        for body in ["{", "null", "{\"password\": 3}", "{\"unknown\": true}"] {
            let response = with_cookie(server.request(method.clone(), path), Some(&cookie))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            expect_error(response, StatusCode::BAD_REQUEST).await;
        }
    }
    assert_eq!(
        server.get("/profile", Some(&cookie)).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_password_reset_ends_a_pending_address_change() {
    // Someone with the password asks to move the account to their address;
    // the owner resets the password: that link must die with it.
    let server = Server::start_with(mailing());
    let mailbox = Mailbox::of(&server.data);
    let intruder = server.login_alice().await;
    as_alice(
        &server,
        Method::POST,
        "/email",
        &intruder,
        json!({"new_email": "intruder@example.net", "password": PASSWORD}),
    )
    .await;
    let hijack = mailbox.token("intruder@example.net", 1).await;
    server
        .send_json(
            Method::POST,
            "/password/forgot",
            None,
            json!({"email": "alice@example.com"}),
        )
        .await;
    let messages = mailbox.wait_for("alice@example.com", 2).await;
    let reset = messages
        .iter()
        .find_map(|m| m.link().filter(|(l, _)| l.contains("reset-password")))
        .unwrap()
        .1;
    let response = server
        .send_json(
            Method::POST,
            "/password/reset",
            None,
            json!({"token": reset, "password": NEW_PASSWORD}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let late = server
        .send_json(
            Method::POST,
            "/email/confirm",
            None,
            json!({"token": hijack}),
        )
        .await;
    assert_eq!(
        expect_error(late, StatusCode::BAD_REQUEST).await,
        "invalid_ticket"
    );
    server.login("alice@example.com", NEW_PASSWORD).await;
}

#[tokio::test]
async fn address_change_requests_are_throttled_per_new_address() {
    let server = Server::start_with(mailing().env("TESSERA_LOGIN_ACCOUNT_BURST", 100));
    let cookie = server.login_alice().await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let response = as_alice(
            &server,
            Method::POST,
            "/email",
            &cookie,
            json!({"new_email": "target@example.net", "password": PASSWORD}),
        )
        .await;
        statuses.push(response.status());
    }
    assert_eq!(statuses[0], StatusCode::ACCEPTED);
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn a_sealed_cookie_browser_stays_logged_in_after_changing_its_password() {
    let server = Server::start_with(Options::default().env("TESSERA_SESSION_STORAGE", "cookie"));
    let here = server.login_alice().await;
    let response = as_alice(
        &server,
        Method::POST,
        "/password",
        &here,
        json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let fresh = session_cookie(response.headers()).expect("a fresh sealed cookie");
    assert_eq!(
        server.get("/profile", Some(&fresh)).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        server.get("/profile", Some(&here)).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn an_admin_address_change_logs_no_address() {
    let server = Server::start();
    server.data.add_user("bob@example.com", &[]);
    let admin = server.login_alice().await;
    let id = user_id(&server, &admin, "bob").await;
    let response = server
        .send_json(
            Method::PATCH,
            &format!("/admin/v1/users/{id}"),
            Some(&admin),
            json!({"email": "robert.secret@example.net"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !server.logs().contains("robert.secret"),
        "{}",
        server.logs()
    );
}
