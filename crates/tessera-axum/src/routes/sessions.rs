//! `GET /sessions` and `DELETE /sessions/{handle}`: a user's own devices.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};
use tessera_core::{SessionHandle, Timestamp};

use crate::caller::CurrentSession;
use crate::error::ApiError;
use crate::routes::SessionView;
use crate::state::AppState;

/// `GET /sessions`: the user's live sessions, oldest first, marking the
/// current one. Handles are public names, not cookie secrets. 503 when the
/// store does not answer.
pub async fn list_sessions(
    State(state): State<Arc<AppState>>,
    current: CurrentSession,
) -> Response {
    let result = list(&state, &current).await;
    current.reply(&state, result).await
}

async fn list(state: &AppState, current: &CurrentSession) -> Result<Json<Value>, ApiError> {
    if state.config.cookie_sessions.is_some() && !current.is_bearer() {
        // Sealed cookie sessions have no server-side list: show this one.
        let this = SessionView::of(current).with_current(true);
        return Ok(Json(json!({"sessions": [this]})));
    }
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
pub async fn delete_session(
    State(state): State<Arc<AppState>>,
    current: CurrentSession,
    Path(handle): Path<String>,
) -> Response {
    let result = delete(&state, &current, SessionHandle::new(handle)).await;
    current.reply(&state, result).await
}

async fn delete(
    state: &AppState,
    current: &CurrentSession,
    handle: SessionHandle,
) -> Result<StatusCode, ApiError> {
    if state.config.cookie_sessions.is_some() && !current.is_bearer() {
        if handle != current.handle {
            return Err(ApiError::NotFound("no such session"));
        }
        state.tokens.revoke_cookie_session(current).await?;
        return Ok(StatusCode::NO_CONTENT);
    }
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
