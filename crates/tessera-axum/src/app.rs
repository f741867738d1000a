//! The router: which path goes to which handler, and the layers around them.

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::http::Method;
use axum::middleware;
use axum::routing::{MethodFilter, MethodRouter, get, on, post};

use crate::cors;
use crate::error::ApiError;
use crate::observe::ObserveLayer;
use crate::routes::{
    account, admin, admin_links, admin_v1, apikeys, audit, forward_auth, health, login, profile,
    recovery, sessions, signup, token,
};
use crate::state::AppState;

/// The whole HTTP API over `state`.
///
/// Every response carries `Cache-Control: no-store` (auth answers must not be
/// cached by browsers or proxies), `X-Request-Id` and every error a JSON
/// body, and is counted and logged ([`observe`](crate::observe)); with
/// `allowed_origins`, CORS answers for those origins ([`cors`]).
pub fn router(state: Arc<AppState>) -> Router {
    let protected = protected_routes()
        .into_iter()
        .fold(Router::new(), |router, route| {
            router.route(route.path, route.handler)
        });

    let mut router = Router::new()
        .route("/health", get(health::health))
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
    // Only with allowed origins: the default configuration pays nothing.
    if state.origins.has_allowed_origins() {
        router = router.layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            cors::cors,
        ));
    }
    router
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        // Outermost: request id, security headers, JSON errors, panics,
        // metrics and the access log, in one pass (see `observe`).
        .layer(ObserveLayer::new(Arc::clone(&state)))
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
