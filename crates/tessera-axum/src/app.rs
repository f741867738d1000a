//! The router: which path goes to which handler, and the layers around them.

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, get, on, post};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::cors;
use crate::error::{ApiError, error_body};
use crate::routes::{
    account, admin, admin_links, admin_v1, apikeys, audit, forward_auth, health, login, profile,
    recovery, sessions, signup, token,
};
use crate::state::AppState;

/// The whole HTTP API over `state`.
///
/// Every response carries `Cache-Control: no-store` (auth answers must not be
/// cached by browsers or proxies) and every error a JSON body; with
/// `allowed_origins`, CORS answers for those origins ([`cors`]).
pub fn router(state: Arc<AppState>) -> Router {
    let protected = protected_routes()
        .into_iter()
        .fold(Router::new(), |router, route| {
            router.route(route.path, route.handler)
        });

    let mut router = Router::new()
        .route("/health", get(health::health))
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .route("/login", post(login::login))
        .route("/token", post(token::token))
        .route("/token/refresh", post(token::refresh))
        .route("/token/revoke", post(token::revoke))
        .route("/.well-known/jwks.json", get(token::jwks))
        .route("/signup", post(signup::signup))
        .route("/email/verify", post(signup::verify_email))
        .route("/email/verify/resend", post(signup::resend_verification))
        .route("/email/confirm", post(account::confirm_email_change))
        .route("/password/forgot", post(recovery::forgot))
        .route("/password/reset", post(recovery::reset))
        .merge(protected)
        .fallback(|| async { ApiError::NotFound("no such route") })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed });
    router = router.layer(middleware::map_response(ensure_json_errors));
    // Only with allowed origins: the default configuration pays nothing.
    if state.origins.has_allowed_origins() {
        router = router.layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            cors::cors,
        ));
    }
    router
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

/// A route that answers only an authenticated [`Caller`](crate::Caller).
/// Its handler finishes with [`Caller::reply`](crate::Caller::reply), which
/// carries out what the credential needs on the way out (a fresh session id
/// after a privilege change, a re-sealed cookie).
pub struct ProtectedRoute {
    /// The method it answers.
    pub method: Method,
    /// The path template, as the router matches it (`/sessions/{handle}`).
    pub path: &'static str,
    handler: MethodRouter<Arc<AppState>>,
}

impl ProtectedRoute {
    fn new<H, T>(method: Method, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, Arc<AppState>>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone()).expect("a standard method");
        Self {
            method,
            path,
            handler: on(filter, handler),
        }
    }
}

impl std::fmt::Debug for ProtectedRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

/// Every protected route, declared here and nowhere else: [`router`] is
/// built from this list, and the router tests walk it to check each route
/// with a real request (a route added here without a test case fails them).
pub fn protected_routes() -> Vec<ProtectedRoute> {
    vec![
        ProtectedRoute::new(Method::GET, "/profile", profile::profile),
        ProtectedRoute::new(Method::GET, "/auth/verify", forward_auth::verify),
        ProtectedRoute::new(Method::GET, "/session", profile::read_session),
        ProtectedRoute::new(Method::PATCH, "/session", profile::patch_session),
        ProtectedRoute::new(Method::GET, "/sessions", sessions::list_sessions),
        ProtectedRoute::new(
            Method::DELETE,
            "/sessions/{handle}",
            sessions::delete_session,
        ),
        ProtectedRoute::new(Method::POST, "/logout", login::logout),
        ProtectedRoute::new(Method::PATCH, "/admin/users/{email}", admin::patch_user),
        ProtectedRoute::new(Method::POST, "/password", account::change_password),
        ProtectedRoute::new(Method::POST, "/email", account::request_email_change),
        ProtectedRoute::new(Method::DELETE, "/account", account::delete_account),
        ProtectedRoute::new(Method::GET, "/admin/v1/audit", audit::list_audit),
        ProtectedRoute::new(Method::GET, "/admin/v1/health", health::details),
        ProtectedRoute::new(Method::POST, "/admin/v1/users", admin_v1::create),
        ProtectedRoute::new(Method::GET, "/admin/v1/users", admin_v1::list),
        ProtectedRoute::new(Method::GET, "/admin/v1/users/{id}", admin_v1::get),
        ProtectedRoute::new(Method::PATCH, "/admin/v1/users/{id}", admin_v1::patch),
        ProtectedRoute::new(Method::DELETE, "/admin/v1/users/{id}", admin_v1::delete),
        ProtectedRoute::new(
            Method::GET,
            "/admin/v1/users/{id}/sessions",
            admin_v1::sessions,
        ),
        ProtectedRoute::new(
            Method::DELETE,
            "/admin/v1/users/{id}/sessions",
            admin_v1::end_sessions,
        ),
        ProtectedRoute::new(
            Method::DELETE,
            "/admin/v1/users/{id}/sessions/{session}",
            admin_v1::end_session,
        ),
        ProtectedRoute::new(
            Method::POST,
            "/admin/v1/users/{id}/password-reset",
            admin_links::password_reset,
        ),
        ProtectedRoute::new(Method::POST, "/admin/v1/invites", admin_links::invite),
        ProtectedRoute::new(Method::POST, "/admin/v1/apikeys", apikeys::create),
        ProtectedRoute::new(Method::GET, "/admin/v1/apikeys", apikeys::list),
        ProtectedRoute::new(Method::DELETE, "/admin/v1/apikeys/{key}", apikeys::revoke),
    ]
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
