//! `POST /token`, `POST /token/refresh`, `POST /token/revoke` and
//! `GET /.well-known/jwks.json`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Method, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::audit::AuditContext;
use crate::error::{ApiError, ErrorBody};
use crate::json::{ApiJson, Json};
use crate::openapi::{
    PayloadTooLarge, RequestTimeout, TooManyRequests, Unavailable, UnsupportedMediaType,
};
use crate::routes::login::{Credentials, authenticate, login_origin};
use crate::state::AppState;
use crate::tokens::IssuedTokens;

/// The OAuth 2.0 token response (RFC 6749 §5.1).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    /// The access token (a JWT). Absent when it travels in an `HttpOnly`
    /// cookie instead (`access_token_cookie`).
    #[serde(skip_serializing_if = "Option::is_none")]
    access_token: Option<String>,
    /// Always `Bearer`.
    #[schema(value_type = String, pattern = "^Bearer$")]
    token_type: &'static str,
    /// Seconds the access token lives.
    expires_in: u64,
    /// The opaque refresh token, for one use (`POST /token/refresh`).
    refresh_token: String,
}

impl From<IssuedTokens> for TokenResponse {
    fn from(tokens: IssuedTokens) -> Self {
        Self {
            access_token: Some(tokens.access_token),
            token_type: "Bearer",
            expires_in: tokens.expires_in.as_secs(),
            refresh_token: tokens.refresh_token,
        }
    }
}

/// `POST /token`: `{"email", "password"}` → access and refresh tokens, with
/// the same checks, throttling and enumeration resistance as `POST /login`.
///
/// # Errors
///
/// As `POST /login`.
#[utoipa::path(
    post,
    path = "/token",
    operation_id = "token",
    tag = "tokens",
    request_body = crate::routes::login::Credentials,
    responses(
        (status = 200, description = "An access token and a refresh token (RFC 6749 §5.1); a device cookie in `Set-Cookie`.", body = TokenResponse),
        (status = 400, description = "`invalid_json`: the body is not the credentials object.", body = ErrorBody),
        (status = 401, description = "`invalid_credentials`: unknown address, wrong password or disabled account (one answer for all).", body = ErrorBody),
        (status = 403, description = "`cross_site_request` (another site's request), `email_not_verified` (with `require_verified_email`).", body = ErrorBody),
        (status = 408, response = RequestTimeout),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn token(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
    ApiJson(credentials): ApiJson<Credentials>,
) -> Result<Response, ApiError> {
    let ip = login_origin(&state, peer, &method, &headers)?;
    let remember = credentials.remember();
    let authenticated = authenticate(&state, ip, &headers, credentials).await?;
    // Not remembered: the refresh family ends with the transient lifetime,
    // and an access-token cookie with the browser.
    let lifetime = (!remember).then(|| {
        state
            .config
            .tokens
            .refresh_ttl
            .min(state.config.policy.transient_timeout())
    });
    let issued = state.tokens.issue(&authenticated.user, lifetime).await?;
    authenticated.record_login(&state, "token", &issued.handle);
    let mut response = respond(&state, issued, remember);
    response
        .headers_mut()
        .append(header::SET_COOKIE, authenticated.device_cookie);
    Ok(response)
}

/// The token response; with `access_token_cookie` on, the access token goes
/// into an `HttpOnly` cookie (out of reach of page scripts) instead of the body.
fn respond(state: &AppState, tokens: IssuedTokens, remember: bool) -> Response {
    let expires_in = tokens.expires_in;
    let mut body = TokenResponse::from(tokens);
    if !state.config.access_token_cookie {
        return Json(body).into_response();
    }
    let Some(access) = body.access_token.take() else {
        return Json(body).into_response();
    };
    let cookie = state
        .config
        .cookie
        .access_token_cookie()
        .issue_sealed(access, remember.then_some(expires_in));
    ([(header::SET_COOKIE, cookie)], Json(body)).into_response()
}

/// Body of `POST /token/refresh`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The refresh token of the last answer.
    refresh_token: String,
}

/// `POST /token/refresh`: a new access token and a new refresh token; the
/// presented one stops working (after the grace window). Presenting a rotated
/// token again revokes the whole family.
///
/// # Errors
///
/// 401 `invalid_grant`, 503 store unavailable.
#[utoipa::path(
    post,
    path = "/token/refresh",
    operation_id = "refresh",
    tag = "tokens",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "New access and refresh tokens.", body = TokenResponse),
        (status = 400, description = "`invalid_json`.", body = ErrorBody),
        (status = 401, description = "`invalid_grant`: unknown, expired, revoked or reused refresh token (a reuse revokes the family).", body = ErrorBody),
        (status = 408, response = RequestTimeout),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn refresh(
    State(state): State<Arc<AppState>>,
    context: AuditContext,
    ApiJson(request): ApiJson<RefreshRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    let tokens = state
        .tokens
        .refresh_from(&request.refresh_token, state.users.as_ref(), &context)
        .await?;
    Ok(Json(TokenResponse::from(tokens)))
}

/// Body of `POST /token/revoke` (RFC 7009). Other fields, such as
/// `token_type_hint`, are accepted and ignored: every kind is tried.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RevokeRequest {
    /// A refresh token or an access token.
    token: String,
}

/// The answer of `POST /token/revoke`: an empty object.
#[derive(Debug, Serialize, ToSchema)]
pub struct Revoked {}

/// `POST /token/revoke`: 200 whatever the token was (RFC 7009 §2.2), once
/// any revocation is durable.
///
/// # Errors
///
/// 400 for a malformed body, 503 if the revocation cannot be stored.
#[utoipa::path(
    post,
    path = "/token/revoke",
    operation_id = "revoke",
    tag = "tokens",
    request_body = RevokeRequest,
    responses(
        (status = 200, description = "Whatever the token was (RFC 7009 §2.2); any revocation is durable.", body = Revoked),
        (status = 400, description = "`invalid_json`.", body = ErrorBody),
        (status = 408, response = RequestTimeout),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn revoke(
    State(state): State<Arc<AppState>>,
    ApiJson(request): ApiJson<RevokeRequest>,
) -> Result<Json<Revoked>, ApiError> {
    state.tokens.revoke_token(&request.token).await?;
    Ok(Json(Revoked {}))
}

/// `GET /.well-known/jwks.json`: the public keys that verify access tokens
/// (none for HS256, whose secret is never published).
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    operation_id = "jwks",
    tag = "tokens",
    responses(
        (status = 200, description = "A JWK Set (RFC 7517) of the public verification keys.", body = tessera_token::jwk::Jwks),
    ),
)]
pub async fn jwks(State(state): State<Arc<AppState>>) -> Json<tessera_token::jwk::Jwks> {
    Json(state.tokens.jwks())
}
