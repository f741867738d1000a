//! `GET /profile`, `GET /session` and `PATCH /session`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::caller::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::json::{ApiJson, Json};
use crate::openapi::{RequestTimeout, Unauthorized, Unavailable, UnsupportedMediaType};
use crate::routes::{SessionBody, SessionView};
use crate::state::AppState;

/// `GET /session`: the session and its data.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionWithData<'a> {
    session: SessionView<'a>,
    /// The session's free JSON data (an access token has none: `{}`).
    #[schema(value_type = Object)]
    data: &'a Map<String, Value>,
}

/// `PATCH /session`: the data after the merge.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionData {
    /// The session's free JSON data.
    #[schema(value_type = Object)]
    data: Map<String, Value>,
}

/// `GET /profile`: who is logged in, and since when. Served from the
/// credential alone: at most one store read per request.
#[utoipa::path(
    get,
    path = "/profile",
    operation_id = "profile",
    tag = "sessions",
    security(("session_cookie" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The user and the session (or token) in use.", body = SessionBody),
        (status = 401, response = Unauthorized),
        (status = 403, description = "`api_key_not_accepted`: an API key has no profile.", body = ErrorBody),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn profile(State(state): State<Arc<AppState>>, caller: Caller) -> Response {
    let body = SessionBody::of_caller(&caller);
    caller.reply(&state, body).await
}

/// `GET /session`: the current session, including its free JSON data (an
/// access token has none).
#[utoipa::path(
    get,
    path = "/session",
    operation_id = "read_session",
    tag = "sessions",
    security(("session_cookie" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The session and its data.", body = SessionWithData),
        (status = 401, response = Unauthorized),
        (status = 403, description = "`api_key_not_accepted`.", body = ErrorBody),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn read_session(State(state): State<Arc<AppState>>, caller: Caller) -> Response {
    let empty = Map::new();
    let data = caller
        .credential()
        .session()
        .map_or(&empty, |session| &session.data);
    let body = SessionView::of_caller(&caller)
        .map(|session| Json(SessionWithData { session, data }))
        .ok_or(ApiError::ApiKeyNotAccepted("session"));
    caller.reply(&state, body).await
}

/// `PATCH /session`: merges a JSON object into the session data (RFC 7396:
/// `null` removes a key) and returns the result.
///
/// Answers 400 unless the body is a JSON object, 413 if the data would
/// outgrow the limit, 401 if the session ended meanwhile.
#[utoipa::path(
    patch,
    path = "/session",
    operation_id = "patch_session",
    tag = "sessions",
    request_body(content = Object, description = "A JSON merge patch (RFC 7396) of the session data: `null` removes a key."),
    security(("session_cookie" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The data after the merge.", body = SessionData),
        (status = 400, description = "`invalid_json`, `invalid_body` (not a JSON object).", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, description = "`cross_site_request` (a cookie caller's request from another site), `api_key_not_accepted`.", body = ErrorBody),
        (status = 408, response = RequestTimeout),
        (status = 413, description = "`payload_too_large` (the body), `session_data_too_large` (the merged data).", body = ErrorBody),
        (status = 415, response = UnsupportedMediaType),
        (status = 503, response = Unavailable),
    ),
)]
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
    let body = Json(SessionData { data });
    Ok(match cookie {
        Some(cookie) => ([(header::SET_COOKIE, cookie)], body).into_response(),
        None => body.into_response(),
    })
}
