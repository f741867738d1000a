//! `GET /auth/verify`: forward authentication for a reverse proxy
//! (nginx `auth_request`, Traefik `forwardAuth`, Caddy `forward_auth`).
//!
//! The proxy sends each incoming request's headers here first: a session
//! cookie or a bearer token that checks out gets 204 and the identity in
//! response headers for the proxy to pass upstream; anything else gets 401
//! (the proxy then refuses the request).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::caller::Caller;
use crate::client_ip::Peer;
use crate::state::AppState;

/// Header carrying the user's id to the upstream app.
pub const USER_ID_HEADER: &str = "x-auth-user-id";
/// Header carrying the user's e-mail address.
pub const EMAIL_HEADER: &str = "x-auth-email";
/// Header carrying the user's roles, comma-separated.
pub const ROLES_HEADER: &str = "x-auth-roles";

/// 204 with the identity headers, or the usual 401/503 from extraction.
/// With `X-Forwarded-Method` (the method of the request being checked), a
/// cross-site state change made with a cookie credential (session, sealed
/// session or access-token cookie) is refused with 403, as it would be here.
pub async fn verify(
    State(state): State<Arc<AppState>>,
    request_headers: HeaderMap,
    Peer(peer): Peer,
    caller: Caller,
) -> Response {
    let forwarded = request_headers
        .get("x-forwarded-method")
        .and_then(|m| m.to_str().ok())
        .and_then(|m| Method::from_bytes(m.as_bytes()).ok());
    if let Some(method) = forwarded
        && caller.credential().is_ambient()
        && let Err(refused) = state.origins.check(&method, &request_headers, peer)
    {
        return refused.into_response();
    }
    let mut headers = HeaderMap::new();
    let roles = caller
        .roles()
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(",");
    for (name, value) in [
        (USER_ID_HEADER, caller.user_id().to_string()),
        (EMAIL_HEADER, caller.email().to_string()),
        (ROLES_HEADER, roles),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    caller
        .reply(&state, (StatusCode::NO_CONTENT, headers).into_response())
        .await
}
