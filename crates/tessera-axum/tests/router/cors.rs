//! CORS for the origins in `allowed_origins`: a SPA elsewhere can call
//! tessera with credentials; nobody else is told anything.

use axum::http::{Method, StatusCode, header};
use tessera_axum::AppConfig;

use crate::support::{App, Call};

const SPA: &str = "https://app.example.com";
const OTHER: &str = "https://elsewhere.example";

fn with_spa() -> App {
    App::with_config(AppConfig {
        allowed_origins: vec![SPA.to_owned()],
        ..AppConfig::default()
    })
}

fn preflight(origin: &str, method: &str) -> Call {
    Call::new(Method::OPTIONS, "/login")
        .header("origin", origin)
        .header("access-control-request-method", method)
        .header("access-control-request-headers", "content-type")
}

#[tokio::test]
async fn a_preflight_from_an_allowed_origin_is_answered_204_with_credentials_allowed() {
    let app = with_spa();
    let reply = app.send(preflight(SPA, "POST")).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(reply.header(header::ACCESS_CONTROL_ALLOW_ORIGIN), Some(SPA));
    assert_eq!(
        reply.header(header::ACCESS_CONTROL_ALLOW_CREDENTIALS),
        Some("true")
    );
    let methods = reply.header(header::ACCESS_CONTROL_ALLOW_METHODS).unwrap();
    for method in ["GET", "POST", "PATCH", "DELETE"] {
        assert!(methods.contains(method), "{methods}");
    }
    let headers = reply
        .header(header::ACCESS_CONTROL_ALLOW_HEADERS)
        .unwrap()
        .to_ascii_lowercase();
    assert!(headers.contains("content-type"), "{headers}");
    assert_eq!(reply.header(header::ACCESS_CONTROL_MAX_AGE), Some("600"));
}

#[tokio::test]
async fn an_allowed_origin_logs_in_reads_the_profile_and_sees_errors() {
    let app = with_spa();
    app.add_user("spa@example.com", &[]).await;
    let login = app
        .send(
            Call::new(Method::POST, "/login")
                .sent_from(SPA)
                .json(&crate::support::login_body("spa@example.com")),
        )
        .await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    assert_eq!(login.header(header::ACCESS_CONTROL_ALLOW_ORIGIN), Some(SPA));
    assert_eq!(
        login.header(header::ACCESS_CONTROL_ALLOW_CREDENTIALS),
        Some("true")
    );
    let vary = login
        .header(header::VARY)
        .unwrap_or("")
        .to_ascii_lowercase();
    assert!(vary.contains("origin"), "{vary}");
    let cookie = login.only_session_cookie().unwrap();
    let profile = app
        .send(
            Call::new(Method::GET, "/profile")
                .cookie(cookie.value())
                .header("origin", SPA),
        )
        .await;
    assert_eq!(profile.status, StatusCode::OK);
    assert_eq!(
        profile.header(header::ACCESS_CONTROL_ALLOW_ORIGIN),
        Some(SPA)
    );
    // An error the SPA must be able to read (to know it is logged out).
    let anonymous = app
        .send(Call::new(Method::GET, "/profile").header("origin", SPA))
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        anonymous.header(header::ACCESS_CONTROL_ALLOW_ORIGIN),
        Some(SPA)
    );
}

#[tokio::test]
async fn an_origin_not_on_the_list_gets_no_cors_headers_and_never_a_wildcard() {
    let app = with_spa();
    for call in [
        preflight(OTHER, "POST"),
        Call::new(Method::GET, "/health").header("origin", OTHER),
        Call::new(Method::GET, "/health").header("origin", SPA),
    ] {
        let reply = app.send(call).await;
        let cors: Vec<_> = reply
            .headers
            .keys()
            .filter(|k| k.as_str().starts_with("access-control-"))
            .collect();
        let allowed = reply.header(header::ACCESS_CONTROL_ALLOW_ORIGIN);
        assert_ne!(allowed, Some("*"));
        if allowed != Some(SPA) {
            assert!(cors.is_empty(), "{cors:?}");
        }
    }
    // The CSRF rule still refuses a state change from that origin.
    let reply = app
        .send(
            Call::new(Method::POST, "/login")
                .sent_from(OTHER)
                .json(&crate::support::login_body("nobody@example.com")),
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn without_allowed_origins_there_is_no_cors_at_all() {
    let app = App::new();
    let reply = app.send(preflight(SPA, "POST")).await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(reply.header(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
}
