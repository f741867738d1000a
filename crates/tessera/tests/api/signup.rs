//! Sign-up and address verification: `POST /signup`, `POST /email/verify`,
//! `POST /email/verify/resend`, and `require_verified_email` at login.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::mailbox::{Mailbox, mailing};

const NEW_PASSWORD: &str = "a fresh and long passphrase";

async fn post(server: &Server, path: &str, body: Value) -> reqwest::Response {
    server.send_json(Method::POST, path, None, body).await
}

async fn signup(server: &Server, email: &str, password: &str) -> reqwest::Response {
    post(
        server,
        "/signup",
        json!({"email": email, "password": password}),
    )
    .await
}

#[tokio::test]
async fn a_new_address_signs_up_verifies_its_mail_and_logs_in() {
    let server = Server::start_with(mailing().env("TESSERA_REQUIRE_VERIFIED_EMAIL", "true"));
    let mailbox = Mailbox::of(&server.data);
    let response = signup(&server, "Bob@Example.com", NEW_PASSWORD).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);

    let message = &mailbox.wait_for("bob@example.com", 1).await[0];
    let (link, token) = message.link().expect("a verification link");
    assert!(
        link.starts_with("https://auth.example.test/verify-email?token="),
        "{link}"
    );
    // Before verifying: the right password gets a distinct answer.
    let refused = server.login_response("bob@example.com", NEW_PASSWORD).await;
    assert_eq!(
        expect_error(refused, StatusCode::FORBIDDEN).await,
        "email_not_verified"
    );
    // A wrong password still gets the usual answer.
    let wrong = server
        .login_response("bob@example.com", "not the password")
        .await;
    assert_eq!(
        expect_error(wrong, StatusCode::UNAUTHORIZED).await,
        "invalid_credentials"
    );

    let verified = post(&server, "/email/verify", json!({"token": token})).await;
    assert_eq!(verified.status(), StatusCode::OK);
    let cookie = server.login("bob@example.com", NEW_PASSWORD).await;
    let profile: Value = server
        .get("/profile", Some(&cookie))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(profile["user"]["email"], "bob@example.com");

    let again = post(&server, "/email/verify", json!({"token": token})).await;
    assert_eq!(
        expect_error(again, StatusCode::BAD_REQUEST).await,
        "invalid_ticket"
    );
}

#[tokio::test]
async fn a_known_address_gets_the_same_answer_and_a_mail_with_a_recovery_link() {
    let server = Server::start_with(mailing());
    let mailbox = Mailbox::of(&server.data);
    let new = observable(signup(&server, "newcomer@example.com", NEW_PASSWORD).await).await;
    let known = observable(signup(&server, "alice@example.com", NEW_PASSWORD).await).await;
    assert_eq!(new.0, StatusCode::ACCEPTED);
    assert_eq!(new, known, "the answers tell the addresses apart");

    let message = &mailbox.wait_for("alice@example.com", 1).await[0];
    let (link, token) = message.link().expect("a recovery link");
    assert!(link.contains("/reset-password?token="), "{link}");
    // The sign-up did not touch alice's account: her password still works.
    server.login_alice().await;
    // The link resets her password.
    let reset = post(
        &server,
        "/password/reset",
        json!({"token": token, "password": NEW_PASSWORD}),
    )
    .await;
    assert_eq!(reset.status(), StatusCode::OK);
    server.login("alice@example.com", NEW_PASSWORD).await;
    mailbox.wait_for("newcomer@example.com", 1).await;
}

#[tokio::test]
async fn known_and_unknown_addresses_take_the_same_time() {
    let server = Server::start_with(
        mailing()
            .env("TESSERA_LOGIN_IP_BURST", 1000)
            .env("TESSERA_MAIL_ADDRESS_BURST", 1000),
    );
    let mut times: [Vec<Duration>; 2] = Default::default();
    // Interleaved, so machine noise hits both alike.
    for round in 0..9 {
        for (i, email) in [
            format!("someone{round}@example.com"),
            "alice@example.com".to_owned(),
        ]
        .iter()
        .enumerate()
        {
            let start = Instant::now();
            let response = signup(&server, email, NEW_PASSWORD).await;
            times[i].push(start.elapsed());
            assert_eq!(response.status(), StatusCode::ACCEPTED);
        }
    }
    let medians: Vec<Duration> = times
        .iter_mut()
        .map(|t| {
            t.sort();
            t[t.len() / 2]
        })
        .collect();
    let (fast, slow) = (
        *medians.iter().min().unwrap(),
        *medians.iter().max().unwrap(),
    );
    assert!(
        fast >= Duration::from_millis(5),
        "no hashing happened? {medians:?}"
    );
    assert!(
        slow.as_secs_f64() / fast.as_secs_f64() < 1.5,
        "timing reveals which address has an account: {medians:?}"
    );
}

