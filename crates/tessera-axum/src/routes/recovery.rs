//! `POST /password/forgot` and `POST /password/reset`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};
use tessera_core::{Password, TicketPurpose};

use crate::accounts::PasswordChange;
use crate::audit::AuditContext;
use crate::error::ApiError;
use crate::json::ApiJson;
use crate::routes::mailed::{for_account_of, hash_new_password, mail_reset_link, redeem_for_user};
use crate::routes::signup::AddressRequest;
use crate::state::AppState;

/// `POST /password/forgot`: `{"email"}` → `202`, the same body after the
/// same work for every address; an active account is mailed a reset link
/// (`password_reset_ttl`, 30 minutes by default; each works once).
///
/// # Errors
///
/// 400 `invalid_email`, 429, 503; 403 for a cross-site request.
pub async fn forgot(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
    ApiJson(request): ApiJson<AddressRequest>,
) -> Result<Response, ApiError> {
    for_account_of(
        &state,
        (peer, &method, &headers),
        request.email(),
        "forgot password",
        |state, user| async move { mail_reset_link(&state, &user).await.map(drop) },
    )
    .await
}

/// Body of `POST /password/reset`. `Debug` never shows the password.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    token: String,
    password: String,
}

impl std::fmt::Debug for ResetRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResetRequest { .. }")
    }
}

/// `POST /password/reset`: `{"token", "password"}` → the new password is
/// set and every session, refresh family, access token and sealed cookie of
/// the user ends; the address counts as verified (the link reached it), the
/// user's other reset links stop working, and a notice is mailed.
///
/// The ticket is redeemed (atomically: of concurrent resets with one
/// ticket exactly one gets it) before the password is hashed, so that
/// made-up tickets cost no hashing; if the policy then refuses the password
/// or the hashing pool is full, the ticket is put back for another try.
///
/// # Errors
///
/// 400 `invalid_ticket` / `weak_password`, 503.
pub async fn reset(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    context: AuditContext,
    headers: HeaderMap,
    ApiJson(request): ApiJson<ResetRequest>,
) -> Result<Json<Value>, ApiError> {
    let ip = crate::client_ip::client_ip(peer, &headers, &state.config.trusted_proxies);
    let password = Password::new(request.password);
    let client = state.throttle.client_key(ip);
    let (ticket, user) =
        redeem_for_user(&state, &request.token, TicketPurpose::ResetPassword).await?;
    if user.email != ticket.email {
        // The address changed since the link was mailed to it.
        return Err(ApiError::InvalidTicket);
    }
    let hash = match hash_new_password(&state, &client, password, &user.email).await {
        Ok(hash) => hash,
        Err(refused) => {
            // The ticket goes back, so that the holder may try another
            // password: unless the password changed meanwhile (which
            // revoked the user's reset links, this one included).
            let unchanged = state
                .users
                .by_id(user.id)
                .await?
                .is_some_and(|now| now.password_hash == user.password_hash);
            if unchanged {
                state.tickets.create_ticket(&ticket).await?;
            }
            return Err(refused);
        }
    };
    let change = state
        .accounts
        .change_password(&context, &user.email, &hash, PasswordChange::Reset)
        .await?
        .ok_or(ApiError::InvalidTicket)?;
    if !user.email_verified {
        state
            .accounts
            .set_email_verified(&context, user.id, true)
            .await?;
    }
    tracing::info!(user = %user.id, "password reset");
    Ok(Json(json!({
        "sessions_ended": change.sessions_affected + change.families_ended
    })))
}
