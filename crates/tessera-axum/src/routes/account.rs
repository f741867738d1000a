//! The logged-in user's own account: `POST /password`, `POST /email`,
//! `POST /email/confirm` and `DELETE /account`.
//!
//! Each change asks for the current password again (checked as a login is:
//! throttled, on the hashing pool), and goes through [`Accounts`], so it has
//! the same effects as the admin API and the CLI.
//!
//! [`Accounts`]: crate::accounts::Accounts

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{AppendHeaders, IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tessera_core::{AuditKind, Notice, Password, TicketPurpose, User};
use utoipa::ToSchema;

use crate::accounts::PasswordChange;
use crate::audit::AuditContext;
use crate::caller::{Caller, Credential};
use crate::client_ip::client_ip;
use crate::error::{ApiError, ErrorBody};
use crate::json::{ApiJson, Json};
use crate::openapi::{
    PayloadTooLarge, RequestTimeout, TooManyRequests, Unavailable, UnsupportedMediaType,
};
use crate::routes::SessionsEnded;
use crate::routes::login::{Authenticated, Credentials, authenticate, start_session};
use crate::routes::mailed::Accepted;
use crate::routes::mailed::{
    after_answer, hash_new_password, issue_ticket, parse_email, redeem_for_user, send,
    throttle_mail,
};
use crate::routes::signup::TicketRequest;
use crate::routes::signup::UserBody;
use crate::state::AppState;

/// Checks the caller's password again, as a login would (throttled, no
/// difference between a wrong password and anything else).
async fn confirm_password(
    state: &AppState,
    caller: &Caller,
    ip: std::net::IpAddr,
    headers: &HeaderMap,
    password: String,
) -> Result<User, ApiError> {
    let (id, email) = caller.user("this change")?;
    let credentials = Credentials::confirming(email, password);
    let Authenticated { user, .. } = authenticate(state, ip, headers, credentials).await?;
    if user.id != id {
        return Err(ApiError::InvalidCredentials);
    }
    Ok(user)
}

/// Body of `POST /password`. `Debug` never shows the passwords.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPassword {
    /// The password in use.
    #[schema(format = Password)]
    current_password: String,
    /// The new one (checked against the password policy).
    #[schema(format = Password)]
    new_password: String,
    /// End every other credential of the user (default `true`).
    #[serde(default = "yes")]
    #[schema(default = true)]
    end_other_sessions: bool,
}

fn yes() -> bool {
    true
}

impl std::fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewPassword")
            .field("end_other_sessions", &self.end_other_sessions)
            .finish_non_exhaustive()
    }
}

