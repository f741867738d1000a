//! `/admin/v1/users`: the users API, for an admin's session or token or an
//! API key with the `admin` role. Every change goes through
//! [`Accounts`](crate::accounts::Accounts), with the effects it has from the
//! CLI. Ids are UUIDs: a malformed one is 400, an unknown one 404.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tessera_core::{
    Email, NewUser, Password, Role, SessionHandle, Timestamp, User, UserCursor, UserId, UserQuery,
    user::MAX_PAGE,
};

use crate::audit::AuditContext;
use crate::caller::Caller;
use crate::error::ApiError;
use crate::json::ApiJson;
use crate::routes::SessionView;
use crate::state::AppState;

/// A user as the admin API shows it (never the password hash).
#[derive(Debug, Serialize)]
pub struct AdminUserView<'a> {
    id: UserId,
    email: &'a Email,
    roles: &'a [Role],
    disabled: bool,
    email_verified: bool,
    created_at: String,
}

impl<'a> AdminUserView<'a> {
    /// The fields an admin sees.
    pub fn of(user: &'a User) -> Self {
        Self {
            id: user.id,
            email: &user.email,
            roles: &user.roles,
            disabled: user.disabled,
            email_verified: user.email_verified,
            created_at: user.created_at.to_rfc3339(),
        }
    }
}

fn parse_id(raw: &str) -> Result<UserId, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::bad_request("invalid_id", "user ids are UUIDs"))
}

fn no_user() -> ApiError {
    ApiError::NotFound("no such user")
}

fn conflict() -> ApiError {
    ApiError::Conflict("a user with this e-mail address exists")
}

/// Body of `POST /admin/v1/users`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    email: Email,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    roles: Vec<Role>,
    /// An admin vouching for the address; default `false`.
    #[serde(default)]
    email_verified: bool,
    /// Mail an invite instead of setting a password.
    #[serde(default)]
    invite: bool,
}

/// `POST /admin/v1/users`: creates a user with a password (201 with the
/// user), or with `"invite": true` and no password mails an invite (201
/// with the invite, as `POST /admin/v1/invites`). 409 if the address is
/// taken; 400 for a bad body or a password the policy refuses.
pub async fn create(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    context: AuditContext,
    body: Result<ApiJson<CreateUser>, ApiError>,
) -> Response {
    let context = context.by(&caller);
    let result = async {
        caller.require_role(Role::ADMIN)?;
        let ApiJson(body) = body?;
        let password = match (body.invite, body.password) {
            (true, None) => {
                return crate::routes::admin_links::send_invite(
                    &state,
                    &context,
                    &body.email,
                    body.roles,
                    None,
                )
                .await;
            }
            (false, Some(password)) => Password::new(password),
            _ => {
                return Err(ApiError::bad_request(
                    "password_or_invite",
                    "give \"password\", or \"invite\": true without one",
                ));
            }
        };
        state.check_new_password(&password, &body.email).await?;
        let hash = state
            .hashing
            .run(move |hasher| hasher.hash(&password))
            .await
            .map_err(|_| ApiError::Busy {
                retry_after: Duration::from_secs(1),
            })?
            .map_err(|e| ApiError::Internal(format!("hashing failed: {e}")))?;
        let new_user = NewUser {
            email: body.email,
            roles: body.roles,
            password_hash: hash,
            email_verified: body.email_verified,
        };
        let user = state
            .accounts
            .create_user(&context, new_user)
            .await?
            .ok_or_else(conflict)?;
        tracing::info!(admin = %caller.credential().principal(), user = %user.id, "user created by admin");
        crate::accounts::warn_if_mixed_script(&user);
        Ok::<_, ApiError>(
            (
                StatusCode::CREATED,
                Json(json!({"user": AdminUserView::of(&user)})),
            )
                .into_response(),
        )
    }
    .await;
    caller.reply(&state, result).await
}

/// Query of `GET /admin/v1/users`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    email_prefix: Option<String>,
    role: Option<String>,
    disabled: Option<bool>,
    verified: Option<bool>,
    limit: Option<usize>,
    cursor: Option<String>,
}

