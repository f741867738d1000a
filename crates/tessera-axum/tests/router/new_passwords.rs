//! `AppState::check_new_password`, the one entry point of the sign-up,
//! reset and change flows: which rule failed, as the HTTP error they answer.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::Value;
use tessera_axum::AppConfig;
use tessera_axum::passwords::{
    BreachCheck, BreachCheckUnavailable, BreachFailure, BreachedPasswords, NewPasswordRules,
};
use tessera_core::{Email, Password, PasswordPolicy};

use crate::support::App;

/// A range service that knows one password, or none when down.
#[derive(Debug)]
struct Corpus(Option<&'static str>);

#[async_trait]
impl BreachedPasswords for Corpus {
    async fn range(&self, prefix: &str) -> Result<String, BreachCheckUnavailable> {
        let Some(known) = self.0 else {
            return Err(BreachCheckUnavailable("connection refused".into()));
        };
        let (known_prefix, suffix) = Password::new(known).breach_range_key();
        Ok(if known_prefix == prefix {
            format!("{suffix}:7\n")
        } else {
            String::new()
        })
    }
}

fn app(corpus: Corpus, on_failure: BreachFailure) -> App {
    App::with_config(AppConfig {
        new_passwords: NewPasswordRules {
            policy: PasswordPolicy::new(10).unwrap(),
            breached: Some(BreachCheck {
                source: Arc::new(corpus),
                on_failure,
                timeout: Duration::from_secs(1),
            }),
        },
        ..AppConfig::default()
    })
}

async fn answer(app: &App, password: &str) -> Result<(), (StatusCode, String, String)> {
    let email = Email::parse("kim.lee@example.com").unwrap();
    match app
        .state
        .check_new_password(&Password::new(password), &email)
        .await
    {
        Ok(()) => Ok(()),
        Err(error) => {
            let response = error.into_response();
            let status = response.status();
            let body = axum::body::to_bytes(response.into_body(), 1 << 16)
                .await
                .unwrap();
            let body: Value = serde_json::from_slice(&body).unwrap();
            Err((
                status,
                body["error"]["code"].as_str().unwrap().to_owned(),
                body["error"]["message"].as_str().unwrap().to_owned(),
            ))
        }
    }
}

#[tokio::test]
async fn each_broken_rule_is_a_400_weak_password_that_names_it() {
    let app = app(Corpus(Some("wintery mix 77")), BreachFailure::Open);
    for (password, says) in [
        ("nine char", "at least 10"),
        ("QWERTYUIOP", "most common"),
        ("baseball11", "most common"),
        ("hi KIM.LEE here", "e-mail name"),
        ("wintery mix 77", "known data breaches"),
    ] {
        let (status, code, message) = answer(&app, password).await.unwrap_err();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{password}");
        assert_eq!(code, "weak_password");
        assert!(message.contains(says), "{password}: {message}");
    }
    answer(&app, "a calm grey morning").await.unwrap();
}

#[tokio::test]
async fn a_service_that_does_not_answer_is_503_only_when_failures_close() {
    let open = app(Corpus(None), BreachFailure::Open);
    answer(&open, "a calm grey morning").await.unwrap();
    let closed = app(Corpus(None), BreachFailure::Closed);
    let (status, code, _) = answer(&closed, "a calm grey morning").await.unwrap_err();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(code, "password_check_unavailable");
}
