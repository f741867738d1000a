//! Links an admin or operator makes: invites (`POST /admin/v1/invites`,
//! `tessera user invite`) and recovery links (`POST
//! /admin/v1/users/{id}/password-reset`, `tessera user reset-link`), and the
//! audit trail the self-service flows leave.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::mailbox::{Mailbox, mailing, user_id};

const NEW_PASSWORD: &str = "a fresh and long passphrase";

async fn admin_post(server: &Server, cookie: &str, path: &str, body: Value) -> reqwest::Response {
    server
        .send_json(Method::POST, path, Some(cookie), body)
        .await
}

async fn signup_with(server: &Server, email: &str, invite: &str) -> reqwest::Response {
    server
        .send_json(
            Method::POST,
            "/signup",
            None,
            json!({"email": email, "password": NEW_PASSWORD, "invite": invite}),
        )
        .await
}

#[tokio::test]
async fn an_invited_address_signs_up_once_with_the_invites_roles_and_verified() {
    let server = Server::start_with(mailing().env("TESSERA_REGISTRATION", "invite"));
    let mailbox = Mailbox::of(&server.data);
    let admin = server.login_alice().await;
    let response = admin_post(
        &server,
        &admin,
        "/admin/v1/invites",
        json!({"email": "Carol@Example.com", "roles": ["editor"]}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["invite"]["mailed"], true);
    assert!(
        body["invite"].get("link").is_none(),
        "a mailed link is not shown: {body}"
    );
    let message = &mailbox.wait_for("carol@example.com", 1).await[0];
    let (link, invite) = message.link().unwrap();
    assert!(link.contains("/accept-invite?token="), "{link}");

    // Only for the address it was sent to, and that attempt does not spend it.
    let other = signup_with(&server, "mallory@example.com", &invite).await;
    assert_eq!(
        expect_error(other, StatusCode::FORBIDDEN).await,
        "invite_required"
    );
    let created = signup_with(&server, "carol@example.com", &invite).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let body: Value = created.json().await.unwrap();
    assert_eq!(body["user"]["roles"], json!(["editor"]));
    let again = signup_with(&server, "carol@example.com", &invite).await;
    assert_eq!(
        expect_error(again, StatusCode::FORBIDDEN).await,
        "invite_required"
    );

    let cookie = server.login("carol@example.com", NEW_PASSWORD).await;
    let profile: Value = server
        .get("/profile", Some(&cookie))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(profile["user"]["email_verified"], true, "{profile}");
    assert_eq!(profile["user"]["roles"], json!(["editor"]));
}

#[tokio::test]
async fn an_invite_is_refused_for_a_taken_address_and_needs_the_admin_role() {
    let server = Server::start_with(mailing());
    server.data.add_user("bob@example.com", &[]);
    let admin = server.login_alice().await;
    let taken = admin_post(
        &server,
        &admin,
        "/admin/v1/invites",
        json!({"email": "bob@example.com"}),
    )
    .await;
    expect_error(taken, StatusCode::CONFLICT).await;
    let bob = server.login("bob@example.com", PASSWORD).await;
    let forbidden = admin_post(
        &server,
        &bob,
        "/admin/v1/invites",
        json!({"email": "eve@example.com"}),
    )
    .await;
    expect_error(forbidden, StatusCode::FORBIDDEN).await;
    // The users route sends invites too; a password and an invite at once
    // is refused.
    let invited = admin_post(
        &server,
        &admin,
        "/admin/v1/users",
        json!({"email": "erin@example.com", "invite": true}),
    )
    .await;
    assert_eq!(invited.status(), StatusCode::CREATED);
    Mailbox::of(&server.data)
        .wait_for("erin@example.com", 1)
        .await;
    let both = admin_post(
        &server,
        &admin,
        "/admin/v1/users",
        json!({"email": "frank@example.com", "invite": true, "password": NEW_PASSWORD}),
    )
    .await;
    expect_error(both, StatusCode::BAD_REQUEST).await;
    for body in [
        "{",
        "{\"email\": \"x\"}",
        "{\"email\": \"a@b.c\", \"roles\": [\"BAD ROLE\"]}",
    ] {
        let response = with_cookie(
            server.request(Method::POST, "/admin/v1/invites"),
            Some(&admin),
        )
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
        expect_error(response, StatusCode::BAD_REQUEST).await;
    }
}

#[tokio::test]
async fn without_a_mailer_the_operator_gets_the_link_once() {
    let server = Server::start_with(
        Options::default()
            .env("TESSERA_REGISTRATION", "invite")
            .env("TESSERA_PUBLIC_URL", "https://auth.example.test"),
    );
    let out = server.data.cli(
        &["user", "invite", "dave@example.com", "--role", "editor"],
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    let invite = printed
        .split("token=")
        .nth(1)
        .expect("the link is printed")
        .trim()
        .to_owned();
    let created = signup_with(&server, "dave@example.com", &invite).await;
    assert_eq!(created.status(), StatusCode::CREATED);

    // An admin's reset link for a user, over HTTP, returned in the answer.
    let admin = server.login_alice().await;
    let id = user_id(&server, &admin, "dave").await;
    let response = admin_post(
        &server,
        &admin,
        &format!("/admin/v1/users/{id}/password-reset"),
        json!({}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["mailed"], false);
    let link = body["link"].as_str().unwrap();
    let token = link.split("token=").nth(1).unwrap();
    let reset = server
        .send_json(
            Method::POST,
            "/password/reset",
            None,
            json!({"token": token, "password": "yet another long passphrase"}),
        )
        .await;
    assert_eq!(reset.status(), StatusCode::OK);
    server
        .login("dave@example.com", "yet another long passphrase")
        .await;

    let unknown = admin_post(
        &server,
        &admin,
        "/admin/v1/users/00000000-0000-4000-8000-000000000000/password-reset",
        json!({}),
    )
    .await;
    expect_error(unknown, StatusCode::NOT_FOUND).await;
    let malformed = admin_post(
        &server,
        &admin,
        "/admin/v1/users/nope/password-reset",
        json!({}),
    )
    .await;
    expect_error(malformed, StatusCode::BAD_REQUEST).await;
}

#[tokio::test]
async fn the_cli_reset_link_is_mailed_through_the_outbox_when_a_mailer_is_set() {
    let server = Server::start_with(mailing());
    let mailbox = Mailbox::of(&server.data);
    let out = server.data.cli_with_env(
        &["user", "reset-link", "alice@example.com"],
        "",
        &[
            ("TESSERA_MAIL", "file"),
            ("TESSERA_PUBLIC_URL", "https://auth.example.test"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("token="),
        "a mailed link is not printed"
    );
    // The running server's sender picks it up from the shared outbox.
    let token = mailbox.token("alice@example.com", 1).await;
    let reset = server
        .send_json(
            Method::POST,
            "/password/reset",
            None,
            json!({"token": token, "password": NEW_PASSWORD}),
        )
        .await;
    assert_eq!(reset.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_flows_leave_their_events_in_the_audit_trail_and_no_secret() {
    let server = Server::start_with(mailing());
    let mailbox = Mailbox::of(&server.data);
    server
        .send_json(
            Method::POST,
            "/signup",
            None,
            json!({"email": "bob@example.com", "password": NEW_PASSWORD}),
        )
        .await;
    let verify = mailbox.token("bob@example.com", 1).await;
    server
        .send_json(
            Method::POST,
            "/email/verify",
            None,
            json!({"token": verify}),
        )
        .await;
    server
        .send_json(
            Method::POST,
            "/password/forgot",
            None,
            json!({"email": "bob@example.com"}),
        )
        .await;
    let reset = mailbox.token("bob@example.com", 2).await;
    let response = server
        .send_json(
            Method::POST,
            "/password/reset",
            None,
            json!({"token": reset, "password": "another long passphrase"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let bob = server
        .login("bob@example.com", "another long passphrase")
        .await;
    server
        .send_json(
            Method::POST,
            "/email",
            Some(&bob),
            json!({"new_email": "robert@example.com", "password": "another long passphrase"}),
        )
        .await;
    let change = mailbox.token("robert@example.com", 1).await;
    server
        .send_json(
            Method::POST,
            "/email/confirm",
            None,
            json!({"token": change}),
        )
        .await;
    let bob = server
        .login("robert@example.com", "another long passphrase")
        .await;
    let deleted = server
        .send_json(
            Method::DELETE,
            "/account",
            Some(&bob),
            json!({"password": "another long passphrase"}),
        )
        .await;
    assert_eq!(deleted.status(), StatusCode::OK);

    let admin = server.login_alice().await;
    let wanted = [
        "signed_up",
        "email_verified",
        "password_reset",
        "email_change_requested",
        "email_changed",
        "user_deleted",
    ];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let raw = loop {
        let raw = server
            .get("/admin/v1/audit?limit=500", Some(&admin))
            .await
            .text()
            .await
            .unwrap();
        if wanted
            .iter()
            .all(|k| raw.contains(&format!("\"kind\":\"{k}\"")))
        {
            break raw;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "missing events in {raw}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    for secret in [
        verify.as_str(),
        reset.as_str(),
        change.as_str(),
        NEW_PASSWORD,
        "another long passphrase",
        "bob@example.com",
        "robert@example.com",
    ] {
        assert!(!raw.contains(secret), "the audit trail holds {secret}");
    }
}

#[tokio::test]
async fn an_invite_works_for_the_lifetime_it_was_given() {
    let server = Server::start_with(mailing().env("TESSERA_REGISTRATION", "invite"));
    let mailbox = Mailbox::of(&server.data);
    let admin = server.login_alice().await;
    let response = admin_post(
        &server,
        &admin,
        "/admin/v1/invites",
        json!({"email": "gina@example.com", "expires_in": 1}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let invite = mailbox.token("gina@example.com", 1).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let late = signup_with(&server, "gina@example.com", &invite).await;
    assert_eq!(
        expect_error(late, StatusCode::FORBIDDEN).await,
        "invite_required"
    );
}

#[tokio::test]
async fn security_notices_go_out_whatever_the_entry_point() {
    let server = Server::start_with(mailing());
    let mailbox = Mailbox::of(&server.data);
    server.data.add_user("bob@example.com", &[]);
    server.data.add_user("carol@example.com", &[]);
    // The CLI, through the outbox the running server delivers.
    let out = server.data.cli_with_env(
        &["user", "passwd", "bob@example.com", "--password-stdin"],
        &format!("{NEW_PASSWORD}\n"),
        &[
            ("TESSERA_MAIL", "file"),
            ("TESSERA_PUBLIC_URL", "https://auth.example.test"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let notice = &mailbox.wait_for("bob@example.com", 1).await[0];
    assert!(notice.link().is_none(), "{notice:?}");
    // The admin API: an address change tells the old address, a deletion
    // tells the account's.
    let admin = server.login_alice().await;
    let id = user_id(&server, &admin, "carol").await;
    let changed = server
        .send_json(
            Method::PATCH,
            &format!("/admin/v1/users/{id}"),
            Some(&admin),
            json!({"email": "caroline@example.com"}),
        )
        .await;
    assert_eq!(changed.status(), StatusCode::OK);
    mailbox.wait_for("carol@example.com", 1).await;
    let deleted = server
        .request(Method::DELETE, &format!("/admin/v1/users/{id}"))
        .header("cookie", format!("{COOKIE}={admin}"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    mailbox.wait_for("caroline@example.com", 1).await;
}