/// `POST /password`: `{"current_password", "new_password"[,
/// "end_other_sessions"]}`. With `end_other_sessions` (the default) every
/// session, refresh family, access token and sealed cookie of the user ends,
/// as after a reset; a browser caller gets a fresh session cookie in the
/// answer and stays logged in, a bearer caller logs in again. Without it,
/// only the password changes. A notice is mailed either way.
///
/// # Errors
///
/// 401 `invalid_credentials` (wrong current password), 400
/// `weak_password`, 429, 503.
#[utoipa::path(
    post,
    path = "/password",
    operation_id = "change_password",
    tag = "accounts",
    request_body = NewPassword,
    security(("session_cookie" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Changed; a cookie caller gets a fresh session cookie when the others ended.", body = SessionsEnded),
        (status = 400, description = "`invalid_json`, `weak_password`.", body = ErrorBody),
        (status = 401, description = "`unauthenticated`, `invalid_token`, `invalid_credentials` (wrong current password).", body = ErrorBody),
        (status = 403, description = "`cross_site_request` (a cookie caller's request from another site), `api_key_not_accepted`.", body = ErrorBody),
        (status = 408, response = RequestTimeout),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn change_password(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    context: AuditContext,
    headers: HeaderMap,
    ApiJson(change): ApiJson<NewPassword>,
) -> Response {
    let ip = client_ip(peer, &headers, &state.config.trusted_proxies);
    let context = context.by(&caller);
    let result = change_password_for(&state, &caller, &context, ip, &headers, change).await;
    match result {
        // The caller's credential ended with the rest: nothing of it to reply with.
        Ok(Some(response)) => response,
        Ok(None) => {
            caller
                .reply(&state, Json(SessionsEnded { sessions_ended: 0 }))
                .await
        }
        Err(e) => caller.reply(&state, e).await,
    }
}

async fn change_password_for(
    state: &AppState,
    caller: &Caller,
    context: &AuditContext,
    ip: std::net::IpAddr,
    headers: &HeaderMap,
    change: NewPassword,
) -> Result<Option<Response>, ApiError> {
    let user = confirm_password(state, caller, ip, headers, change.current_password).await?;
    let client = state.throttle.client_key(ip);
    let hash = hash_new_password(
        state,
        &client,
        Password::new(change.new_password),
        &user.email,
    )
    .await?;
    if !change.end_other_sessions {
        state
            .accounts
            .change_password(context, &user.email, &hash, PasswordChange::KeepingSessions)
            .await?
            .ok_or(ApiError::Unauthenticated)?;
        tracing::info!(user = %user.id, "password changed, sessions kept");
        return Ok(None);
    }
    let change = state
        .accounts
        .change_password(context, &user.email, &hash, PasswordChange::Changed)
        .await?
        .ok_or(ApiError::Unauthenticated)?;
    tracing::info!(user = %user.id, "password changed, every session ended");
    let ended = change.sessions_affected + change.families_ended;
    let body = Json(SessionsEnded {
        sessions_ended: ended,
    });
    Ok(Some(match caller.credential() {
        Credential::Stored(_) | Credential::Sealed { .. } => {
            let (cookie, _) = start_session(state, &change.user, ip, headers, true).await?;
            (AppendHeaders([(header::SET_COOKIE, cookie)]), body).into_response()
        }
        Credential::Bearer { .. } | Credential::ApiKey(_) => body.into_response(),
    }))
}

/// Body of `POST /email`. `Debug` never shows the password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailChange {
    /// The address to move the account to.
    #[schema(format = "email")]
    new_email: String,
    /// The account's password.
    #[schema(format = Password)]
    password: String,
}

impl std::fmt::Debug for EmailChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EmailChange { .. }")
    }
}

/// `POST /email`: `{"new_email", "password"}` → `202`. Nothing changes yet:
/// the new address is mailed a confirmation link (`POST /email/confirm`)
/// and the current one a notice. The answer is the same whether or not the
/// new address belongs to another account (which then gets no mail).
///
/// # Errors
///
/// 401 `invalid_credentials`, 400 `invalid_email` (or the address the
/// account already has), 429, 503.
#[utoipa::path(
    post,
    path = "/email",
    operation_id = "request_email_change",
    tag = "accounts",
    request_body = EmailChange,
    security(("session_cookie" = []), ("bearer" = [])),
    responses(
        (status = 202, description = "The same answer whether or not the new address has an account.", body = Accepted),
        (status = 400, description = "`invalid_json`, `invalid_email`, `same_email`.", body = ErrorBody),
        (status = 401, description = "`unauthenticated`, `invalid_token`, `invalid_credentials` (wrong password).", body = ErrorBody),
        (status = 403, description = "`cross_site_request` (a cookie caller's request from another site), `api_key_not_accepted`.", body = ErrorBody),
        (status = 408, response = RequestTimeout),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn request_email_change(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    context: AuditContext,
    headers: HeaderMap,
    ApiJson(change): ApiJson<EmailChange>,
) -> Response {
    let ip = client_ip(peer, &headers, &state.config.trusted_proxies);
    let context = context.by(&caller);
    let result = email_change_for(&state, &caller, &context, ip, &headers, change).await;
    caller.reply(&state, result).await
}

async fn email_change_for(
    state: &Arc<AppState>,
    caller: &Caller,
    context: &AuditContext,
    ip: std::net::IpAddr,
    headers: &HeaderMap,
    change: EmailChange,
) -> Result<Response, ApiError> {
    let new_email = parse_email(&change.new_email)?;
    let user = confirm_password(state, caller, ip, headers, change.password).await?;
    if new_email == user.email {
        return Err(ApiError::bad_request(
            "same_email",
            "that is the account's address already",
        ));
    }
    throttle_mail(state, ip, new_email.as_str()).await?;
    let taken = state.users.by_email(&new_email).await?.is_some();
    tracing::info!(user = %user.id, "e-mail change requested");
    state
        .audit()
        .record(context.event_about(AuditKind::EmailChangeRequested, user.id));
    // What depends on whether the new address has an account, after the
    // answer: a free address gets the confirmation link, a taken one
    // nothing; the current address is told either way.
    let flow_state = Arc::clone(state);
    after_answer("e-mail change", async move {
        let state = flow_state;
        if !taken {
            let link = issue_ticket(
                &state,
                TicketPurpose::ChangeEmail,
                Some(user.id),
                &new_email,
                Vec::new(),
            )
            .await?;
            send(&state, &new_email, Notice::ConfirmEmailChange { link }).await?;
        }
        send(
            &state,
            &user.email,
            Notice::EmailChangeRequested { new_email },
        )
        .await
    });
    Ok(crate::routes::mailed::accepted())
}

/// `POST /email/confirm`: `{"token"}` from the link mailed to the new
/// address → the account moves to it (verified: the link reached it), its
/// live sessions show it on their next request, and the old address is
/// told. Needs no login: the link may be opened in another browser.
///
/// # Errors
///
/// 400 `invalid_ticket`, 409 `email_taken` (the address found an owner in
/// the meantime), 503.
#[utoipa::path(
    post,
    path = "/email/confirm",
    operation_id = "confirm_email_change",
    tag = "accounts",
    request_body = TicketRequest,
    responses(
        (status = 200, description = "The account has the new address, verified.", body = UserBody),
        (status = 400, description = "`invalid_json`, `invalid_ticket`.", body = ErrorBody),
        (status = 409, description = "`email_taken`: the address found an owner meanwhile.", body = ErrorBody),
        (status = 408, response = RequestTimeout),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn confirm_email_change(
    State(state): State<Arc<AppState>>,
    context: AuditContext,
    ApiJson(request): ApiJson<TicketRequest>,
) -> Result<Response, ApiError> {
    let (ticket, user) =
        redeem_for_user(&state, request.token(), TicketPurpose::ChangeEmail).await?;
    let changed = match state
        .accounts
        .confirm_email_change(&context, user.id, &ticket.email)
        .await
    {
        Ok(changed) => changed.ok_or(ApiError::InvalidTicket)?,
        Err(tessera_core::StoreError::Conflict) => return Err(ApiError::EmailTaken),
        Err(e) => return Err(e.into()),
    };
    tracing::info!(user = %user.id, "e-mail address changed");
    Ok(Json(UserBody::of(&changed.user)).into_response())
}

/// `{"deleted": true}`: the answer of `DELETE /account`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountDeleted {
    /// Always `true`.
    deleted: bool,
}

/// Body of `DELETE /account`. `Debug` never shows the password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountDeletion {
    /// The account's password.
    #[schema(format = Password)]
    password: String,
}

