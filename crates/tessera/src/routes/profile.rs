//! `GET /profile`, `GET /session` and `PATCH /session`.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{Map, Value, json};

use crate::auth::CurrentSession;
use crate::error::ApiError;
use crate::json::ApiJson;
use crate::routes::{SessionBody, SessionView};
use crate::state::AppState;

/// `GET /profile`: who is logged in, and since when. Served from the session
/// alone: one store read per request.
pub async fn profile(Extension(current): Extension<CurrentSession>) -> Response {
    Json(SessionBody::of(&current)).into_response()
}

/// `GET /session`: the current session, including its free JSON data.
pub async fn read_session(Extension(current): Extension<CurrentSession>) -> Response {
    Json(json!({"session": SessionView::of(&current), "data": current.data})).into_response()
}

/// `PATCH /session`: merges a JSON object into the session data (RFC 7396:
/// `null` removes a key) and returns the result.
///
/// # Errors
///
/// 400 unless the body is a JSON object or if the data would outgrow the
/// limit; 401 if the session ended meanwhile.
pub async fn patch_session(
    State(state): State<Arc<AppState>>,
    Extension(current): Extension<CurrentSession>,
    ApiJson(patch): ApiJson<Value>,
) -> Result<Json<Value>, ApiError> {
    let Value::Object(patch) = patch else {
        return Err(ApiError::bad_request(
            "invalid_body",
            "session data must be a JSON object",
        ));
    };
    let data: Map<String, Value> = state
        .sessions
        .merge_data(
            &current.id_hash,
            &patch,
            state.config.session_data_max_bytes,
        )
        .await?
        .ok_or(ApiError::Unauthenticated)?;
    Ok(Json(json!({"data": data})))
}
