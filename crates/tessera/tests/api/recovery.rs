//! Password recovery: `POST /password/forgot` and `POST /password/reset`.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::mailbox::{Mailbox, mailing};

const NEW_PASSWORD: &str = "a fresh and long passphrase";

async fn post(server: &Server, path: &str, body: Value) -> reqwest::Response {
    server.send_json(Method::POST, path, None, body).await
}

async fn forgot(server: &Server, email: &str) -> reqwest::Response {
    post(server, "/password/forgot", json!({"email": email})).await
}

async fn reset(server: &Server, token: &str, password: &str) -> reqwest::Response {
    post(
        server,
        "/password/reset",
        json!({"token": token, "password": password}),
    )
    .await
}

#[tokio::test]
async fn a_reset_link_sets_the_password_and_ends_every_credential() {
    let server = Server::start_with(mailing());
    let mailbox = Mailbox::of(&server.data);
    let cookie = server.login_alice().await;
    let tokens = server.token_alice().await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh_token = tokens["refresh_token"].as_str().unwrap().to_owned();

    assert_eq!(
        forgot(&server, "alice@example.com").await.status(),
        StatusCode::ACCEPTED
    );
    let message = &mailbox.wait_for("alice@example.com", 1).await[0];
    let (link, token) = message.link().unwrap();
    assert!(
        link.starts_with("https://auth.example.test/reset-password?token="),
        "{link}"
    );

    let response = reset(&server, &token, NEW_PASSWORD).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert!(body["sessions_ended"].as_u64().unwrap() >= 2, "{body}");

    assert_eq!(
        server.get("/profile", Some(&cookie)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        bearer(&server, "/profile", &access).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        refresh(&server, &refresh_token).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let old = server.login_response("alice@example.com", PASSWORD).await;
    assert_eq!(old.status(), StatusCode::UNAUTHORIZED);
    server.login("alice@example.com", NEW_PASSWORD).await;

    // Used once; and a notice went to the address.
    let again = reset(&server, &token, "yet another long passphrase").await;
    assert_eq!(
        expect_error(again, StatusCode::BAD_REQUEST).await,
        "invalid_ticket"
    );
    let notices = mailbox.wait_for("alice@example.com", 2).await;
    assert!(notices[1].link().is_none(), "a notice carries no link");
}

#[tokio::test]
async fn forgot_answers_alike_for_unknown_known_and_disabled_addresses() {
    let server = Server::start_with(mailing());
    let mailbox = Mailbox::of(&server.data);
    server.data.add_user("carol@example.com", &[]);
    assert!(
        server
            .data
            .cli(&["user", "disable", "carol@example.com"], "")
            .status
            .success()
    );
    let mut seen = Vec::new();
    for email in [
        "nobody@example.com",
        "alice@example.com",
        "carol@example.com",
    ] {
        let response = forgot(&server, email).await;
        let status = response.status();
        let body = response.bytes().await.unwrap();
        seen.push((status, body));
    }
    assert_eq!(seen[0].0, StatusCode::ACCEPTED);
    assert!(seen.iter().all(|s| s == &seen[0]), "{seen:?}");
    mailbox.wait_for("alice@example.com", 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(mailbox.to("nobody@example.com").is_empty());
    assert!(
        mailbox.to("carol@example.com").is_empty(),
        "a disabled account gets no reset link"
    );
}

#[tokio::test]
async fn ten_concurrent_resets_with_one_link_let_exactly_one_through() {
    let server = Server::start_with(mailing());
    let mailbox = Mailbox::of(&server.data);
    forgot(&server, "alice@example.com").await;
    let token = mailbox.token("alice@example.com", 1).await;
    let client = reqwest::Client::new();
    let mut attempts = tokio::task::JoinSet::new();
    for i in 0..10 {
        let password = format!("{NEW_PASSWORD} number {i}");
        let request = client
            .post(server.url("/password/reset"))
            .json(&json!({"token": token, "password": password}));
        attempts.spawn(async move { (request.send().await.unwrap().status(), password) });
    }
    let results = attempts.join_all().await;
    let winners: Vec<&String> = results
        .iter()
        .filter(|(status, _)| *status == StatusCode::OK)
        .map(|(_, p)| p)
        .collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    assert!(
        results
            .iter()
            .all(|(s, _)| *s == StatusCode::OK || *s == StatusCode::BAD_REQUEST),
        "{results:?}"
    );
    server.login("alice@example.com", winners[0]).await;
}

#[tokio::test]
async fn a_refused_password_does_not_spend_the_link() {
    let server = Server::start_with(mailing());
    let mailbox = Mailbox::of(&server.data);
    forgot(&server, "alice@example.com").await;
    let token = mailbox.token("alice@example.com", 1).await;
    let weak = reset(&server, &token, "short").await;
    assert_eq!(
        expect_error(weak, StatusCode::BAD_REQUEST).await,
        "weak_password"
    );
    assert_eq!(
        reset(&server, &token, NEW_PASSWORD).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn an_expired_reset_link_is_refused() {
    let server = Server::start_with(mailing().env("TESSERA_PASSWORD_RESET_TTL", 1));
    let mailbox = Mailbox::of(&server.data);
    forgot(&server, "alice@example.com").await;
    let token = mailbox.token("alice@example.com", 1).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let response = reset(&server, &token, NEW_PASSWORD).await;
    assert_eq!(
        expect_error(response, StatusCode::BAD_REQUEST).await,
        "invalid_ticket"
    );
    server.login_alice().await;
}

#[tokio::test]
async fn a_reset_ends_the_other_reset_links_of_the_user() {
    let server = Server::start_with(mailing());
    let mailbox = Mailbox::of(&server.data);
    forgot(&server, "alice@example.com").await;
    forgot(&server, "alice@example.com").await;
    let first = mailbox.token("alice@example.com", 1).await;
    let second = mailbox.token("alice@example.com", 2).await;
    assert_eq!(
        reset(&server, &second, NEW_PASSWORD).await.status(),
        StatusCode::OK
    );
    let stale = reset(&server, &first, "yet another long passphrase").await;
    assert_eq!(
        expect_error(stale, StatusCode::BAD_REQUEST).await,
        "invalid_ticket"
    );
}

/// `/password/forgot` and `/email/verify/resend` do their mailing after the
/// answer: known and unknown addresses take the same time (no hashing here,
/// so the bar is the noise of a request: half the median, at least 2 ms).
#[tokio::test]
async fn known_and_unknown_addresses_take_the_same_time_to_answer() {
    let server = Server::start_with(
        mailing()
            .env("TESSERA_LOGIN_IP_BURST", 1000)
            .env("TESSERA_MAIL_ADDRESS_BURST", 1000),
    );
    for path in ["/password/forgot", "/email/verify/resend"] {
        let mut times: [Vec<std::time::Duration>; 2] = Default::default();
        for round in 0..15 {
            for (i, email) in [
                format!("nobody{round}@example.com"),
                "alice@example.com".to_owned(),
            ]
            .iter()
            .enumerate()
            {
                let start = std::time::Instant::now();
                let response = post(&server, path, json!({"email": email})).await;
                times[i].push(start.elapsed());
                assert_eq!(response.status(), StatusCode::ACCEPTED);
            }
        }
        let medians: Vec<f64> = times
            .iter_mut()
            .map(|t| {
                t.sort();
                t[t.len() / 2].as_secs_f64()
            })
            .collect();
        let bar = (medians[0].min(medians[1]) * 0.5).max(0.002);
        assert!(
            (medians[0] - medians[1]).abs() < bar,
            "{path}: timing tells the addresses apart: {medians:?}"
        );
    }
}
