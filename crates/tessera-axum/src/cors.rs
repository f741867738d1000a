//! CORS for the origins in `allowed_origins`, so that a single-page app on
//! another origin can call tessera with `credentials: 'include'`.
//!
//! tower-http's `CorsLayer` does the work; [`tidy`] makes its answers say
//! nothing to origins that are not on the list and answers preflights with
//! 204. With no allowed origins there is no layer at all (the common case
//! pays nothing). CORS only lets the browser *read* answers: the CSRF rules
//! ([`crate::csrf`]) still decide which state changes are accepted.

use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header, request::Parts};
use axum::response::Response;
use tower_http::cors::{AllowCredentials, AllowOrigin, CorsLayer};

use crate::csrf::OriginPolicy;

/// How long a browser may cache a preflight answer.
pub const MAX_AGE: Duration = Duration::from_secs(600);

/// The CORS layer for `policy`'s allowed origins, if there are any.
pub fn layer(policy: &OriginPolicy) -> Option<CorsLayer> {
    if !policy.has_allowed_origins() {
        return None;
    }
    let allowed = |policy: OriginPolicy| {
        move |origin: &HeaderValue, _: &Parts| {
            origin
                .to_str()
                .is_ok_and(|origin| policy.is_allowed(origin))
        }
    };
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::predicate(allowed(policy.clone())))
            // Never `*` with credentials: only for an allowed origin.
            .allow_credentials(AllowCredentials::predicate(allowed(policy.clone())))
            .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
            .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
            .expose_headers([header::RETRY_AFTER, header::WWW_AUTHENTICATE])
            .max_age(MAX_AGE),
    )
}

/// Preflight answers become 204 No Content; an answer to an origin that is
/// not allowed carries no `Access-Control-*` header at all (`Vary` stays:
/// caches must keep answers per origin apart).
pub async fn tidy(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let preflight = headers.contains_key(header::ACCESS_CONTROL_ALLOW_METHODS);
    if !headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN) {
        let cors: Vec<HeaderName> = headers
            .keys()
            .filter(|name| name.as_str().starts_with("access-control-"))
            .cloned()
            .collect();
        for name in cors {
            headers.remove(name);
        }
    }
    if preflight && response.status() == StatusCode::OK {
        *response.status_mut() = StatusCode::NO_CONTENT;
    }
    response
}