impl std::fmt::Debug for AccountDeletion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccountDeletion { .. }")
    }
}

/// `DELETE /account`: `{"password"}` → the user and everything attached
/// (sessions, refresh families, access tokens, sealed cookies, tickets) are
/// gone; the cookie is cleared and a notice is mailed to the address.
///
/// # Errors
///
/// 401 `invalid_credentials`, 429, 503.
#[utoipa::path(
    delete,
    path = "/account",
    operation_id = "delete_account",
    tag = "accounts",
    request_body = AccountDeletion,
    security(("session_cookie" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Deleted; the cookie is cleared.", body = AccountDeleted),
        (status = 400, description = "`invalid_json`.", body = ErrorBody),
        (status = 401, description = "`unauthenticated`, `invalid_token`, `invalid_credentials` (wrong password).", body = ErrorBody),
        (status = 403, description = "`cross_site_request` (a cookie caller's request from another site), `api_key_not_accepted`.", body = ErrorBody),
        (status = 408, response = RequestTimeout),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn delete_account(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    context: AuditContext,
    headers: HeaderMap,
    ApiJson(request): ApiJson<AccountDeletion>,
) -> Response {
    let ip = client_ip(peer, &headers, &state.config.trusted_proxies);
    let context = context.by(&caller);
    match delete_for(&state, &caller, &context, ip, &headers, request).await {
        Ok(response) => response,
        Err(e) => caller.reply(&state, e).await,
    }
}

async fn delete_for(
    state: &AppState,
    caller: &Caller,
    context: &AuditContext,
    ip: std::net::IpAddr,
    headers: &HeaderMap,
    request: AccountDeletion,
) -> Result<Response, ApiError> {
    let user = confirm_password(state, caller, ip, headers, request.password).await?;
    state.accounts.delete_user(context, user.id).await?;
    tracing::info!(user = %user.id, "account deleted by its user");
    let mut response = (StatusCode::OK, Json(AccountDeleted { deleted: true })).into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, state.config.cookie.clear());
    Ok(response)
}
