//! `/admin/v1/users`: the users API, for an admin's session or token or an
//! API key with the `admin` role. Every change goes through
//! [`Accounts`](crate::accounts::Accounts), with the effects it has from the
//! CLI. Ids are UUIDs: a malformed one is 400, an unknown one 404.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tessera_core::{
    Email, NewUser, Password, Role, SessionHandle, Timestamp, User, UserCursor, UserId, UserQuery,
    user::MAX_PAGE,
};
use utoipa::ToSchema;

use crate::audit::AuditContext;
use crate::caller::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::json::{ApiJson, Json, present};
use crate::openapi::{
    PayloadTooLarge, RequestTimeout, Unauthorized, Unavailable, UnsupportedMediaType,
};
use crate::routes::SessionView;
use crate::routes::admin_links::InviteBody;
use crate::state::AppState;

/// A user as the admin API shows it (never the password hash).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = AdminUser)]
pub struct AdminUserView<'a> {
    #[schema(value_type = uuid::Uuid)]
    id: UserId,
    #[schema(value_type = String)]
    email: &'a Email,
    #[schema(value_type = Vec<crate::openapi::RoleName>)]
    roles: &'a [Role],
    disabled: bool,
    email_verified: bool,
    #[schema(format = DateTime)]
    created_at: String,
}

/// `{"user": ...}` of the admin API.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminUserBody<'a> {
    user: AdminUserView<'a>,
}

/// One page of `GET /admin/v1/users`.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserPageView<'a> {
    users: Vec<AdminUserView<'a>>,
    /// The `cursor` of the next page; `null` on the last.
    next_cursor: Option<String>,
}

/// The answer of `PATCH /admin/v1/users/{id}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminUserChanged<'a> {
    user: AdminUserView<'a>,
    /// Sessions and token families the change reached.
    sessions_affected: u64,
}

/// A refresh-token family as the admin API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct FamilyView<'a> {
    /// The family's handle (for `DELETE .../sessions/{session}`).
    handle: &'a str,
    #[schema(format = DateTime)]
    login_time: String,
    #[schema(format = DateTime)]
    last_refreshed: String,
    #[schema(format = DateTime)]
    expires_at: String,
}

/// The answer of `GET /admin/v1/users/{id}/sessions`.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserSessions<'a> {
    sessions: Vec<SessionView<'a>>,
    token_families: Vec<FamilyView<'a>>,
}

/// The answer of `DELETE /admin/v1/users/{id}/sessions`.
#[derive(Debug, Serialize, ToSchema)]
pub struct EverythingEnded {
    sessions_ended: u64,
    families_ended: u64,
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
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    #[schema(value_type = String, format = "email")]
    email: Email,
    /// The password (checked against the password policy); absent with `invite`.
    #[serde(default)]
    #[schema(format = Password)]
    password: Option<String>,
    #[serde(default)]
    #[schema(value_type = Vec<crate::openapi::RoleName>)]
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
#[utoipa::path(
    post,
    path = "/admin/v1/users",
    operation_id = "create_user",
    tag = "admin",
    request_body = CreateUser,
    security(("session_cookie" = []), ("bearer" = []), ("api_key" = [])),
    responses(
        (status = 201, description = "Created: the user, or (`invite`) the invite.", content((AdminUserBody), (InviteBody))),
        (status = 400, description = "`invalid_json`, `password_or_invite`, `weak_password`.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, description = "`forbidden` (no `admin` role), `cross_site_request` (a cookie caller's request from another site).", body = ErrorBody),
        (status = 409, description = "`conflict`: the address is taken.", body = ErrorBody),
        (status = 408, response = RequestTimeout),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 503, response = Unavailable),
    ),
)]
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
                Json(AdminUserBody {
                    user: AdminUserView::of(&user),
                }),
            )
                .into_response(),
        )
    }
    .await;
    caller.reply(&state, result).await
}

/// Query of `GET /admin/v1/users`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Addresses starting with this.
    email_prefix: Option<String>,
    /// Users holding this role.
    role: Option<String>,
    /// Disabled (or enabled) users only.
    disabled: Option<bool>,
    /// Users whose address is (or is not) verified.
    verified: Option<bool>,
    /// Page size, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
    /// A previous page's `next_cursor`.
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
#[utoipa::path(
    get,
    path = "/admin/v1/users",
    operation_id = "list_users",
    tag = "admin",
    params(ListParams),
    security(("session_cookie" = []), ("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "One page of users, ordered by address.", body = UserPageView),
        (status = 400, description = "`invalid_query`, `invalid_cursor`.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, description = "`forbidden`: no `admin` role.", body = ErrorBody),
        (status = 503, response = Unavailable),
    ),
)]
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
        Ok::<_, ApiError>(
            Json(UserPageView {
                users,
                next_cursor: page.next.map(|c| c.encode()),
            })
            .into_response(),
        )
    }
    .await;
    caller.reply(&state, result).await
}

/// `GET /admin/v1/users/{id}`.
#[utoipa::path(
    get,
    path = "/admin/v1/users/{id}",
    operation_id = "get_user",
    tag = "admin",
    params(("id" = uuid::Uuid, Path, description = "The user's id.")),
    security(("session_cookie" = []), ("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The user.", body = AdminUserBody),
        (status = 400, description = "`invalid_id`: not a UUID.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, description = "`forbidden`: no `admin` role.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such user.", body = ErrorBody),
        (status = 503, response = Unavailable),
    ),
)]
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
        Ok::<_, ApiError>(
            Json(AdminUserBody {
                user: AdminUserView::of(&user),
            })
            .into_response(),
        )
    }
    .await;
    caller.reply(&state, result).await
}

