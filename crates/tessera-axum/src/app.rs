//! The router: which path goes to which handler, and the layers around them.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::extract::Request;
use axum::handler::Handler;
use axum::http::Method;
use axum::middleware;
use axum::routing::{MethodFilter, MethodRouter, on};
use tower::Layer as _;

use crate::cors;
use crate::error::ApiError;
use crate::observe::{Observe, ObserveLayer, route_called};
use crate::openapi;
use crate::routes::{
    account, admin, admin_links, admin_v1, apikeys, audit, forward_auth, health, login, profile,
    recovery, sessions, signup, token,
};
use crate::state::AppState;

/// The whole HTTP API over `state`, to nest in an app's own router.
///
/// Every response carries `Cache-Control: no-store` (auth answers must not be
/// cached by browsers or proxies), `X-Request-Id` and every error a JSON
/// body, and is counted and logged ([`observe`](crate::observe), here as a
/// layer on each route); with `allowed_origins`, CORS answers for those
/// origins ([`cors`]).
pub fn router(state: Arc<AppState>) -> Router {
    routes(&state)
        .layer(ObserveLayer::new(Arc::clone(&state)))
        .with_state(state)
}

/// The same API as [`router`], with the [`observe`](crate::observe) pass
/// around the router instead of on each route (one boxed service and
/// future fewer per request): what [`crate::connections`] serves when the
/// API is the whole server.
pub fn service(state: Arc<AppState>) -> Observe<Router> {
    ObserveLayer::new(Arc::clone(&state)).layer(routes(&state).with_state(state))
}

/// The routes of [`public_routes`] and [`protected_routes`], one method
/// router per path (its 405 answer names the path's template too), and the
/// JSON 404 for any other path.
fn routes(state: &Arc<AppState>) -> Router<Arc<AppState>> {
    let mut paths: BTreeMap<&'static str, MethodRouter<Arc<AppState>>> = BTreeMap::new();
    for route in every_route() {
        let methods = match paths.remove(route.path) {
            Some(methods) => methods.merge(route.handler),
            None => route.handler,
        };
        paths.insert(route.path, methods);
    }
    let mut router = paths
        .into_iter()
        .fold(Router::new(), |router, (path, methods)| {
            let not_allowed = Templated {
                template: path,
                handler: || async { ApiError::MethodNotAllowed },
            };
            router.route(path, methods.fallback(not_allowed))
        })
        .fallback(|| async { ApiError::NotFound("no such route") });
    // Only with allowed origins: the default configuration pays nothing.
    if state.origins.has_allowed_origins() {
        router = router.layer(middleware::from_fn_with_state(
            Arc::clone(state),
            cors::cors,
        ));
    }
    router
}

/// A route's handler that names its route's template as it is called
/// ([`route_called`]): how the [`observe`](crate::observe) pass learns
/// it wherever it sits, at no cost (no extra future or allocation).
#[derive(Clone)]
struct Templated<H> {
    template: &'static str,
    handler: H,
}

impl<H, T, S> Handler<T, S> for Templated<H>
where
    H: Handler<T, S>,
    T: 'static,
    S: Send + 'static,
{
    type Future = H::Future;

    fn call(self, request: Request, state: S) -> Self::Future {
        route_called(self.template);
        self.handler.call(request, state)
    }
}

/// The declared route template `path` matches, as the router matches it:
/// for what must name the route before the router runs (a traced request's
/// span) or answers in its place (a CORS preflight).
pub(crate) fn template_of(path: &str) -> Option<&'static str> {
    static TEMPLATES: LazyLock<matchit::Router<&'static str>> = LazyLock::new(|| {
        let mut templates = matchit::Router::new();
        for route in every_route() {
            // A path with several methods is declared once per method; the
            // router has already refused any template it could not take.
            let _ = templates.insert(route.path, route.path);
        }
        templates
    });
    TEMPLATES.at(path).ok().map(|matched| *matched.value)
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
        let handler = Templated {
            template: path,
            handler,
        };
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
    every_route()
        .map(|route| (crate::metrics::method_label(&route.method), route.path))
        .collect()
}

/// The routes of [`public_routes`] and then [`protected_routes`].
fn every_route() -> impl Iterator<Item = Route> {
    public_routes().into_iter().chain(protected_routes())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_matches_the_template_it_was_made_from() {
        for route in every_route() {
            let path: String = route
                .path
                .split('/')
                .map(|segment| {
                    if segment.starts_with('{') {
                        "x1"
                    } else {
                        segment
                    }
                })
                .collect::<Vec<_>>()
                .join("/");
            assert_eq!(template_of(&path), Some(route.path), "{path}");
        }
        assert_eq!(template_of("/no/such/route"), None);
        assert_eq!(template_of("/health/"), None);
        assert_eq!(template_of("/sessions"), Some("/sessions"));
    }
}
