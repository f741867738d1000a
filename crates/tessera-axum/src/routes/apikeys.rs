//! `/admin/v1/apikeys`: API keys for machines, admins only. Create (the
//! secret is in that answer and nowhere else, ever), list (no secrets),
//! revoke (every node refuses the key from its next request on).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use tessera_core::{ApiKey, ApiKeyId, Role, Timestamp};
use utoipa::ToSchema;

use crate::audit::AuditContext;
use crate::caller::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::json::{ApiJson, Json};
use crate::openapi::{
    PayloadTooLarge, RequestTimeout, Unauthorized, Unavailable, UnsupportedMediaType,
};
use crate::state::AppState;

/// Longest lifetime a key can be given (10 years).
const MAX_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// A key as the API shows it: never the secret or its hash.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ApiKey)]
pub struct ApiKeyView<'a> {
    /// The key's public id (16 characters).
    id: &'a str,
    name: &'a str,
    #[schema(value_type = Vec<crate::openapi::RoleName>)]
    roles: &'a [Role],
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    expires_at: Option<String>,
    #[schema(format = DateTime)]
    last_used: Option<String>,
}

/// The answer of `POST /admin/v1/apikeys`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKey<'a> {
    api_key: ApiKeyView<'a>,
    /// The key itself, `tsk_<id>_<secret>`: shown this once, never again.
    key: String,
}

/// The answer of `GET /admin/v1/apikeys`.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList<'a> {
    api_keys: Vec<ApiKeyView<'a>>,
}

impl<'a> ApiKeyView<'a> {
    /// The public fields of a key.
    pub fn of(key: &'a ApiKey) -> Self {
        Self {
            id: key.id.as_str(),
            name: &key.name,
            roles: &key.roles,
            created_at: key.created_at.to_rfc3339(),
            expires_at: key.expires_at.map(Timestamp::to_rfc3339),
            last_used: key.last_used.map(Timestamp::to_rfc3339),
        }
    }
}

/// Body of `POST /admin/v1/apikeys`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// What the key is for: 1 to 64 characters, no control characters, no
    /// space at either end.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = "^[^\\s\\x00-\\x1f\\x7f-\\x9f](?:[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f])?$"
    )]
    name: String,
    /// The key's roles (`admin` to use the admin API).
    #[serde(default)]
    #[schema(value_type = Vec<crate::openapi::RoleName>)]
    roles: Vec<Role>,
    /// Lifetime in seconds, 1 to ten years; absent: until revoked.
    #[schema(minimum = 1, maximum = 315_360_000)]
    expires_in: Option<u64>,
}

/// `POST /admin/v1/apikeys` `{"name", "roles", "expires_in"?}`: 201 with
/// the key and, once, its secret (`"key": "tsk_..."`).
#[utoipa::path(
    post,
    path = "/admin/v1/apikeys",
    operation_id = "create_api_key",
    tag = "admin",
    request_body = CreateKey,
    security(("session_cookie" = []), ("bearer" = []), ("api_key" = [])),
    responses(
        (status = 201, description = "Created; the secret is in this answer only.", body = CreatedKey),
        (status = 400, description = "`invalid_json`, `invalid_expiry`, `invalid_api_key` (a name or roles a key cannot have).", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, description = "`forbidden` (no `admin` role), `cross_site_request` (a cookie caller's request from another site).", body = ErrorBody),
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
    body: Result<ApiJson<CreateKey>, ApiError>,
) -> Response {
    let context = context.by(&caller);
    let result = async {
        caller.require_role(Role::ADMIN)?;
        let ApiJson(body) = body?;
        // Out of range is refused, not clamped: a client asking for more
        // than the maximum learns that it did not get it.
        let expires_at = match body.expires_in {
            None => None,
            Some(secs) if (1..=MAX_LIFETIME.as_secs()).contains(&secs) => {
                Some(Timestamp::now().plus(Duration::from_secs(secs)))
            }
            Some(_) => {
                return Err(ApiError::bad_request(
                    "invalid_expiry",
                    format!(
                        "expires_in is 1 to {} seconds (ten years)",
                        MAX_LIFETIME.as_secs()
                    ),
                ));
            }
        };
        let created = state
            .api_keys
            .create(&context, &body.name, body.roles, expires_at)
            .await?;
        tracing::info!(admin = %caller.credential().principal(), key = %created.key.id, "API key created");
        Ok::<_, ApiError>(
            (
                StatusCode::CREATED,
                Json(CreatedKey {
                    api_key: ApiKeyView::of(&created.key),
                    key: created.token.expose(),
                }),
            )
                .into_response(),
        )
    }
    .await;
    caller.reply(&state, result).await
}

/// `GET /admin/v1/apikeys`: every key, oldest first, without secrets.
#[utoipa::path(
    get,
    path = "/admin/v1/apikeys",
    operation_id = "list_api_keys",
    tag = "admin",
    security(("session_cookie" = []), ("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "Every key, oldest first, without secrets.", body = KeyList),
        (status = 401, response = Unauthorized),
        (status = 403, description = "`forbidden`: no `admin` role.", body = ErrorBody),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn list(State(state): State<Arc<AppState>>, caller: Caller) -> Response {
    let result = async {
        caller.require_role(Role::ADMIN)?;
        let keys = state.api_keys.list().await?;
        let views: Vec<ApiKeyView<'_>> = keys.iter().map(ApiKeyView::of).collect();
        Ok::<_, ApiError>(Json(KeyList { api_keys: views }).into_response())
    }
    .await;
    caller.reply(&state, result).await
}

/// `DELETE /admin/v1/apikeys/{id}`: revokes the key. 204; 404 if there is
/// no such key; 400 for a malformed id.
#[utoipa::path(
    delete,
    path = "/admin/v1/apikeys/{key}",
    operation_id = "revoke_api_key",
    tag = "admin",
    params(("key" = String, Path, pattern = "^[A-Za-z0-9_-]{16}$", description = "The key's public id.")),
    security(("session_cookie" = []), ("bearer" = []), ("api_key" = [])),
    responses(
        (status = 204, description = "Revoked everywhere."),
        (status = 400, description = "`invalid_id`: not a key id.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, description = "`forbidden` (no `admin` role), `cross_site_request` (a cookie caller's request from another site).", body = ErrorBody),
        (status = 404, description = "`not_found`: no such key.", body = ErrorBody),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn revoke(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    context: AuditContext,
    Path(id): Path<String>,
) -> Response {
    let context = context.by(&caller);
    let result = async {
        caller.require_role(Role::ADMIN)?;
        let id = ApiKeyId::parse(&id)
            .map_err(|_| ApiError::bad_request("invalid_id", "API key ids are 16 characters"))?;
        state
            .api_keys
            .revoke(&context, &id)
            .await?
            .ok_or(ApiError::NotFound("no such API key"))?;
        tracing::info!(admin = %caller.credential().principal(), key = %id, "API key revoked");
        Ok::<_, ApiError>(StatusCode::NO_CONTENT)
    }
    .await;
    caller.reply(&state, result).await
}
