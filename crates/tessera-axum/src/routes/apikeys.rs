//! `/admin/v1/apikeys`: API keys for machines, admins only. Create (the
//! secret is in that answer and nowhere else, ever), list (no secrets),
//! revoke (every node refuses the key from its next request on).

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tessera_core::{ApiKey, ApiKeyId, Role, Timestamp};

use crate::audit::AuditContext;
use crate::caller::Caller;
use crate::error::ApiError;
use crate::json::ApiJson;
use crate::state::AppState;

/// Longest lifetime a key can be given (10 years).
const MAX_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// A key as the API shows it: never the secret or its hash.
#[derive(Debug, Serialize)]
pub struct ApiKeyView<'a> {
    id: &'a str,
    name: &'a str,
    roles: &'a [Role],
    created_at: String,
    expires_at: Option<String>,
    last_used: Option<String>,
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
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    name: String,
    #[serde(default)]
    roles: Vec<Role>,
    /// Lifetime in seconds; absent: until revoked.
    expires_in: Option<u64>,
}

/// `POST /admin/v1/apikeys` `{"name", "roles", "expires_in"?}`: 201 with
/// the key and, once, its secret (`"key": "tsk_..."`).
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
        let expires_at = match body.expires_in {
            None => None,
            Some(0) => {
                return Err(ApiError::bad_request(
                    "invalid_expiry",
                    "expires_in is a positive number of seconds",
                ));
            }
            Some(secs) => Some(
                Timestamp::now().plus(Duration::from_secs(secs).min(MAX_LIFETIME)),
            ),
        };
        let created = state
            .api_keys
            .create(&context, &body.name, body.roles, expires_at)
            .await?;
        tracing::info!(admin = %caller.credential().principal(), key = %created.key.id, "API key created");
        Ok::<_, ApiError>((
            StatusCode::CREATED,
            Json(json!({
                "api_key": ApiKeyView::of(&created.key),
                "key": created.token.expose(),
            })),
        ))
    }
    .await;
    caller.reply(&state, result).await
}

/// `GET /admin/v1/apikeys`: every key, oldest first, without secrets.
pub async fn list(State(state): State<Arc<AppState>>, caller: Caller) -> Response {
    let result = async {
        caller.require_role(Role::ADMIN)?;
        let keys = state.api_keys.list().await?;
        let views: Vec<ApiKeyView<'_>> = keys.iter().map(ApiKeyView::of).collect();
        Ok::<_, ApiError>(Json(json!({"api_keys": views})))
    }
    .await;
    caller.reply(&state, result).await
}

/// `DELETE /admin/v1/apikeys/{id}`: revokes the key. 204; 404 if there is
/// no such key; 400 for a malformed id.
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
