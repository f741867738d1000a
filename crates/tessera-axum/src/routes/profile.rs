//! `GET /profile`, `GET /session` and `PATCH /session`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::caller::CurrentSession;
use crate::error::ApiError;
use crate::json::ApiJson;
use crate::routes::{SessionBody, SessionView};
use crate::state::AppState;

/// `GET /profile`: who is logged in, and since when. Served from the session
/// alone: one store read per request.
pub async fn profile(State(state): State<Arc<AppState>>, current: CurrentSession) -> Response {
    let body = Json(SessionBody::of(&current));
    current.reply(&state, body).await
}

/// `GET /session`: the current session, including its free JSON data.
pub async fn read_session(State(state): State<Arc<AppState>>, current: CurrentSession) -> Response {
    let body = Json(json!({"session": SessionView::of(&current), "data": current.data}));
    current.reply(&state, body).await
}

/// `PATCH /session`: merges a JSON object into the session data (RFC 7396:
/// `null` removes a key) and returns the result.
///
/// Answers 400 unless the body is a JSON object, 413 if the data would
/// outgrow the limit, 401 if the session ended meanwhile.
pub async fn patch_session(
    State(state): State<Arc<AppState>>,
    current: CurrentSession,
    ApiJson(patch): ApiJson<Value>,
) -> Response {
    let result = merge(&state, &current, patch).await;
    current.reply(&state, result).await
}

async fn merge(
    state: &AppState,
    current: &CurrentSession,
    patch: Value,
) -> Result<Response, ApiError> {
    let Value::Object(patch) = patch else {
        return Err(ApiError::bad_request(
            "invalid_body",
            "session data must be a JSON object",
        ));
    };
    if let Some(sealer) = &state.config.cookie_sessions
        && !current.is_bearer()
    {
        return merge_sealed(state, sealer, current, &patch);
    }
    let data: Map<String, Value> = state
        .sessions
        .merge_data(
            &current.id_hash,
            &patch,
            state.config.session_data_max_bytes,
        )
        .await?
        .ok_or(ApiError::Unauthenticated)?;
    Ok(Json(json!({"data": data})).into_response())
}

/// Data kept in a sealed cookie must stay small: browsers cap cookies at 4 KiB.
const SEALED_DATA_MAX_BYTES: usize = 1024;

/// Cookie storage: merge into the data the cookie carries and re-seal it.
fn merge_sealed(
    state: &AppState,
    sealer: &crate::caller::sealed::CookieSealer,
    current: &CurrentSession,
    patch: &Map<String, Value>,
) -> Result<Response, ApiError> {
    let mut session = tessera_core::Session::clone(current);
    tessera_core::merge::merge_patch(&mut session.data, patch);
    let limit = SEALED_DATA_MAX_BYTES.min(state.config.session_data_max_bytes);
    if tessera_core::store::data_size(&session.data) > limit {
        return Err(ApiError::SessionDataTooLarge(limit));
    }
    let max_age = session
        .absolute_expires_at
        .since(tessera_core::Timestamp::now());
    let cookie = state
        .config
        .cookie
        .issue_sealed(sealer.seal(&session), max_age);
    Ok((
        [(header::SET_COOKIE, cookie)],
        Json(json!({"data": session.data})),
    )
        .into_response())
}
