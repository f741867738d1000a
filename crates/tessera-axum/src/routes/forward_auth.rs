//! `GET /auth/verify`: forward authentication for a reverse proxy
//! (nginx `auth_request`, Traefik `forwardAuth`, Caddy `forward_auth`).
//!
//! The proxy sends each incoming request's headers here first: a session
//! cookie or a bearer token that checks out gets 204 and the identity in
//! response headers for the proxy to pass upstream; anything else gets 401
//! (the proxy then refuses the request).
//!
//! People are sent to log in, programs are not: with `login_url` set, a
//! refused top-level navigation (`Sec-Fetch-Dest: document`, or
//! `Sec-Fetch-Mode: navigate`, or without either an `Accept` naming
//! `text/html`) is answered `302 Found` to `login_url?rd=<the URL asked
//! for>`, the URL rebuilt from `X-Forwarded-Proto`, `X-Forwarded-Host` and
//! `X-Forwarded-Uri` of a trusted proxy only. A proxy that cannot pass a
//! redirect through (nginx `auth_request` allows only 2xx, 401 and 403)
//! asks with `X-Tessera-Redirect-Status: 401` for a 401 carrying the same
//! `Location`, and redirects itself.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::caller::Caller;
use crate::client_ip::{Peer, first_forwarded, from_trusted_proxy};
use crate::error::{ApiError, ErrorBody};
use crate::openapi::Unavailable;
use crate::state::AppState;

/// Header carrying the user's id to the upstream app.
pub const USER_ID_HEADER: &str = "x-auth-user-id";
/// Header carrying the user's e-mail address.
pub const EMAIL_HEADER: &str = "x-auth-email";
/// Header carrying the user's roles, comma-separated.
pub const ROLES_HEADER: &str = "x-auth-roles";
/// Header carrying whether the user's e-mail address was verified: `true`
/// or `false`.
pub const EMAIL_VERIFIED_HEADER: &str = "x-auth-email-verified";

