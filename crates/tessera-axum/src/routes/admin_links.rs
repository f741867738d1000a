//! `POST /admin/v1/invites` and `POST /admin/v1/users/{id}/password-reset`:
//! tickets an admin makes, mailed when a mailer is configured and otherwise
//! returned (once) for the admin to pass on.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use tessera_core::{Email, Role, UserId};

use crate::audit::AuditContext;
use crate::caller::Caller;
use crate::error::ApiError;
use crate::invites::{InviteError, IssuedLink};
use crate::json::ApiJson;
use crate::routes::Rfc3339;
use crate::state::AppState;

/// The answer: the link only when nobody mailed it.
fn issued(issued: &IssuedLink) -> Value {
    let mut body = json!({
        "mailed": issued.mailed,
        "expires_at": Rfc3339(issued.expires_at),
    });
    if !issued.mailed {
        body["link"] = Value::String(issued.link.clone());
    }
    body
}

/// Body of `POST /admin/v1/invites`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InviteRequest {
    email: Email,
    #[serde(default)]
    roles: Vec<Role>,
    /// Seconds the invite works (default `invite_ttl`, at most 90 days).
    #[serde(default)]
    expires_in: Option<u64>,
}

/// `POST /admin/v1/invites`: `{"email"[, "roles", "expires_in"]}` → 201; the address is
/// mailed a link to sign up (`POST /signup` with `"invite"`, which works in
/// `registration = invite` and `open`) with these roles, its address
/// verified. Without a mailer the answer carries the `link`. 409 if the
/// address has an account.
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
    Ok((StatusCode::CREATED, Json(json!({"invite": issued(&link)}))).into_response())
}

/// `POST /admin/v1/users/{id}/password-reset`: mails the user a reset link,
/// as `POST /password/forgot` would (or, without a mailer, returns it).
/// Nothing else changes until the link is used. 404 for an unknown user.
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
        Ok::<_, ApiError>(Json(issued(&link)))
    }
    .await;
    caller.reply(&state, result).await
}
