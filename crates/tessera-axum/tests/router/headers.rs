//! Headers every response, or every login, carries.

use axum::http::{Method, StatusCode, header};
use cookie::SameSite;
use tessera_axum::AppConfig;

use crate::support::{App, COOKIE, Call};

#[tokio::test]
async fn every_response_is_marked_no_store_and_nosniff() {
    let app = App::new();
    app.add_user("headers@example.com", &[]).await;
    let login = app.login("headers@example.com").await;
    let mut replies = vec![("POST /login", login.reply)];
    for (what, call) in [
        ("GET /health", Call::new(Method::GET, "/health")),
        ("HEAD /health", Call::new(Method::HEAD, "/health")),
        (
            "GET /.well-known/jwks.json",
            Call::new(Method::GET, "/.well-known/jwks.json"),
        ),
        (
            "GET /profile",
            Call::new(Method::GET, "/profile").cookie(&login.cookie),
        ),
        (
            "GET /auth/verify",
            Call::new(Method::GET, "/auth/verify").cookie(&login.cookie),
        ),
        (
            "GET /profile without a credential",
            Call::new(Method::GET, "/profile"),
        ),
        ("GET /nowhere", Call::new(Method::GET, "/nowhere")),
        ("PUT /login", Call::new(Method::PUT, "/login")),
        (
            "POST /logout",
            Call::new(Method::POST, "/logout").cookie(&login.cookie),
        ),
    ] {
        replies.push((what, app.send(call).await));
    }
    let statuses: Vec<u16> = replies.iter().map(|(_, r)| r.status.as_u16()).collect();
    assert_eq!(statuses, [200, 200, 200, 200, 200, 204, 401, 404, 405, 200]);
    for (what, reply) in &replies {
        assert_eq!(
            reply.header(header::CACHE_CONTROL),
            Some("no-store"),
            "{what}"
        );
        assert_eq!(
            reply.header(header::X_CONTENT_TYPE_OPTIONS),
            Some("nosniff"),
            "{what}"
        );
    }
}

#[tokio::test]
async fn the_login_cookie_is_host_only_http_only_secure_lax_and_lives_as_long_as_the_session() {
    let app = App::new();
    app.add_user("cookie@example.com", &[]).await;
    let login = app.login("cookie@example.com").await;
    let cookie = login.reply.only_session_cookie().unwrap();
    let lifetime = AppConfig::default().policy.absolute_timeout().as_secs();
    assert_eq!(cookie.name(), COOKIE);
    assert!(cookie.value().len() >= 32, "{cookie}");
    assert_eq!(cookie.http_only(), Some(true), "{cookie}");
    assert_eq!(cookie.secure(), Some(true), "{cookie}");
    assert_eq!(cookie.path(), Some("/"), "{cookie}");
    assert_eq!(cookie.same_site(), Some(SameSite::Lax), "{cookie}");
    assert_eq!(
        cookie.max_age(),
        Some(cookie::time::Duration::seconds(
            i64::try_from(lifetime).unwrap()
        )),
        "{cookie}"
    );
    assert_eq!(cookie.domain(), None, "{cookie}");
    assert_eq!(login.reply.status, StatusCode::OK);
}
