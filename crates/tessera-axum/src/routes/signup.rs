//! `POST /signup`, `POST /email/verify` and `POST /email/verify/resend`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tessera_core::{
    AuditKind, Email, NewUser, Notice, Password, PasswordHash, TicketPurpose, TicketSecret,
    Timestamp, User,
};
use utoipa::ToSchema;

use crate::audit::AuditContext;
use crate::error::{ApiError, ErrorBody};
use crate::json::{ApiJson, Json};
use crate::openapi::{
    PayloadTooLarge, RequestTimeout, TooManyRequests, Unavailable, UnsupportedMediaType,
};
use crate::routes::UserView;
use crate::routes::login::login_origin;
use crate::routes::mailed::Accepted;
use crate::routes::mailed::{
    accepted, after_answer, for_account_of, hash_new_password, issue_ticket, parse_email,
    redeem_for_user, send, throttle_mail,
};
use crate::self_service::Registration;
use crate::state::AppState;

/// Body of `POST /signup`. `Debug` never shows the password or invite.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignupRequest {
    /// The address to sign up with.
    #[schema(format = "email")]
    email: String,
    /// The new password (checked against the password policy).
    #[schema(format = Password)]
    password: String,
    /// The `token` of an invite link.
    #[serde(default)]
    invite: Option<String>,
}

/// `{"user": ...}`: an account just created.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserBody<'a> {
    user: UserView<'a>,
}

impl<'a> UserBody<'a> {
    /// The body for `user`.
    pub fn of(user: &'a User) -> Self {
        Self {
            user: UserView::of(user),
        }
    }
}

/// `{"email_verified": true}`: the answer of `POST /email/verify`.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmailVerified {
    /// Always `true`.
    email_verified: bool,
}

impl std::fmt::Debug for SignupRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SignupRequest { .. }")
    }
}

/// `POST /signup`: `{"email", "password"[, "invite"]}`.
///
/// Without an invite (`registration = open`): `202` with one body whether
/// or not the address has an account, after the same work (the password is
/// checked and hashed either way). Then, after the answer, a new address
/// gets an unverified account and a verification mail, a known one a mail
/// saying so with a recovery link.
///
/// With an invite (`registration = invite` or `open`): the invite is
/// redeemed (once), its address must be the one given, and the account is
/// created verified with the invite's roles: `201` with the user, `409` if
/// the address has an account by now.
///
/// # Errors
///
/// 403 `registration_closed` / `invite_required`, 400 `invalid_email` /
/// `weak_password`, 429, 503; 403 for a cross-site request.
#[utoipa::path(
    post,
    path = "/signup",
    operation_id = "signup",
    tag = "accounts",
    request_body = SignupRequest,
    responses(
        (status = 201, description = "Signed up with an invite: the account, verified, with the invite's roles.", body = UserBody),
        (status = 202, description = "`registration = open`, no invite: the same answer whether or not the address has an account.", body = Accepted),
        (status = 400, description = "`invalid_json`, `invalid_email`, `weak_password`.", body = ErrorBody),
        (status = 403, description = "`registration_closed`, `invite_required` (none, or not valid for this address), `cross_site_request`.", body = ErrorBody),
        (status = 408, response = RequestTimeout),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 409, description = "`email_taken`: with an invite, the address has an account by now.", body = ErrorBody),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn signup(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    context: AuditContext,
    method: Method,
    headers: HeaderMap,
    ApiJson(request): ApiJson<SignupRequest>,
) -> Result<Response, ApiError> {
    let ip = login_origin(&state, peer, &method, &headers)?;
    let invite = match (state.config.self_service.registration, &request.invite) {
        (Registration::Closed, _) => return Err(ApiError::RegistrationClosed),
        (Registration::Invite, None) => return Err(ApiError::InviteRequired),
        (_, Some(text)) => {
            Some(TicketSecret::parse(text.trim()).map_err(|_| ApiError::InviteRequired)?)
        }
        (Registration::Open, None) => None,
    };
    let email = parse_email(&request.email)?;
    throttle_mail(&state, ip, email.as_str()).await?;
    let client = state.throttle.client_key(ip);
    let hash = hash_new_password(&state, &client, Password::new(request.password), &email).await?;
    if let Some(invite) = invite {
        return accept_invite(&state, &context, &invite, email, hash).await;
    }
    let existing = state.users.by_email(&email).await?;
    let flow_state = Arc::clone(&state);
    after_answer("signup", async move {
        register(&flow_state, &context, email, hash, existing).await
    });
    Ok(accepted())
}

