//! The router: which path goes to which handler, and the layers around them.

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::error::{ApiError, error_body};
use crate::routes::{admin, forward_auth, health, login, profile, sessions, token};
use crate::state::AppState;

/// The whole HTTP API over `state`.
///
/// Every response carries `Cache-Control: no-store` (auth answers must not be
/// cached by browsers or proxies) and every error a JSON body.
pub fn router(state: Arc<AppState>) -> Router {
    let protected = Router::new()
        .route("/profile", get(profile::profile))
        .route("/auth/verify", get(forward_auth::verify))
        .route(
            "/session",
            get(profile::read_session).patch(profile::patch_session),
        )
        .route("/sessions", get(sessions::list_sessions))
        .route("/sessions/{handle}", delete(sessions::delete_session))
        .route("/logout", post(login::logout))
        .route("/admin/users/{email}", patch(admin::patch_user));

    Router::new()
        .route("/health", get(health::health))
        .route("/login", post(login::login))
        .route("/token", post(token::token))
        .route("/token/refresh", post(token::refresh))
        .route("/token/revoke", post(token::revoke))
        .route("/.well-known/jwks.json", get(token::jwks))
        .merge(protected)
        .fallback(|| async { ApiError::NotFound("no such route") })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(middleware::map_response(ensure_json_errors))
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| {
                ApiError::Internal("a handler panicked".into()).into_response()
            },
        ))
        .with_state(state)
}

/// Rewrites error responses produced outside our handlers (axum's own
/// rejections, e.g. a malformed path) into the JSON error shape.
async fn ensure_json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let code = match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        s if s.is_server_error() => "internal",
        _ => "request_error",
    };
    let message = status.canonical_reason().unwrap_or("error");
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(
        parts,
        axum::body::Body::from(error_body(code, message).to_string()),
    )
}