#[tokio::test]
async fn registration_is_closed_by_default_and_invite_mode_wants_an_invite() {
    let closed = Server::start();
    let response = signup(&closed, "bob@example.com", NEW_PASSWORD).await;
    assert_eq!(
        expect_error(response, StatusCode::FORBIDDEN).await,
        "registration_closed"
    );

    let invite_only = Server::start_with(mailing().env("TESSERA_REGISTRATION", "invite"));
    let response = signup(&invite_only, "bob@example.com", NEW_PASSWORD).await;
    assert_eq!(
        expect_error(response, StatusCode::FORBIDDEN).await,
        "invite_required"
    );
    let forged = post(
        &invite_only,
        "/signup",
        json!({"email": "bob@example.com", "password": NEW_PASSWORD,
               "invite": "A".repeat(43)}),
    )
    .await;
    assert_eq!(
        expect_error(forged, StatusCode::FORBIDDEN).await,
        "invite_required"
    );
    assert!(Mailbox::of(&invite_only.data).all().is_empty());
}

#[tokio::test]
async fn sign_up_refuses_weak_passwords_and_bad_addresses_before_anything_else() {
    let server = Server::start_with(mailing());
    let weak = signup(&server, "bob@example.com", "short").await;
    assert_eq!(
        expect_error(weak, StatusCode::BAD_REQUEST).await,
        "weak_password"
    );
    let bad = signup(&server, "not an address", NEW_PASSWORD).await;
    assert_eq!(
        expect_error(bad, StatusCode::BAD_REQUEST).await,
        "invalid_email"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(Mailbox::of(&server.data).all().is_empty(), "nothing mailed");
}

#[tokio::test]
async fn sign_ups_for_one_address_are_throttled() {
    let server = Server::start_with(mailing());
    for _ in 0..3 {
        let response = signup(&server, "target@example.com", NEW_PASSWORD).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
    }
    let response = signup(&server, "target@example.com", NEW_PASSWORD).await;
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(
        expect_error(response, StatusCode::TOO_MANY_REQUESTS).await,
        "too_many_attempts"
    );
    // Another address is not held back by it.
    let other = signup(&server, "other@example.com", NEW_PASSWORD).await;
    assert_eq!(other.status(), StatusCode::ACCEPTED);
}

#[tokio::test]
async fn resending_mails_a_fresh_link_to_unverified_accounts_only() {
    let server = Server::start_with(mailing().env("TESSERA_REQUIRE_VERIFIED_EMAIL", "true"));
    let mailbox = Mailbox::of(&server.data);
    signup(&server, "bob@example.com", NEW_PASSWORD).await;
    let first = mailbox.token("bob@example.com", 1).await;

    let unknown = observable(
        post(
            &server,
            "/email/verify/resend",
            json!({"email": "nobody@example.com"}),
        )
        .await,
    )
    .await;
    let known = observable(
        post(
            &server,
            "/email/verify/resend",
            json!({"email": "bob@example.com"}),
        )
        .await,
    )
    .await;
    assert_eq!(known.0, StatusCode::ACCEPTED);
    assert_eq!(unknown, known);
    let second = mailbox.token("bob@example.com", 2).await;
    assert_ne!(first, second);
    // Either link verifies.
    let verified = post(&server, "/email/verify", json!({"token": second})).await;
    assert_eq!(verified.status(), StatusCode::OK);
    server.login("bob@example.com", NEW_PASSWORD).await;

    // alice is verified (an operator made her): she gets nothing.
    post(
        &server,
        "/email/verify/resend",
        json!({"email": "alice@example.com"}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(mailbox.to("alice@example.com").is_empty());
    assert!(mailbox.to("nobody@example.com").is_empty());
}

#[tokio::test]
async fn tickets_are_refused_when_forged_truncated_or_for_another_purpose() {
    let server = Server::start_with(mailing());
    let mailbox = Mailbox::of(&server.data);
    signup(&server, "bob@example.com", NEW_PASSWORD).await;
    let verification = mailbox.token("bob@example.com", 1).await;
    for token in [
        verification[..42].to_owned(),
        format!("{verification}A"),
        "A".repeat(43),
        String::new(),
        "../../etc/passwd".to_owned(),
    ] {
        let response = post(&server, "/email/verify", json!({"token": token})).await;
        assert_eq!(
            expect_error(response, StatusCode::BAD_REQUEST).await,
            "invalid_ticket"
        );
    }
    // A verification ticket is no reset ticket, and trying does not spend it.
    let reset = post(
        &server,
        "/password/reset",
        json!({"token": verification, "password": "another long passphrase"}),
    )
    .await;
    assert_eq!(
        expect_error(reset, StatusCode::BAD_REQUEST).await,
        "invalid_ticket"
    );
    let verified = post(&server, "/email/verify", json!({"token": verification})).await;
    assert_eq!(verified.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_expired_verification_link_is_refused() {
    let server = Server::start_with(mailing().env("TESSERA_EMAIL_VERIFICATION_TTL", 1));
    let mailbox = Mailbox::of(&server.data);
    signup(&server, "bob@example.com", NEW_PASSWORD).await;
    let token = mailbox.token("bob@example.com", 1).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let response = post(&server, "/email/verify", json!({"token": token})).await;
    assert_eq!(
        expect_error(response, StatusCode::BAD_REQUEST).await,
        "invalid_ticket"
    );
}

#[tokio::test]
async fn bad_bodies_on_every_new_anonymous_route_are_4xx_json() {
    let server = Server::start_with(mailing());
    for path in [
        "/signup",
        "/email/verify",
        "/email/verify/resend",
        "/email/confirm",
        "/password/forgot",
        "/password/reset",
    ] {
        for body in [
            "{",
            "null",
            "[]",
            "{\"email\": 1, \"token\": 2, \"password\": 3}",
            "{\"unknown\": true}",
        ] {
            let response = server
                .request(Method::POST, path)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            expect_error(response, StatusCode::BAD_REQUEST).await;
        }
        let response = server
            .request(Method::POST, path)
            .header("content-type", "text/plain")
            .body("x")
            .send()
            .await
            .unwrap();
        expect_error(response, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
        let huge = format!("{{\"email\": \"{}\"}}", "a".repeat(200_000));
        let response = server
            .request(Method::POST, path)
            .header("content-type", "application/json")
            .body(huge)
            .send()
            .await
            .unwrap();
        expect_error(response, StatusCode::PAYLOAD_TOO_LARGE).await;
    }
}

/// The SMTP sink the mail tests use (aiosmtpd), as a process of this test.
pub struct SmtpSink {
    _process: tessera_testkit::ProcessGroup,
    pub port: u16,
    pub out: tempfile::TempDir,
}

impl SmtpSink {
    pub fn start() -> Self {
        let out = tempfile::tempdir().unwrap();
        let port = tessera_testkit::free_port();
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tessera-axum/tests/support/smtp_sink.py"
        );
        let mut command = std::process::Command::new("python3");
        command.arg(script).arg(port.to_string()).arg(out.path());
        let mut process =
            tessera_testkit::ProcessGroup::spawn("smtp sink", &mut command).expect("python3");
        process
            .wait_for_listener(
                std::net::SocketAddr::from(([127, 0, 0, 1], port)),
                Duration::from_secs(15),
            )
            .expect("the SMTP sink listens");
        Self {
            _process: process,
            port,
            out,
        }
    }
}

#[tokio::test]
async fn sign_up_and_recovery_end_to_end_through_a_real_smtp_server() {
    let sink = SmtpSink::start();
    let server = Server::start_with(
        mailing()
            .env("TESSERA_MAIL", "smtp")
            .env(
                "TESSERA_SMTP_URL",
                format!("smtp://127.0.0.1:{}", sink.port),
            )
            .env("TESSERA_SMTP_INSECURE", "true")
            .env("TESSERA_REQUIRE_VERIFIED_EMAIL", "true"),
    );
    let mailbox = Mailbox::at(sink.out.path().to_owned());
    assert_eq!(
        signup(&server, "bob@example.com", NEW_PASSWORD)
            .await
            .status(),
        StatusCode::ACCEPTED
    );
    let message = &mailbox.wait_for("bob@example.com", 1).await[0];
    assert!(
        message.header("subject").is_some_and(|s| !s.is_empty()),
        "{message:?}"
    );
    assert!(message.raw.contains("text/html"), "an HTML part too");
    let token = message.link().unwrap().1;
    let verified = post(&server, "/email/verify", json!({"token": token})).await;
    assert_eq!(verified.status(), StatusCode::OK);
    server.login("bob@example.com", NEW_PASSWORD).await;

    post(
        &server,
        "/password/forgot",
        json!({"email": "bob@example.com"}),
    )
    .await;
    let token = mailbox.token("bob@example.com", 2).await;
    let reset = post(
        &server,
        "/password/reset",
        json!({"token": token, "password": "another long passphrase"}),
    )
    .await;
    assert_eq!(reset.status(), StatusCode::OK);
    server
        .login("bob@example.com", "another long passphrase")
        .await;
    // And the notice that the password changed.
    mailbox.wait_for("bob@example.com", 3).await;
}

#[tokio::test]
async fn open_registration_without_a_mailer_is_warned_about_at_start() {
    let server = Server::start_with(Options::default().env("TESSERA_REGISTRATION", "open"));
    assert!(
        server
            .logs()
            .contains("registration is open but mail = none"),
        "{}",
        server.logs()
    );
    let quiet = Server::start_with(mailing());
    assert!(!quiet.logs().contains("registration is open but"));
}
