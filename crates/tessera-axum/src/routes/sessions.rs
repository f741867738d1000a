//! `GET /sessions` and `DELETE /sessions/{handle}`: a user's own devices.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};
use tessera_core::{AuditKind, SessionHandle};

use crate::audit::AuditContext;
use crate::caller::Caller;
use crate::error::ApiError;
use crate::routes::SessionView;
use crate::state::AppState;

/// `GET /sessions`: the user's live sessions, oldest first, marking the
/// current one. Handles are public names, not cookie secrets. 503 when the
/// store does not answer.
pub async fn list_sessions(State(state): State<Arc<AppState>>, caller: Caller) -> Response {
    let result = list(&state, &caller).await;
    caller.reply(&state, result).await
}

async fn list(state: &AppState, caller: &Caller) -> Result<Json<Value>, ApiError> {
    let sessions = caller.credential().sessions(state).await?;
    let listed: Vec<SessionView<'_>> = sessions
        .iter()
        .map(|(session, current)| SessionView::of(session).with_current(*current))
        .collect();
    Ok(Json(json!({"sessions": listed})))
}

/// `DELETE /sessions/{handle}`: ends one of the user's sessions. 204, or 404
/// if the user has no session with that handle (someone else's included).
pub async fn delete_session(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    context: AuditContext,
    Path(handle): Path<String>,
) -> Response {
    let context = context.by(&caller);
    let result = delete(&state, &caller, &context, SessionHandle::new(handle)).await;
    caller.reply(&state, result).await
}

async fn delete(
    state: &AppState,
    caller: &Caller,
    context: &AuditContext,
    handle: SessionHandle,
) -> Result<StatusCode, ApiError> {
    if caller.credential().end_session(state, &handle).await? {
        tracing::info!(user = %caller.credential().principal(), session = handle.as_str(), "session ended by its user");
        let by = context.session.as_deref().unwrap_or("-");
        state.audit.record(
            context
                .event(AuditKind::SessionEnded)
                .subject(caller.user_id())
                .session(Some(handle.as_str()))
                .detail(format!("by its user, from session {by}")),
        );
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("no such session"))
    }
}
