//! Headers every response, or every login, carries.

use axum::http::{Method, StatusCode, header};
use cookie::SameSite;
use tessera_axum::AppConfig;
use tessera_axum::observe::{ObserveLayer, X_REQUEST_ID};

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

#[tokio::test]
async fn every_response_carries_a_request_id_and_untrusted_peers_cannot_choose_it() {
    let app = App::new();
    let mut seen = std::collections::HashSet::new();
    for call in [
        Call::new(Method::GET, "/health"),
        Call::new(Method::GET, "/nowhere"),
        Call::new(Method::GET, "/profile"),
        Call::new(Method::GET, "/health").header("x-request-id", "chosen-by-the-client"),
    ] {
        let reply = app.send(call).await;
        let id = reply
            .header(X_REQUEST_ID.clone())
            .expect("x-request-id")
            .to_owned();
        assert_eq!(id.len(), 32, "{id}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        assert!(seen.insert(id), "request ids are unique");
    }
}

#[tokio::test]
async fn a_trusted_proxys_request_id_is_kept_when_it_is_plain_and_short() {
    // The router tests' peer is 192.0.2.7.
    let app = App::with_config(AppConfig {
        trusted_proxies: vec!["192.0.2.0/24".parse().unwrap()],
        ..AppConfig::default()
    });
    let kept = app
        .send(Call::new(Method::GET, "/health").header("x-request-id", "edge-7f3a:1.2_x"))
        .await;
    assert_eq!(kept.header(X_REQUEST_ID.clone()), Some("edge-7f3a:1.2_x"));
    for refused in ["has space", "quote\"d", &"a".repeat(129)] {
        let reply = app
            .send(Call::new(Method::GET, "/health").header("x-request-id", refused))
            .await;
        let id = reply.header(X_REQUEST_ID.clone()).unwrap();
        assert_ne!(id, refused);
        assert_eq!(id.len(), 32, "replaced by a generated id");
    }
}

#[tokio::test]
async fn a_panicking_handler_answers_the_json_500_with_every_header() {
    let app = App::new();
    let router = axum::Router::new()
        .route(
            "/boom",
            axum::routing::get(|| async {
                if true {
                    panic!("a bug");
                }
                "unreachable"
            }),
        )
        .layer(ObserveLayer::new(std::sync::Arc::clone(&app.state)));
    let response = tower::ServiceExt::oneshot(
        router,
        axum::http::Request::get("/boom")
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers().clone();
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert!(headers.contains_key(&X_REQUEST_ID));
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"]["code"], "internal", "{body}");
}
