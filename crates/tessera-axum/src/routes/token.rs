//! `POST /token`, `POST /token/refresh`, `POST /token/revoke` and
//! `GET /.well-known/jwks.json`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Method, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::json::ApiJson;
use crate::routes::login::{Credentials, authenticate, login_origin};
use crate::state::AppState;
use crate::tokens::TokenResponse;

/// `POST /token`: `{"email", "password"}` → access and refresh tokens, with
/// the same checks, throttling and enumeration resistance as `POST /login`.
///
/// # Errors
///
/// As `POST /login`.
pub async fn token(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
    ApiJson(credentials): ApiJson<Credentials>,
) -> Result<Response, ApiError> {
    let ip = login_origin(&state, peer, &method, &headers)?;
    let user = authenticate(&state, ip, credentials).await?;
    Ok(respond(&state, state.tokens.issue(&user).await?))
}

/// The token response; with `access_token_cookie` on, the access token goes
/// into an `HttpOnly` cookie (out of reach of page scripts) instead of the body.
fn respond(state: &AppState, mut tokens: TokenResponse) -> Response {
    if !state.config.access_token_cookie {
        return Json(tokens).into_response();
    }
    let Some(access) = tokens.take_access_token() else {
        return Json(tokens).into_response();
    };
    let cookie = state
        .config
        .cookie
        .renamed(crate::cookies::ACCESS_TOKEN_COOKIE)
        .issue_sealed(access, tokens.expires_in());
    ([(header::SET_COOKIE, cookie)], Json(tokens)).into_response()
}

/// Body of `POST /token/refresh`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    refresh_token: String,
}

/// `POST /token/refresh`: a new access token and a new refresh token; the
/// presented one stops working (after the grace window). Presenting a rotated
/// token again revokes the whole family.
///
/// # Errors
///
/// 401 `invalid_grant`, 503 store unavailable.
pub async fn refresh(
    State(state): State<Arc<AppState>>,
    ApiJson(request): ApiJson<RefreshRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    Ok(Json(
        state
            .tokens
            .refresh(&request.refresh_token, state.users.as_ref())
            .await?,
    ))
}

/// Body of `POST /token/revoke` (RFC 7009).
#[derive(Debug, Deserialize)]
pub struct RevokeRequest {
    token: String,
    #[serde(default)]
    #[allow(dead_code)]
    token_type_hint: Option<String>,
}

/// `POST /token/revoke`: 200 whatever the token was (RFC 7009 §2.2), once
/// any revocation is durable.
///
/// # Errors
///
/// 400 for a malformed body, 503 if the revocation cannot be stored.
pub async fn revoke(
    State(state): State<Arc<AppState>>,
    ApiJson(request): ApiJson<RevokeRequest>,
) -> Result<Json<Value>, ApiError> {
    state.tokens.revoke_token(&request.token).await?;
    Ok(Json(json!({})))
}

/// `GET /.well-known/jwks.json`: the public keys that verify access tokens
/// (none for HS256, whose secret is never published).
pub async fn jwks(State(state): State<Arc<AppState>>) -> Json<tessera_token::jwk::Jwks> {
    Json(state.tokens.jwks())
}