impl ListParams {
    fn query(self) -> Result<UserQuery, ApiError> {
        let limit = self.limit.unwrap_or(50);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("limit is 1 to {MAX_PAGE}"),
            ));
        }
        let email_prefix = self
            .email_prefix
            .map(|p| p.trim().to_lowercase())
            .filter(|p| !p.is_empty());
        if email_prefix.as_ref().is_some_and(|p| p.len() > 254) {
            return Err(ApiError::bad_request(
                "invalid_query",
                "email_prefix is too long",
            ));
        }
        let role = self
            .role
            .map(|r| Role::parse(&r))
            .transpose()
            .map_err(|e| ApiError::bad_request("invalid_query", e.to_string()))?;
        let after = self
            .cursor
            .map(|c| UserCursor::decode(&c))
            .transpose()
            .map_err(|e| ApiError::bad_request("invalid_cursor", e.to_string()))?;
        Ok(UserQuery {
            email_prefix,
            role,
            disabled: self.disabled,
            verified: self.verified,
            limit,
            after,
        })
    }
}

/// `GET /admin/v1/users`: one page of users, ordered by e-mail address;
/// filters `email_prefix`, `role`, `disabled`, `verified`; `limit` (1–500,
/// default 50); `cursor` from the previous page's `next_cursor` (`null` on
/// the last page).
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Response {
    let result = async {
        caller.require_role(Role::ADMIN)?;
        let Query(params) =
            params.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
        let page = state.users.list_page(&params.query()?).await?;
        let users: Vec<AdminUserView<'_>> = page.users.iter().map(AdminUserView::of).collect();
        Ok::<_, ApiError>(Json(json!({
            "users": users,
            "next_cursor": page.next.map(|c| c.encode()),
        })))
    }
    .await;
    caller.reply(&state, result).await
}

/// `GET /admin/v1/users/{id}`.
pub async fn get(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Response {
    let result = async {
        caller.require_role(Role::ADMIN)?;
        let user = state
            .users
            .by_id(parse_id(&id)?)
            .await?
            .ok_or_else(no_user)?;
        Ok::<_, ApiError>(Json(json!({"user": AdminUserView::of(&user)})))
    }
    .await;
    caller.reply(&state, result).await
}

/// Body of `PATCH /admin/v1/users/{id}`: at least one field.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    roles: Option<Vec<Role>>,
    disabled: Option<bool>,
    email: Option<Email>,
    email_verified: Option<bool>,
}

/// The fields a patch changes, never their values (an address is personal
/// data: logs name users by id).
impl std::fmt::Debug for UserPatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let fields = [
            ("roles", self.roles.is_some()),
            ("disabled", self.disabled.is_some()),
            ("email", self.email.is_some()),
            ("email_verified", self.email_verified.is_some()),
        ];
        f.debug_list()
            .entries(fields.iter().filter(|(_, set)| *set).map(|(name, _)| name))
            .finish()
    }
}

/// `PATCH /admin/v1/users/{id}`: roles (sessions follow on their next
/// request), disabled (ends every credential), email (ends every
/// credential: each carries the old address; 409 if taken),
/// email_verified. Answers the user and how many sessions and token
/// families the change reached.
pub async fn patch(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    context: AuditContext,
    Path(id): Path<String>,
    body: Result<ApiJson<UserPatch>, ApiError>,
) -> Response {
    let context = context.by(&caller);
    let result = async {
        caller.require_role(Role::ADMIN)?;
        let id = parse_id(&id)?;
        let ApiJson(patch) = body?;
        if patch.roles.is_none()
            && patch.disabled.is_none()
            && patch.email.is_none()
            && patch.email_verified.is_none()
        {
            return Err(ApiError::bad_request(
                "empty_patch",
                "give one or more of \"roles\", \"disabled\", \"email\", \"email_verified\"",
            ));
        }
        let accounts = &state.accounts;
        let mut user = state.users.by_id(id).await?.ok_or_else(no_user)?;
        let mut reached = 0;
        let mut apply = |change: Option<crate::accounts::AccountChange>| {
            let change = change.ok_or_else(no_user)?;
            reached += change.sessions_affected + change.families_ended;
            user = change.user;
            Ok::<_, ApiError>(())
        };
        if let Some(email) = &patch.email {
            match accounts.set_email(&context, id, email).await {
                Err(tessera_core::StoreError::Conflict) => return Err(conflict()),
                other => apply(other?)?,
            }
        }
        if let Some(roles) = &patch.roles {
            apply(accounts.set_roles_of(&context, id, roles).await?)?;
        }
        if let Some(disabled) = patch.disabled {
            apply(accounts.set_disabled_of(&context, id, disabled).await?)?;
        }
        if let Some(verified) = patch.email_verified {
            apply(accounts.set_email_verified(&context, id, verified).await?)?;
        }
        tracing::info!(admin = %caller.credential().principal(), user = %id, ?patch, "user changed by admin");
        Ok(Json(
            json!({"user": AdminUserView::of(&user), "sessions_affected": reached}),
        ))
    }
    .await;
    caller.reply(&state, result).await
}