/// After the answer: the account and its verification mail, or the mail
/// telling the owner of a known address that someone tried.
async fn register(
    state: &AppState,
    context: &AuditContext,
    email: Email,
    hash: PasswordHash,
    existing: Option<User>,
) -> Result<(), ApiError> {
    let existing = match existing {
        Some(user) => Some(user),
        None => {
            let new_user = NewUser {
                email: email.clone(),
                roles: Vec::new(),
                password_hash: hash,
                email_verified: false,
            };
            match state.accounts.sign_up(context, new_user).await? {
                Some(user) => {
                    tracing::info!(user = %user.id, "signed up");
                    let link = issue_ticket(
                        state,
                        TicketPurpose::VerifyEmail,
                        Some(user.id),
                        &user.email,
                        Vec::new(),
                    )
                    .await?;
                    return send(state, &user.email, Notice::VerifyEmail { link }).await;
                }
                // Signed up a moment ago by another request.
                None => state.users.by_email(&email).await?,
            }
        }
    };
    let Some(user) = existing.filter(|u| !u.disabled) else {
        return Ok(());
    };
    let reset_link = issue_ticket(
        state,
        TicketPurpose::ResetPassword,
        Some(user.id),
        &user.email,
        Vec::new(),
    )
    .await?;
    send(state, &user.email, Notice::AlreadyRegistered { reset_link }).await
}

/// Redeems an invite for `email` and creates the account it grants.
async fn accept_invite(
    state: &AppState,
    context: &AuditContext,
    invite: &TicketSecret,
    email: Email,
    hash: PasswordHash,
) -> Result<Response, ApiError> {
    let now = Timestamp::now();
    let ticket = state
        .tickets
        .redeem_ticket(&invite.hash(), TicketPurpose::Invite, now)
        .await?
        .ok_or(ApiError::InviteRequired)?;
    if ticket.email != email {
        // Not this address's invite: put it back for its owner.
        state.tickets.create_ticket(&ticket).await?;
        return Err(ApiError::InviteRequired);
    }
    let new_user = NewUser {
        email,
        roles: ticket.roles,
        password_hash: hash,
        // The invite reached this address.
        email_verified: true,
    };
    let user = state
        .accounts
        .sign_up(context, new_user)
        .await?
        .ok_or(ApiError::EmailTaken)?;
    tracing::info!(user = %user.id, "signed up with an invite");
    state
        .audit()
        .record(context.event_about(AuditKind::InviteUsed, user.id));
    Ok((StatusCode::CREATED, Json(UserBody::of(&user))).into_response())
}

/// Body of `POST /email/verify` and other ticket-only requests.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TicketRequest {
    /// The `token` of the mailed link.
    token: String,
}

impl TicketRequest {
    /// The ticket as sent.
    pub fn token(&self) -> &str {
        &self.token
    }
}

/// `POST /email/verify`: `{"token"}` from a verification link → 200, the
/// address is verified. The ticket works once, for this purpose only, and
/// only while the account still has the address it was mailed to.
///
/// # Errors
///
/// 400 `invalid_ticket`, 503.
#[utoipa::path(
    post,
    path = "/email/verify",
    operation_id = "verify_email",
    tag = "accounts",
    request_body = TicketRequest,
    responses(
        (status = 200, description = "The address is verified.", body = EmailVerified),
        (status = 400, description = "`invalid_json`, `invalid_ticket` (malformed, unknown, used, expired or for another purpose).", body = ErrorBody),
        (status = 408, response = RequestTimeout),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn verify_email(
    State(state): State<Arc<AppState>>,
    context: AuditContext,
    ApiJson(request): ApiJson<TicketRequest>,
) -> Result<Json<EmailVerified>, ApiError> {
    let (ticket, user) =
        redeem_for_user(&state, request.token(), TicketPurpose::VerifyEmail).await?;
    if user.email != ticket.email {
        return Err(ApiError::InvalidTicket);
    }
    state
        .accounts
        .set_email_verified(&context, user.id, true)
        .await?;
    tracing::info!(user = %user.id, "e-mail address verified");
    Ok(Json(EmailVerified {
        email_verified: true,
    }))
}

/// Body of requests that name an address: resend, forgot.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddressRequest {
    /// The address.
    #[schema(format = "email")]
    email: String,
}

impl AddressRequest {
    /// The address as sent.
    pub fn email(&self) -> &str {
        &self.email
    }
}

/// `POST /email/verify/resend`: `{"email"}` → `202`, the same for every
/// address; an unverified account gets a fresh verification link.
///
/// # Errors
///
/// 400 `invalid_email`, 429, 503; 403 for a cross-site request.
#[utoipa::path(
    post,
    path = "/email/verify/resend",
    operation_id = "resend_verification",
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
pub async fn resend_verification(
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
        "resend verification",
        |state, user| async move {
            if user.email_verified {
                return Ok(());
            }
            let link = issue_ticket(
                &state,
                TicketPurpose::VerifyEmail,
                Some(user.id),
                &user.email,
                Vec::new(),
            )
            .await?;
            send(&state, &user.email, Notice::VerifyEmail { link }).await
        },
    )
    .await
}
