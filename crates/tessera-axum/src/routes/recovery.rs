//! `POST /password/forgot` and `POST /password/reset`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use serde::Deserialize;
use tessera_core::{Password, TicketPurpose};
use utoipa::ToSchema;

use crate::accounts::PasswordChange;
use crate::audit::AuditContext;
use crate::error::{ApiError, ErrorBody};
use crate::json::{ApiJson, Json};
use crate::openapi::{
    PayloadTooLarge, RequestTimeout, TooManyRequests, Unavailable, UnsupportedMediaType,
};
use crate::routes::SessionsEnded;
use crate::routes::mailed::Accepted;
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
#[utoipa::path(
    post,
    path = "/password/forgot",
    operation_id = "forgot_password",
    tag = "accounts",
    request_body = AddressRequest,
    responses(
        (status = 202, description = "The same answer for every address.", body = Accepted),
        (status = 400, description = "`invalid_json`, `invalid_email`.", body = ErrorBody),
        (status = 403, description = "`cross_site_request`.", body = ErrorBody),
        (status = 408, response = RequestTimeout),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    ),
)]
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
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    /// The `token` of the reset link.
    token: String,
    /// The new password (checked against the password policy).
    #[schema(format = Password)]
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
#[utoipa::path(
    post,
    path = "/password/reset",
    operation_id = "reset_password",
    tag = "accounts",
    request_body = ResetRequest,
    responses(
        (status = 200, description = "The password is set; every credential of the user ended.", body = SessionsEnded),
        (status = 400, description = "`invalid_json`, `invalid_ticket`, `weak_password`.", body = ErrorBody),
        (status = 408, response = RequestTimeout),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn reset(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    context: AuditContext,
    headers: HeaderMap,
    ApiJson(request): ApiJson<ResetRequest>,
) -> Result<Json<SessionsEnded>, ApiError> {
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
    Ok(Json(SessionsEnded {
        sessions_ended: change.sessions_affected + change.families_ended,
    }))
}
