//! The observe pass names each request's route the same wherever it sits:
//! on each route ([`tessera_axum::router`], for apps that nest the API in
//! their own router) or around the whole router ([`tessera_axum::service`],
//! what the server serves). Counted in the request metrics, by template.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Method, Request, StatusCode};
use axum::response::Response;
use tempfile::TempDir;
use tessera_axum::{AppConfig, AppState, Backends, TokenKeys};
use tessera_core::PasswordHasher;
use tessera_store::{SqliteOptions, SqliteStore};
use tower::{Layer as _, ServiceExt as _};

const SPA: &str = "https://app.example.com";

fn state(dir: &TempDir) -> Arc<AppState> {
    let store = SqliteStore::open(dir.path().join("tessera.db"), SqliteOptions::default())
        .expect("open the SQLite store");
    AppState::new(
        AppConfig {
            metrics: true,
            allowed_origins: vec![SPA.to_owned()],
            ..AppConfig::default()
        },
        Backends::single(Arc::new(store)),
        TokenKeys::generate().expect("token keys"),
        PasswordHasher::owasp(),
    )
}

/// Requests whose route is known by every part that can answer them: a
/// handler, a path's 405, the router's 404 and the CORS preflight.
fn requests() -> Vec<Request<Body>> {
    let get = |uri: &str| Request::get(uri).body(Body::empty()).unwrap();
    vec![
        get("/health"),
        get("/no/such/route"),
        Request::put("/profile").body(Body::empty()).unwrap(),
        get("/health/live"),
        Request::builder()
            .method(Method::OPTIONS)
            .uri("/sessions/abc")
            .header("origin", SPA)
            .header("access-control-request-method", "DELETE")
            .body(Body::empty())
            .unwrap(),
        // After a matched route: not counted as that route.
        get("/also/missing"),
    ]
}

const EXPECTED: [(&str, &str, &str); 5] = [
    ("/health", "GET", "200"),
    ("/health/live", "GET", "200"),
    ("/profile", "PUT", "405"),
    ("/sessions/{handle}", "OPTIONS", "204"),
    ("unmatched", "GET", "404"),
];

/// `tessera_http_requests_total` by (route, method, status), from a scrape.
fn request_counts(text: &str) -> Vec<(String, String, String, f64)> {
    let mut counts = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("tessera_http_requests_total{") else {
            continue;
        };
        let (labels, value) = rest.split_once("} ").expect("a sample line");
        let label = |name: &str| {
            labels
                .split(',')
                .find_map(|pair| pair.strip_prefix(&format!("{name}=\"")))
                .map(|v| v.trim_end_matches('"').to_owned())
                .unwrap_or_default()
        };
        let value: f64 = value.parse().expect("a number");
        if value > 0.0 {
            counts.push((label("route"), label("method"), label("status"), value));
        }
    }
    counts.sort_by(|a, b| (&a.0, &a.1, &a.2).cmp(&(&b.0, &b.1, &b.2)));
    counts
}

async fn scrape(state: &Arc<AppState>) -> String {
    let response = tessera_axum::metrics::router(Arc::clone(state))
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    String::from_utf8(body.to_vec()).unwrap()
}

async fn check<S>(state: &Arc<AppState>, service: S)
where
    S: tower::Service<Request<Body>, Response = Response, Error = std::convert::Infallible> + Clone,
{
    let peer = SocketAddr::from(([192, 0, 2, 7], 40_000));
    let service = MockConnectInfo(peer).layer(service);
    let mut statuses = Vec::new();
    for request in requests() {
        let response = service.clone().oneshot(request).await.unwrap();
        statuses.push(response.status());
    }
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::NOT_FOUND,
            StatusCode::METHOD_NOT_ALLOWED,
            StatusCode::OK,
            StatusCode::NO_CONTENT,
            StatusCode::NOT_FOUND,
        ]
    );
    let expected: Vec<_> = EXPECTED
        .iter()
        .map(|(route, method, status)| {
            let count = if *route == "unmatched" { 2.0 } else { 1.0 };
            (
                (*route).to_owned(),
                (*method).to_owned(),
                (*status).to_owned(),
                count,
            )
        })
        .collect();
    assert_eq!(request_counts(&scrape(state).await), expected);
}

#[tokio::test]
async fn the_routers_layer_counts_each_request_under_its_template() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(&dir);
    check(&state, tessera_axum::router(Arc::clone(&state))).await;
}

#[tokio::test]
async fn the_pass_around_the_router_counts_them_alike() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(&dir);
    check(&state, tessera_axum::service(Arc::clone(&state))).await;
}
