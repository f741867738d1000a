//! `POST /admin/v1/invites` and `POST /admin/v1/users/{id}/password-reset`:
//! tickets an admin makes, mailed when a mailer is configured and otherwise
//! returned (once) for the admin to pass on.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tessera_core::{Email, Role, UserId};
use utoipa::ToSchema;

use crate::audit::AuditContext;
use crate::caller::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::invites::{InviteError, IssuedLink, MAX_INVITE_LIFETIME};
use crate::json::{ApiJson, Json};
use crate::openapi::{
    PayloadTooLarge, RequestTimeout, Unauthorized, Unavailable, UnsupportedMediaType,
};
use crate::routes::Rfc3339;
use crate::state::AppState;

/// A link an admin had made: mailed, or handed back (only then is `link`
/// there).
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedView<'a> {
    /// Whether the link went out by mail.
    mailed: bool,
    #[schema(value_type = String, format = DateTime)]
    expires_at: Rfc3339,
    /// The link, when no mailer sent it (shown this once).
    #[serde(skip_serializing_if = "Option::is_none")]
    link: Option<&'a str>,
}

/// The answer: the link only when nobody mailed it.
fn issued(issued: &IssuedLink) -> IssuedView<'_> {
    IssuedView {
        mailed: issued.mailed,
        expires_at: Rfc3339(issued.expires_at),
        link: (!issued.mailed).then_some(issued.link.as_str()),
    }
}

/// `{"invite": ...}`: an invite made.
#[derive(Debug, Serialize, ToSchema)]
pub struct InviteBody<'a> {
    invite: IssuedView<'a>,
}

/// Body of `POST /admin/v1/invites`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteRequest {
    /// The address to invite.
    #[schema(value_type = String, format = "email")]
    email: Email,
    /// Roles the account will have.
    #[serde(default)]
    #[schema(value_type = Vec<crate::openapi::RoleName>)]
    roles: Vec<Role>,
    /// Seconds the invite works, 1 to 90 days (default `invite_ttl`).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 7_776_000)]
    expires_in: Option<u64>,
}

/// `POST /admin/v1/invites`: `{"email"[, "roles", "expires_in"]}` → 201; the address is
/// mailed a link to sign up (`POST /signup` with `"invite"`, which works in
/// `registration = invite` and `open`) with these roles, its address
/// verified. Without a mailer the answer carries the `link`. 409 if the
/// address has an account.
#[utoipa::path(
    post,
    path = "/admin/v1/invites",
    operation_id = "create_invite",
    tag = "admin",
    request_body = InviteRequest,
    security(("session_cookie" = []), ("bearer" = []), ("api_key" = [])),
    responses(
        (status = 201, description = "Invited: mailed, or the link handed back.", body = InviteBody),
        (status = 400, description = "`invalid_json`, `invalid_expiry`.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, description = "`forbidden` (no `admin` role), `cross_site_request` (a cookie caller's request from another site).", body = ErrorBody),
        (status = 409, description = "`conflict`: the address has an account.", body = ErrorBody),
        (status = 408, response = RequestTimeout),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn invite(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    context: AuditContext,
    body: Result<ApiJson<InviteRequest>, ApiError>,
) -> Response {
    let context = context.by(&caller);
    let result = async {
        caller.require_role(Role::ADMIN)?;
        let ApiJson(request) = body?;
        // Out of range is refused, not clamped (the CLI's `--expires`
        // is clamped by `OperatorMail::invite`).
        let max = MAX_INVITE_LIFETIME.as_secs();
        if request
            .expires_in
            .is_some_and(|secs| !(1..=max).contains(&secs))
        {
            return Err(ApiError::bad_request(
                "invalid_expiry",
                format!("expires_in is 1 to {max} seconds (90 days)"),
            ));
        }
        let lifetime = request.expires_in.map(Duration::from_secs);
        send_invite(&state, &context, &request.email, request.roles, lifetime).await
    }
    .await;
    caller.reply(&state, result).await
}

/// Invites `email` with `roles` (`POST /admin/v1/invites`, and `POST
/// /admin/v1/users` with `"invite": true`): 201 with what was issued.
///
/// # Errors
///
/// 409 if the address has an account; 503.
pub async fn send_invite(
    state: &AppState,
    context: &AuditContext,
    email: &Email,
    roles: Vec<Role>,
    lifetime: Option<Duration>,
) -> Result<Response, ApiError> {
    let link = state
        .operator_mail()
        .invite(context, email, roles, lifetime)
        .await
        .map_err(|e| match e {
            InviteError::Taken => ApiError::Conflict("a user with this e-mail address exists"),
            InviteError::Store(e) => e.into(),
        })?;
    let body = InviteBody {
        invite: issued(&link),
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `POST /admin/v1/users/{id}/password-reset`: mails the user a reset link,
/// as `POST /password/forgot` would (or, without a mailer, returns it).
/// Nothing else changes until the link is used. 404 for an unknown user.
#[utoipa::path(
    post,
    path = "/admin/v1/users/{id}/password-reset",
    operation_id = "create_password_reset",
    tag = "admin",
    params(("id" = uuid::Uuid, Path, description = "The user's id.")),
    security(("session_cookie" = []), ("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The reset link: mailed, or handed back.", body = IssuedView),
        (status = 400, description = "`invalid_id`: not a UUID.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, description = "`forbidden` (no `admin` role), `cross_site_request` (a cookie caller's request from another site).", body = ErrorBody),
        (status = 404, description = "`not_found`: no such user.", body = ErrorBody),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn password_reset(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    context: AuditContext,
    Path(id): Path<String>,
) -> Response {
    let context = context.by(&caller);
    let result = async {
        caller.require_role(Role::ADMIN)?;
        let id: UserId = id
            .parse()
            .map_err(|_| ApiError::bad_request("invalid_id", "user ids are UUIDs"))?;
        let user = state
            .users
            .by_id(id)
            .await?
            .ok_or(ApiError::NotFound("no such user"))?;
        let link = state.operator_mail().reset_link(&context, &user).await?;
        Ok::<_, ApiError>(Json(issued(&link)).into_response())
    }
    .await;
    caller.reply(&state, result).await
}
