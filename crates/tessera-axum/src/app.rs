//! The router: which path goes to which handler, and the layers around them.

use std::sync::Arc;

use axum::Router;
use axum::handler::Handler;
use axum::http::Method;
use axum::middleware;
use axum::routing::{MethodFilter, MethodRouter, on};

use crate::cors;
use crate::error::ApiError;
use crate::observe::ObserveLayer;
use crate::openapi;
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
    let mut router = public_routes()
        .into_iter()
        .chain(protected_routes())
        .fold(Router::new(), |router, route| {
            router.route(route.path, route.handler)
        })
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
        // Outermost: request id, security headers, body limit, JSON errors,
        // panics, metrics and the access log, in one pass (see `observe`).
        .layer(ObserveLayer::new(Arc::clone(&state)))
        .with_state(state)
}

/// A route of the router: method, path template and handler. Those of
/// [`protected_routes`] answer only an authenticated
/// [`Caller`](crate::Caller) and finish with
/// [`Caller::reply`](crate::Caller::reply), which carries out what the
/// credential needs on the way out (a fresh session id after a privilege
/// change, a re-sealed cookie).
///
/// Every route is also in the API document (`GET /openapi.json`): its
/// handler carries `#[utoipa::path]` and [`crate::openapi::ApiDoc`] lists
/// it (`tests/router/openapi.rs` compares the two lists).
pub struct Route {
    /// The method it answers.
    pub method: Method,
    /// The path template, as the router matches it (`/sessions/{handle}`).
    pub path: &'static str,
    handler: MethodRouter<Arc<AppState>>,
}

impl Route {
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

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

/// The method label and template of every declared route: the rows of the
/// request metrics.
pub(crate) fn declared_routes() -> Vec<(&'static str, &'static str)> {
    public_routes()
        .into_iter()
        .chain(protected_routes())
        .map(|route| (crate::metrics::method_label(&route.method), route.path))
        .collect()
}

/// Every route anyone may call, declared here and nowhere else: [`router`]
/// is built from this list and [`protected_routes`].
pub fn public_routes() -> Vec<Route> {
    vec![
        Route::new(Method::GET, "/openapi.json", openapi::openapi_json),
        Route::new(Method::GET, "/health", health::health),
        Route::new(Method::GET, "/health/live", health::live),
        Route::new(Method::GET, "/health/ready", health::ready),
        Route::new(Method::POST, "/login", login::login),
        Route::new(Method::POST, "/token", token::token),
        Route::new(Method::POST, "/token/refresh", token::refresh),
        Route::new(Method::POST, "/token/revoke", token::revoke),
        Route::new(Method::GET, "/.well-known/jwks.json", token::jwks),
        Route::new(Method::POST, "/signup", signup::signup),
        Route::new(Method::POST, "/email/verify", signup::verify_email),
        Route::new(
            Method::POST,
            "/email/verify/resend",
            signup::resend_verification,
        ),
        Route::new(
            Method::POST,
            "/email/confirm",
            account::confirm_email_change,
        ),
        Route::new(Method::POST, "/password/forgot", recovery::forgot),
        Route::new(Method::POST, "/password/reset", recovery::reset),
    ]
}

/// Every protected route, declared here and nowhere else: [`router`] is
/// built from this list, and the router tests walk it to check each route
/// with a real request (a route added here without a test case fails them).
pub fn protected_routes() -> Vec<Route> {
    vec![
        Route::new(Method::GET, "/profile", profile::profile),
        Route::new(Method::GET, "/auth/verify", forward_auth::verify),
        Route::new(Method::GET, "/session", profile::read_session),
        Route::new(Method::PATCH, "/session", profile::patch_session),
        Route::new(Method::GET, "/sessions", sessions::list_sessions),
        Route::new(
            Method::DELETE,
            "/sessions/{handle}",
            sessions::delete_session,
        ),
        Route::new(Method::POST, "/logout", login::logout),
        Route::new(Method::PATCH, "/admin/users/{email}", admin::patch_user),
        Route::new(Method::POST, "/password", account::change_password),
        Route::new(Method::POST, "/email", account::request_email_change),
        Route::new(Method::DELETE, "/account", account::delete_account),
        Route::new(Method::GET, "/admin/v1/audit", audit::list_audit),
        Route::new(Method::GET, "/admin/v1/health", health::details),
        Route::new(Method::POST, "/admin/v1/users", admin_v1::create),
        Route::new(Method::GET, "/admin/v1/users", admin_v1::list),
        Route::new(Method::GET, "/admin/v1/users/{id}", admin_v1::get),
        Route::new(Method::PATCH, "/admin/v1/users/{id}", admin_v1::patch),
        Route::new(Method::DELETE, "/admin/v1/users/{id}", admin_v1::delete),
        Route::new(
            Method::GET,
            "/admin/v1/users/{id}/sessions",
            admin_v1::sessions,
        ),
        Route::new(
            Method::DELETE,
            "/admin/v1/users/{id}/sessions",
            admin_v1::end_sessions,
        ),
        Route::new(
            Method::DELETE,
            "/admin/v1/users/{id}/sessions/{session}",
            admin_v1::end_session,
        ),
        Route::new(
            Method::POST,
            "/admin/v1/users/{id}/password-reset",
            admin_links::password_reset,
        ),
        Route::new(Method::POST, "/admin/v1/invites", admin_links::invite),
        Route::new(Method::POST, "/admin/v1/apikeys", apikeys::create),
        Route::new(Method::GET, "/admin/v1/apikeys", apikeys::list),
        Route::new(Method::DELETE, "/admin/v1/apikeys/{key}", apikeys::revoke),
    ]
}