/// 204 with the identity headers, or the usual 401/503 from extraction.
/// With `X-Forwarded-Method` (the method of the request being checked), a
/// cross-site state change made with a cookie credential (session, sealed
/// session or access-token cookie) is refused with 403, as it would be here.
#[utoipa::path(
    get,
    path = "/auth/verify",
    operation_id = "verify",
    tag = "forward auth",
    params(
        ("X-Forwarded-Method" = Option<String>, Header, description = "The method of the request being checked (a cookie caller's cross-site state change is refused)."),
        ("X-Tessera-Redirect-Status" = Option<String>, Header, description = "`401`: answer a login redirect as 401 with `Location` (nginx `auth_request`)."),
    ),
    security(("session_cookie" = []), ("bearer" = [])),
    responses(
        (status = 204, description = "The caller checks out; the identity is in the headers.",
            headers(
                ("X-Auth-User-Id" = String, description = "The user's id."),
                ("X-Auth-Email" = String, description = "The user's address."),
                ("X-Auth-Roles" = String, description = "The user's roles, comma-separated."),
                ("X-Auth-Email-Verified" = String, description = "`true` or `false`."),
            )),
        (status = 302, description = "With `login_url`: a person's page load without a valid credential goes to log in.",
            headers(("Location" = String, description = "`login_url?rd=<the URL asked for>`."))),
        (status = 401, description = "`unauthenticated`, `invalid_token`; with `X-Tessera-Redirect-Status: 401` and `login_url`, `Location` too.", body = ErrorBody),
        (status = 403, description = "`cross_site_request` (the forwarded method is a state change from another site), `api_key_not_accepted`.", body = ErrorBody),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn verify(
    State(state): State<Arc<AppState>>,
    request_headers: HeaderMap,
    Peer(peer): Peer,
    caller: Result<Caller, ApiError>,
) -> Response {
    let caller = match caller {
        Ok(caller) => caller,
        Err(refused @ (ApiError::Unauthenticated | ApiError::InvalidToken(_))) => {
            return match login_redirect(&state, &request_headers, peer) {
                Some(location) => redirect(location, &request_headers, refused),
                None => refused.into_response(),
            };
        }
        Err(other) => return other.into_response(),
    };
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
    // Forward auth names a user to the app: a machine's key has none.
    let (user_id, email) = match caller.user("user to forward") {
        Ok(user) => user,
        Err(refused) => return caller.reply(&state, refused).await,
    };
    let mut headers = HeaderMap::new();
    let roles = caller
        .roles()
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(",");
    for (name, value) in [
        (USER_ID_HEADER, user_id.to_string()),
        (EMAIL_HEADER, email.to_string()),
        (ROLES_HEADER, roles),
        (EMAIL_VERIFIED_HEADER, caller.email_verified().to_string()),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    caller
        .reply(&state, (StatusCode::NO_CONTENT, headers).into_response())
        .await
}

/// Where to send a person whose navigation was refused: `login_url` with
/// the URL they asked for as `rd`. `None` for programs, without
/// `login_url`, or when the URL cannot be rebuilt from a trusted proxy's
/// headers.
fn login_redirect(
    state: &AppState,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
) -> Option<String> {
    let login_url = state.config.login_url.as_ref()?;
    if !is_navigation(headers) {
        return None;
    }
    if !from_trusted_proxy(peer, &state.config.trusted_proxies) {
        return None;
    }
    let value = |name: &str| first_forwarded(headers, name);
    let scheme = value("x-forwarded-proto")?.to_ascii_lowercase();
    if !matches!(scheme.as_str(), "http" | "https") {
        return None;
    }
    let host = value("x-forwarded-host")?;
    // An authority, nothing that would make it a path or user info.
    if host.contains(['/', '\\', '?', '#', '@']) {
        return None;
    }
    // One URI, not a list: a comma in it (`?ids=1,2`) is part of it.
    let uri = headers
        .get("x-forwarded-uri")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|uri| !uri.is_empty())
        .unwrap_or("/");
    if !uri.starts_with('/') || uri.starts_with("//") {
        return None;
    }
    let asked = url::Url::parse(&format!("{scheme}://{host}{uri}")).ok()?;
    let mut location = login_url.url().clone();
    location.query_pairs_mut().append_pair("rd", asked.as_str());
    Some(location.into())
}

/// Whether the browser is loading a page (a person), not a script or a
/// program calling an API.
fn is_navigation(headers: &HeaderMap) -> bool {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(dest) = get("sec-fetch-dest") {
        return dest.eq_ignore_ascii_case("document");
    }
    if let Some(mode) = get("sec-fetch-mode") {
        return mode.eq_ignore_ascii_case("navigate");
    }
    get("accept").is_some_and(|accept| accept.contains("text/html"))
}

fn redirect(location: String, headers: &HeaderMap, refused: ApiError) -> Response {
    let Ok(location) = HeaderValue::from_str(&location) else {
        return refused.into_response();
    };
    let as_401 = headers
        .get("x-tessera-redirect-status")
        .is_some_and(|v| v.as_bytes() == b"401");
    let mut response = if as_401 {
        refused.into_response()
    } else {
        StatusCode::FOUND.into_response()
    };
    response.headers_mut().insert(header::LOCATION, location);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn page_loads_are_navigations_and_fetches_are_not() {
        assert!(is_navigation(&headers(&[
            ("sec-fetch-mode", "navigate"),
            ("sec-fetch-dest", "document")
        ])));
        assert!(!is_navigation(&headers(&[
            ("sec-fetch-mode", "navigate"),
            ("sec-fetch-dest", "iframe")
        ])));
        assert!(!is_navigation(&headers(&[
            ("sec-fetch-mode", "cors"),
            ("sec-fetch-dest", "empty"),
            ("accept", "text/html")
        ])));
        assert!(is_navigation(&headers(&[(
            "accept",
            "text/html,application/xhtml+xml"
        )])));
        assert!(!is_navigation(&headers(&[("accept", "application/json")])));
        assert!(!is_navigation(&headers(&[])));
    }
}
