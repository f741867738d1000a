//! What the flows that mail a link share: tickets and their links, the mail
//! throttle, new-password checks, and the work done after a `202`.
//!
//! A flow that takes an address from anyone (`/signup`, `/password/forgot`,
//! `/email/verify/resend`) answers `202` with one body once it has checked
//! the input, taken its throttle tokens and looked the address up — the same
//! steps whatever it found. What depends on whether the address has an
//! account (creating it, a ticket, the mail) is done after the answer, so
//! neither the body nor the time reveals it.

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tessera_core::{
    Email, Notice, OutgoingMail, Password, PasswordHash, Role, Ticket, TicketPurpose, TicketSecret,
    Timestamp, User, UserId,
};

use crate::error::ApiError;
use crate::json::Json;
use crate::state::AppState;
use crate::throttle::Refusal;
use utoipa::ToSchema;

/// The fixed body of a `202` from a flow that mails a link.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    /// Always `accepted`.
    #[schema(value_type = String, pattern = "^accepted$")]
    status: &'static str,
    /// For people.
    #[schema(value_type = String)]
    message: &'static str,
}

/// What every address-taking flow answers: `202` and one fixed body.
pub fn accepted() -> Response {
    (
        StatusCode::ACCEPTED,
        Json(Accepted {
            status: "accepted",
            message: "If the address can receive it, a message with a link is on its way.",
        }),
    )
        .into_response()
}

/// Parses an address from a request body.
///
/// # Errors
///
/// 400 `invalid_email`.
pub fn parse_email(raw: &str) -> Result<Email, ApiError> {
    Email::parse(raw).map_err(|e| ApiError::bad_request("invalid_email", e.to_string()))
}

/// Parses a ticket from a request body; anything malformed is the same
/// [`ApiError::InvalidTicket`] as an unknown or used one.
///
/// # Errors
///
/// 400 `invalid_ticket`.
pub fn parse_ticket(raw: &str) -> Result<TicketSecret, ApiError> {
    TicketSecret::parse(raw.trim()).map_err(|_| ApiError::InvalidTicket)
}

/// Redeems the ticket in `raw` for `purpose` and loads the active account
/// it acts on. A ticket for another purpose, a used or expired one, and one
/// whose account is gone or disabled are all the same
/// [`ApiError::InvalidTicket`].
///
/// # Errors
///
/// 400 `invalid_ticket`, 503.
pub async fn redeem_for_user(
    state: &AppState,
    raw: &str,
    purpose: TicketPurpose,
) -> Result<(Ticket, User), ApiError> {
    let secret = parse_ticket(raw)?;
    let ticket = state
        .tickets
        .redeem_ticket(&secret.hash(), purpose, Timestamp::now())
        .await?
        .ok_or(ApiError::InvalidTicket)?;
    let user = match ticket.user {
        Some(id) => state.users.by_id(id).await?,
        None => None,
    };
    let user = user
        .filter(|u| !u.disabled)
        .ok_or(ApiError::InvalidTicket)?;
    Ok((ticket, user))
}

/// Takes the mail throttle's tokens for `ip` mailing `address`.
///
/// # Errors
///
/// 429 with `Retry-After`; 503 when the buckets' store is down.
pub async fn throttle_mail(state: &AppState, ip: IpAddr, address: &str) -> Result<(), ApiError> {
    state
        .throttle
        .mail_attempt(ip, address)
        .await
        .map_err(|refusal| match refusal {
            Refusal::Wait(retry_after) => ApiError::Throttled { retry_after },
            Refusal::Unavailable(e) => ApiError::from(e),
        })
}

/// Checks a new password against the policy and hashes it on the hashing
/// pool (in `client`'s share).
///
/// # Errors
///
/// 400 `weak_password`; 503 `busy` when the pool is full.
pub async fn hash_new_password(
    state: &AppState,
    client: &str,
    password: Password,
    email: &Email,
) -> Result<PasswordHash, ApiError> {
    check_new_password(state, &password, email).await?;
    state
        .hashing
        .run_for(client, move |hasher| hasher.hash(&password))
        .await
        .map_err(|_| ApiError::Busy {
            retry_after: Duration::from_secs(1),
        })?
        .map_err(|e| ApiError::Internal(format!("hashing failed: {e}")))
}