/// Body of `PATCH /admin/v1/users/{id}`: at least one field.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    /// The user's roles from now on.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Vec<crate::openapi::RoleName>, required = false)]
    roles: Option<Vec<Role>>,
    /// Disable (ends every credential) or enable the account.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = bool, required = false)]
    disabled: Option<bool>,
    /// A new address (ends every credential).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = String, format = "email", required = false)]
    email: Option<Email>,
    /// Whether the address counts as verified.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = bool, required = false)]
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
#[utoipa::path(
    patch,
    path = "/admin/v1/users/{id}",
    operation_id = "patch_user",
    tag = "admin",
    params(("id" = uuid::Uuid, Path, description = "The user's id.")),
    request_body = UserPatch,
    security(("session_cookie" = []), ("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "Changed.", body = AdminUserChanged),
        (status = 400, description = "`invalid_id`, `invalid_json`, `empty_patch`.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, description = "`forbidden` (no `admin` role), `cross_site_request` (a cookie caller's request from another site).", body = ErrorBody),
        (status = 404, description = "`not_found`: no such user.", body = ErrorBody),
        (status = 409, description = "`conflict`: the new address is taken.", body = ErrorBody),
        (status = 408, response = RequestTimeout),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 503, response = Unavailable),
    ),
)]
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
        Ok(Json(AdminUserChanged {
            user: AdminUserView::of(&user),
            sessions_affected: reached,
        }).into_response())
    }
    .await;
    caller.reply(&state, result).await
}

/// `DELETE /admin/v1/users/{id}`: deletes the user and ends every
/// session, refresh family, access token and sealed cookie of theirs
/// ([`Accounts::delete_user`](crate::accounts::Accounts::delete_user)). 204.
#[utoipa::path(
    delete,
    path = "/admin/v1/users/{id}",
    operation_id = "delete_user",
    tag = "admin",
    params(("id" = uuid::Uuid, Path, description = "The user's id.")),
    security(("session_cookie" = []), ("bearer" = []), ("api_key" = [])),
    responses(
        (status = 204, description = "Deleted."),
        (status = 400, description = "`invalid_id`: not a UUID.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, description = "`forbidden` (no `admin` role), `cross_site_request` (a cookie caller's request from another site).", body = ErrorBody),
        (status = 404, description = "`not_found`: no such user.", body = ErrorBody),
        (status = 503, response = Unavailable),
    ),
)]
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
#[utoipa::path(
    get,
    path = "/admin/v1/users/{id}/sessions",
    operation_id = "list_user_sessions",
    tag = "admin",
    params(("id" = uuid::Uuid, Path, description = "The user's id.")),
    security(("session_cookie" = []), ("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The user's sessions and refresh-token families.", body = UserSessions),
        (status = 400, description = "`invalid_id`: not a UUID.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, description = "`forbidden`: no `admin` role.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such user.", body = ErrorBody),
        (status = 503, response = Unavailable),
    ),
)]
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
        let token_families: Vec<FamilyView<'_>> = families
            .iter()
            .map(|f| FamilyView {
                handle: f.id.as_str(),
                login_time: f.created_at.to_rfc3339(),
                last_refreshed: f.rotated_at.to_rfc3339(),
                expires_at: f.expires_at.to_rfc3339(),
            })
            .collect();
        Ok::<_, ApiError>(
            Json(UserSessions {
                sessions,
                token_families,
            })
            .into_response(),
        )
    }
    .await;
    caller.reply(&state, result).await
}

/// `DELETE /admin/v1/users/{id}/sessions`: ends every session, refresh
/// family, access token and sealed cookie of the user ("log out
/// everywhere", by an admin).
#[utoipa::path(
    delete,
    path = "/admin/v1/users/{id}/sessions",
    operation_id = "end_user_sessions",
    tag = "admin",
    params(("id" = uuid::Uuid, Path, description = "The user's id.")),
    security(("session_cookie" = []), ("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "Everything of the user ended.", body = EverythingEnded),
        (status = 400, description = "`invalid_id`: not a UUID.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, description = "`forbidden` (no `admin` role), `cross_site_request` (a cookie caller's request from another site).", body = ErrorBody),
        (status = 404, description = "`not_found`: no such user.", body = ErrorBody),
        (status = 503, response = Unavailable),
    ),
)]
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
        Ok::<_, ApiError>(Json(EverythingEnded {
            sessions_ended: sessions,
            families_ended: families,
        }))
    }
    .await;
    caller.reply(&state, result).await
}

/// `DELETE /admin/v1/users/{id}/sessions/{handle}`: ends one server-side
/// session or refresh family (with its access tokens) of the user. 204, or
/// 404 if the user has none with that handle.
#[utoipa::path(
    delete,
    path = "/admin/v1/users/{id}/sessions/{session}",
    operation_id = "end_user_session",
    tag = "admin",
    params(
        ("id" = uuid::Uuid, Path, description = "The user's id."),
        ("session" = String, Path, description = "A session's or token family's handle."),
    ),
    security(("session_cookie" = []), ("bearer" = []), ("api_key" = [])),
    responses(
        (status = 204, description = "Ended."),
        (status = 400, description = "`invalid_id`: not a UUID; `bad_request`: a path that is not UTF-8.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, description = "`forbidden` (no `admin` role), `cross_site_request` (a cookie caller's request from another site).", body = ErrorBody),
        (status = 404, description = "`not_found`: no such user, or no session or family with that handle.", body = ErrorBody),
        (status = 503, response = Unavailable),
    ),
)]
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
