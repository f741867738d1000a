//! CORS for the origins in `allowed_origins`, so that a single-page app on
//! another origin can call tessera with `credentials: 'include'`.
//!
//! Written here rather than with tower-http's `CorsLayer`: that layer (with
//! the map that kept its answers from telling other origins anything and
//! answered preflights 204) cost 14 % of `/health` and `/profile`
//! throughput on every request once enabled; this one middleware costs 7 %
//! (`bench/profile.sh --baseline` with `TESSERA_ALLOWED_ORIGINS`, same
//! run). It adds headers only for requests with an allowed `Origin`.
//!
//! - A preflight (`OPTIONS` with `Origin` and
//!   `Access-Control-Request-Method`) from an allowed origin is answered
//!   204 with `Access-Control-Allow-Origin: <origin>`, `-Allow-Credentials:
//!   true`, `-Allow-Methods`, `-Allow-Headers`, `-Max-Age`.
//! - Any other request from an allowed origin gets
//!   `Access-Control-Allow-Origin: <origin>`, `-Allow-Credentials: true` and
//!   `-Expose-Headers` on its answer.
//! - Every answer carries `Vary: Origin` (caches keep origins apart); an
//!   origin that is not allowed gets no `Access-Control-*` header at all.
//!
//! CORS only lets the browser *read* answers: the CSRF rules
//! ([`crate::csrf`]) still decide which state changes are accepted.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::state::AppState;

/// How long a browser may cache a preflight answer.
pub const MAX_AGE: Duration = Duration::from_secs(600);

const ALLOW_METHODS: &str = "GET, POST, PATCH, DELETE";
const ALLOW_HEADERS: &str = "content-type, authorization";
const EXPOSE_HEADERS: &str = "retry-after, www-authenticate";

/// The allowed origin a request comes from, if any (its `Origin` header).
fn allowed_origin(state: &AppState, request: &Request) -> Option<HeaderValue> {
    let origin = request.headers().get(header::ORIGIN)?;
    state
        .origins
        .is_allowed(origin.to_str().ok()?)
        .then(|| origin.clone())
}

/// The middleware (installed only when `allowed_origins` is set): answers
/// preflights of allowed origins, and puts the CORS headers on the answers
/// to them.
pub async fn cors(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let origin = allowed_origin(&state, &request);
    let preflight = request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut response = match (&origin, preflight) {
        (Some(_), true) => {
            // Answered here, in the route's place: its template, for the
            // metrics and the access log.
            if let Some(template) = crate::app::template_of(request.uri().path()) {
                crate::observe::route_called(template);
            }
            let mut response = StatusCode::NO_CONTENT.into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static(ALLOW_METHODS),
            );
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static(ALLOW_HEADERS),
            );
            headers.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from(MAX_AGE.as_secs()),
            );
            response
        }
        _ => next.run(request).await,
    };
    let headers = response.headers_mut();
    headers.append(header::VARY, HeaderValue::from_static("origin"));
    if let Some(origin) = origin {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        if !preflight {
            headers.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(EXPOSE_HEADERS),
            );
        }
    }
    response
}
