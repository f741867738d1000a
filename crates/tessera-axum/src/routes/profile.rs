//! `GET /profile`, `GET /session` and `PATCH /session`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::caller::Caller;
use crate::error::ApiError;
use crate::json::ApiJson;
use crate::routes::{SessionBody, SessionView};
use crate::state::AppState;

/// `GET /profile`: who is logged in, and since when. Served from the
/// credential alone: at most one store read per request.
pub async fn profile(State(state): State<Arc<AppState>>, caller: Caller) -> Response {
    let body = SessionBody::of_caller(&caller).map(Json);
    caller.reply(&state, body).await
}

/// `GET /session`: the current session, including its free JSON data (an
/// access token has none).
pub async fn read_session(State(state): State<Arc<AppState>>, caller: Caller) -> Response {
    let empty = Map::new();
    let data = caller
        .credential()
        .session()
        .map_or(&empty, |session| &session.data);
    let body = SessionView::of_caller(&caller)
        .map(|session| Json(json!({"session": session, "data": data})))
        .ok_or(ApiError::ApiKeyNotAccepted("session"));
    caller.reply(&state, body).await
}

/// `PATCH /session`: merges a JSON object into the session data (RFC 7396:
/// `null` removes a key) and returns the result.
///
/// Answers 400 unless the body is a JSON object, 413 if the data would
/// outgrow the limit, 401 if the session ended meanwhile.
pub async fn patch_session(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(patch): ApiJson<Value>,
) -> Response {
    let result = merge(&state, &caller, patch).await;
    caller.reply(&state, result).await
}

async fn merge(state: &AppState, caller: &Caller, patch: Value) -> Result<Response, ApiError> {
    let Value::Object(patch) = patch else {
        return Err(ApiError::bad_request(
            "invalid_body",
            "session data must be a JSON object",
        ));
    };
    let (data, cookie) = caller.credential().merge_data(state, &patch).await?;
    let body = Json(json!({"data": data}));
    Ok(match cookie {
        Some(cookie) => ([(header::SET_COOKIE, cookie)], body).into_response(),
        None => body.into_response(),
    })
}
