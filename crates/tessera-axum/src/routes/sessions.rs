//! `GET /sessions` and `DELETE /sessions/{handle}`: a user's own devices.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tessera_core::{AuditKind, SessionHandle};
use utoipa::ToSchema;

use crate::audit::AuditContext;
use crate::caller::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::json::Json;
use crate::openapi::{Unauthorized, Unavailable};
use crate::routes::SessionView;
use crate::state::AppState;

/// `GET /sessions`: the user's live sessions, oldest first, marking the
/// current one. Handles are public names, not cookie secrets. 503 when the
/// store does not answer.
#[utoipa::path(
    get,
    path = "/sessions",
    operation_id = "list_sessions",
    tag = "sessions",
    security(("session_cookie" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The user's live sessions, oldest first (a bearer caller: its refresh families).", body = SessionList),
        (status = 401, response = Unauthorized),
        (status = 403, description = "`api_key_not_accepted`.", body = ErrorBody),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn list_sessions(State(state): State<Arc<AppState>>, caller: Caller) -> Response {
    let result = list(&state, &caller).await;
    caller.reply(&state, result).await
}

/// `GET /sessions`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionList<'a> {
    sessions: Vec<SessionView<'a>>,
}

async fn list(state: &AppState, caller: &Caller) -> Result<Response, ApiError> {
    let sessions = caller.credential().sessions(state).await?;
    let listed: Vec<SessionView<'_>> = sessions
        .iter()
        .map(|(session, current)| SessionView::of(session).with_current(*current))
        .collect();
    Ok(Json(SessionList { sessions: listed }).into_response())
}

/// `DELETE /sessions/{handle}`: ends one of the user's sessions. 204, or 404
/// if the user has no session with that handle (someone else's included).
#[utoipa::path(
    delete,
    path = "/sessions/{handle}",
    operation_id = "delete_session",
    tag = "sessions",
    params(("handle" = String, Path, description = "A session's handle, from `GET /sessions`.")),
    security(("session_cookie" = []), ("bearer" = [])),
    responses(
        (status = 204, description = "Ended."),
        (status = 400, description = "`bad_request`: the path is not valid UTF-8.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, description = "`cross_site_request` (a cookie caller's request from another site), `api_key_not_accepted`.", body = ErrorBody),
        (status = 404, description = "`not_found`: the user has no session with that handle.", body = ErrorBody),
        (status = 503, response = Unavailable),
    ),
)]
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
