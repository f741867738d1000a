//! `PATCH /admin/users/{email}`: role changes and disabling, admins only.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};
use tessera_core::{Email, Role};

use crate::audit::AuditContext;
use crate::caller::Caller;
use crate::error::ApiError;
use crate::json::ApiJson;
use crate::routes::UserView;
use crate::state::AppState;

/// The changes an admin may make; at least one field.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    roles: Option<Vec<Role>>,
    disabled: Option<bool>,
}

/// Applies a [`UserPatch`]. A role change reaches the user's live sessions on
/// their next request; disabling ends all of them at once.
///
/// Answers 403 without the `admin` role, 400 for an empty or invalid patch,
/// 404 for an unknown user, 503 when a store does not answer.
pub async fn patch_user(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    context: AuditContext,
    Path(email): Path<String>,
    ApiJson(patch): ApiJson<UserPatch>,
) -> Response {
    let context = context.by(&caller);
    let result = apply(&state, &caller, &context, &email, patch).await;
    caller.reply(&state, result).await
}

async fn apply(
    state: &AppState,
    caller: &Caller,
    context: &AuditContext,
    email: &str,
    patch: UserPatch,
) -> Result<Json<Value>, ApiError> {
    caller.require_role(Role::ADMIN)?;
    let email =
        Email::parse(email).map_err(|e| ApiError::bad_request("invalid_email", e.to_string()))?;
    if patch.roles.is_none() && patch.disabled.is_none() {
        return Err(ApiError::bad_request(
            "empty_patch",
            "give \"roles\" and/or \"disabled\"",
        ));
    }
    let mut result = None;
    let mut sessions_affected = 0;
    if let Some(roles) = &patch.roles {
        let change = state
            .accounts
            .set_roles(context, &email, roles)
            .await?
            .ok_or(ApiError::NotFound("no such user"))?;
        sessions_affected += change.sessions_affected + change.families_ended;
        result = Some(change.user);
    }
    if let Some(disabled) = patch.disabled {
        let change = state
            .accounts
            .set_disabled(context, &email, disabled)
            .await?
            .ok_or(ApiError::NotFound("no such user"))?;
        sessions_affected += change.sessions_affected + change.families_ended;
        result = Some(change.user);
    }
    let user = result.ok_or(ApiError::NotFound("no such user"))?;
    tracing::info!(admin = %caller.credential().principal(), user = %user.id, ?patch, "user changed by admin");
    Ok(Json(
        json!({"user": UserView::of(&user), "sessions_affected": sessions_affected}),
    ))
}
