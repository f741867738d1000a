//! `GET /sessions` and `DELETE /sessions/{handle}`: a user's own devices.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde_json::{Value, json};
use tessera_core::{SessionHandle, Timestamp};

use crate::auth::CurrentSession;
use crate::error::ApiError;
use crate::routes::SessionView;
use crate::state::AppState;

/// `GET /sessions`: the user's live sessions, oldest first, marking the
/// current one. Handles are public names, not cookie secrets.
///
/// # Errors
///
/// 503 when the store does not answer.
pub async fn list_sessions(
    State(state): State<Arc<AppState>>,
    Extension(current): Extension<CurrentSession>,
) -> Result<Json<Value>, ApiError> {
    let sessions = state
        .sessions
        .list_for_user(current.user_id, Timestamp::now())
        .await?;
    let listed: Vec<SessionView<'_>> = sessions
        .iter()
        .map(|s| SessionView::of(s).with_current(s.id_hash == current.id_hash))
        .collect();
    Ok(Json(json!({"sessions": listed})))
}

/// `DELETE /sessions/{handle}`: ends one of the user's sessions. 204, or 404
/// if the user has no session with that handle (someone else's included).
///
/// # Errors
///
/// 404 unknown handle, 503 when the store does not answer.
pub async fn delete_session(
    State(state): State<Arc<AppState>>,
    Extension(current): Extension<CurrentSession>,
    Path(handle): Path<String>,
) -> Result<StatusCode, ApiError> {
    let handle = SessionHandle::new(handle);
    if state
        .sessions
        .delete_by_handle(current.user_id, &handle)
        .await?
    {
        tracing::info!(user = %current.user_id, session = handle.as_str(), "session ended by its user");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("no such session"))
    }
}
