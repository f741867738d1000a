//! `PATCH /admin/users/{email}`: role changes and disabling, admins only.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tessera_core::{Email, Role};
use utoipa::ToSchema;

use crate::audit::AuditContext;
use crate::caller::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::json::{ApiJson, Json, present};
use crate::openapi::{
    PayloadTooLarge, RequestTimeout, Unauthorized, Unavailable, UnsupportedMediaType,
};
use crate::routes::UserView;
use crate::state::AppState;

/// The changes an admin may make; at least one field.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = LegacyUserPatch)]
pub struct UserPatch {
    /// The user's roles from now on.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Vec<crate::openapi::RoleName>, required = false)]
    roles: Option<Vec<Role>>,
    /// Disable (ends every credential) or enable the account.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = bool, required = false)]
    disabled: Option<bool>,
}

/// The answer: the user, and how many sessions and token families the
/// change reached.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = LegacyUserChanged)]
pub struct UserChanged<'a> {
    user: UserView<'a>,
    sessions_affected: u64,
}

/// Applies a [`UserPatch`]. A role change reaches the user's live sessions on
/// their next request; disabling ends all of them at once.
///
/// Answers 403 without the `admin` role, 400 for an empty or invalid patch,
/// 404 for an unknown user, 503 when a store does not answer.
#[utoipa::path(
    patch,
    path = "/admin/users/{email}",
    operation_id = "legacy_patch_user",
    tag = "admin",
    params(("email" = String, Path, format = "email", description = "The user's address.")),
    request_body = UserPatch,
    security(("session_cookie" = []), ("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "Changed.", body = UserChanged),
        (status = 400, description = "`invalid_json`, `invalid_email`, `empty_patch`, `bad_request` (a path that is not UTF-8).", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, description = "`forbidden` (no `admin` role), `cross_site_request` (a cookie caller's request from another site).", body = ErrorBody),
        (status = 404, description = "`not_found`: no such user.", body = ErrorBody),
        (status = 408, response = RequestTimeout),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 503, response = Unavailable),
    ),
)]
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
) -> Result<Response, ApiError> {
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
    Ok(Json(UserChanged {
        user: UserView::of(&user),
        sessions_affected,
    })
    .into_response())
}