/// The password policy for a new password of the account at `email`.
///
/// # Errors
///
/// 400 `weak_password` naming the rule; 503 when the breached-password
/// service is down and its failures close.
pub async fn check_new_password(
    state: &AppState,
    password: &Password,
    email: &Email,
) -> Result<(), ApiError> {
    state.check_new_password(password, email).await
}

/// Issues a ticket for `purpose` and returns the link that carries it.
///
/// # Errors
///
/// 503 when the store does not answer.
pub async fn issue_ticket(
    state: &AppState,
    purpose: TicketPurpose,
    user: Option<UserId>,
    email: &Email,
    roles: Vec<Role>,
) -> Result<String, ApiError> {
    let ttl = state.config.self_service.ttl(purpose);
    let (secret, ticket) =
        Ticket::issue(purpose, user, email.clone(), roles, Timestamp::now(), ttl);
    state.tickets.create_ticket(&ticket).await?;
    Ok(state.config.self_service.links.link(purpose, &secret))
}

/// Queues a mail (durably; the sender delivers it in the background).
///
/// # Errors
///
/// 503 when the outbox does not answer.
pub async fn send(state: &AppState, to: &Email, notice: Notice) -> Result<(), ApiError> {
    state
        .mail()
        .send(OutgoingMail {
            to: to.clone(),
            notice,
        })
        .await?;
    Ok(())
}

/// Mails `user` a fresh password-reset link.
///
/// # Errors
///
/// 503 when a store does not answer.
pub async fn mail_reset_link(state: &AppState, user: &User) -> Result<String, ApiError> {
    let link = issue_ticket(
        state,
        TicketPurpose::ResetPassword,
        Some(user.id),
        &user.email,
        Vec::new(),
    )
    .await?;
    send(
        state,
        &user.email,
        Notice::ResetPassword { link: link.clone() },
    )
    .await?;
    Ok(link)
}

/// Runs the part of a flow that depends on whether an address has an
/// account, after the answer has gone: failures are logged, never shown.
pub fn after_answer<F>(what: &'static str, work: F)
where
    F: Future<Output = Result<(), ApiError>> + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(error) = work.await {
            tracing::warn!(%error, flow = what, "account flow failed after its answer");
        }
    });
}

/// `POST /password/forgot` and `POST /email/verify/resend`: the steps an
/// address-taking flow makes before its answer, the same for every address
/// (the origin check, the address, the mail throttle, one lookup), then
/// the `202`; `work` runs after it, only if the address has an active
/// account.
///
/// # Errors
///
/// 403 for a cross-site request, 400 `invalid_email`, 429, 503.
pub async fn for_account_of<F, Fut>(
    state: &Arc<AppState>,
    origin: (std::net::SocketAddr, &axum::http::Method, &HeaderMap),
    raw_email: &str,
    what: &'static str,
    work: F,
) -> Result<Response, ApiError>
where
    F: FnOnce(Arc<AppState>, User) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), ApiError>> + Send + 'static,
{
    let (peer, method, headers) = origin;
    let ip = crate::routes::login::login_origin(state, peer, method, headers)?;
    let email = parse_email(raw_email)?;
    throttle_mail(state, ip, email.as_str()).await?;
    let user = state.users.by_email(&email).await?;
    let state = Arc::clone(state);
    after_answer(what, async move {
        match user.filter(|u| !u.disabled) {
            Some(user) => work(state, user).await,
            None => Ok(()),
        }
    });
    Ok(accepted())
}

/// The client's `User-Agent`, for the audit trail.
pub fn user_agent(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| ua.chars().take(256).collect())
}