/// `DELETE /admin/v1/users/{id}`: deletes the user and ends every
/// session, refresh family, access token and sealed cookie of theirs
/// ([`Accounts::delete_user`](crate::accounts::Accounts::delete_user)). 204.
pub async fn delete(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    context: AuditContext,
    Path(id): Path<String>,
) -> Response {
    let context = context.by(&caller);
    let result = async {
        caller.require_role(Role::ADMIN)?;
        let id = parse_id(&id)?;
        let change = state
            .accounts
            .delete_user(&context, id)
            .await?
            .ok_or_else(no_user)?;
        tracing::info!(
            admin = %caller.credential().principal(),
            user = %id,
            sessions = change.sessions_affected,
            families = change.families_ended,
            "user deleted by admin"
        );
        Ok::<_, ApiError>(StatusCode::NO_CONTENT)
    }
    .await;
    caller.reply(&state, result).await
}

/// `GET /admin/v1/users/{id}/sessions`: the user's live server-side
/// sessions (handle, login time, last seen, expiry, IP, user agent) and
/// refresh-token families (handle = the family, login and expiry).
pub async fn sessions(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Response {
    let result = async {
        caller.require_role(Role::ADMIN)?;
        let id = parse_id(&id)?;
        state.users.by_id(id).await?.ok_or_else(no_user)?;
        let now = Timestamp::now();
        let sessions = state.sessions.list_for_user(id, now).await?;
        let families = state.tokens.families_of(id, now).await?;
        let sessions: Vec<SessionView<'_>> = sessions.iter().map(SessionView::of).collect();
        let families: Vec<Value> = families
            .iter()
            .map(|f| {
                json!({
                    "handle": f.id.as_str(),
                    "login_time": f.created_at.to_rfc3339(),
                    "last_refreshed": f.rotated_at.to_rfc3339(),
                    "expires_at": f.expires_at.to_rfc3339(),
                })
            })
            .collect();
        Ok::<_, ApiError>(Json(
            json!({"sessions": sessions, "token_families": families}),
        ))
    }
    .await;
    caller.reply(&state, result).await
}

/// `DELETE /admin/v1/users/{id}/sessions`: ends every session, refresh
/// family, access token and sealed cookie of the user ("log out
/// everywhere", by an admin).
pub async fn end_sessions(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    context: AuditContext,
    Path(id): Path<String>,
) -> Response {
    let context = context.by(&caller);
    let result = async {
        caller.require_role(Role::ADMIN)?;
        let id = parse_id(&id)?;
        state.users.by_id(id).await?.ok_or_else(no_user)?;
        let (sessions, families) = state.accounts.end_everything(&context, id).await?;
        tracing::info!(admin = %caller.credential().principal(), user = %id, sessions, families, "sessions ended by admin");
        Ok::<_, ApiError>(Json(
            json!({"sessions_ended": sessions, "families_ended": families}),
        ))
    }
    .await;
    caller.reply(&state, result).await
}

/// `DELETE /admin/v1/users/{id}/sessions/{handle}`: ends one server-side
/// session or refresh family (with its access tokens) of the user. 204, or
/// 404 if the user has none with that handle.
pub async fn end_session(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    context: AuditContext,
    Path((id, handle)): Path<(String, String)>,
) -> Response {
    let context = context.by(&caller);
    let result = async {
        caller.require_role(Role::ADMIN)?;
        let id = parse_id(&id)?;
        state.users.by_id(id).await?.ok_or_else(no_user)?;
        let handle = SessionHandle::new(handle);
        let ended = state.sessions.delete_by_handle(id, &handle).await?
            || state.tokens.end_family_of(id, handle.as_str()).await?;
        if !ended {
            return Err(ApiError::NotFound("no such session"));
        }
        state.audit.record(
            context
                .event_about(tessera_core::AuditKind::SessionEnded, id)
                .detail(format!("session {} ended by an admin", handle.as_str())),
        );
        tracing::info!(admin = %caller.credential().principal(), user = %id, session = handle.as_str(), "session ended by admin");
        Ok(StatusCode::NO_CONTENT.into_response())
    }
    .await;
    caller.reply(&state, result).await
}
