//! `POST /password/forgot` and `POST /password/reset`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};
use tessera_core::{Notice, Password, TicketPurpose, Timestamp};

use crate::accounts::PasswordChange;
use crate::audit::AuditContext;
use crate::error::ApiError;
use crate::json::ApiJson;
use crate::routes::login::login_origin;
use crate::routes::mailed::{
    accepted, after_answer, hash_new_password, mail_reset_link, parse_ticket, send, throttle_mail,
};
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
    let ip = login_origin(&state, peer, &method, &headers)?;
    let email = request.email()?;
    throttle_mail(&state, ip, email.as_str()).await?;
    let user = state.users.by_email(&email).await?;
    let flow_state = Arc::clone(&state);
    after_answer("forgot password", async move {
        match user.filter(|u| !u.disabled) {
            Some(user) => mail_reset_link(&flow_state, &user).await.map(drop),
            None => Ok(()),
        }
    });
    Ok(accepted())
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
    let secret = parse_ticket(&request.token)?;
    let ip = crate::client_ip::client_ip(peer, &headers, &state.config.trusted_proxies);
    let password = Password::new(request.password);
    let client = state.throttle.client_key(ip);
    let now = Timestamp::now();
    let ticket = state
        .tickets
        .redeem_ticket(&secret.hash(), TicketPurpose::ResetPassword, now)
        .await?
        .ok_or(ApiError::InvalidTicket)?;
    let user = match ticket.user {
        Some(id) => state.users.by_id(id).await?,
        None => None,
    };
    let Some(user) = user.filter(|u| !u.disabled) else {
        return Err(ApiError::InvalidTicket);
    };
    let hash = match hash_new_password(&state, &client, password, &user.email).await {
        Ok(hash) => hash,
        Err(refused) => {
            // The ticket goes back: the holder may try another password.
            state.tickets.create_ticket(&ticket).await?;
            return Err(refused);
        }
    };
    let change = state
        .accounts
        .change_password(&context, &user.email, &hash, PasswordChange::Reset)
        .await?
        .ok_or(ApiError::InvalidTicket)?;
    state
        .tickets
        .revoke_tickets(user.id, TicketPurpose::ResetPassword)
        .await?;
    if !user.email_verified && ticket.email == user.email {
        state
            .accounts
            .set_email_verified(&context, user.id, true)
            .await?;
    }
    tracing::info!(user = %user.id, "password reset");
    send(&state, &user.email, Notice::PasswordChanged).await?;
    Ok(Json(json!({
        "sessions_ended": change.sessions_affected + change.families_ended
    })))
}
