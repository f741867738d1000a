//! Every protected route carries out what the `Caller` extractor requires on
//! the way out: after a privilege change, the session comes back under a
//! fresh id (or, where the handler set the cookie itself, with that cookie).
//!
//! The routes come from [`protected_routes`], the list the router is built
//! from; each needs a valid request here.

use anyhow::{Context, ensure};
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use tessera_axum::app::protected_routes;
use tessera_core::{Email, Role};

use crate::support::{App, Call};

/// A user every admin request is about.
const BYSTANDER: &str = "bystander@example.com";

/// What the response must do with the session cookie.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    /// `reply` swapped in a fresh id.
    Rotated,
    /// The handler cleared the cookie, and `reply` left that alone.
    ClearedByHandler,
}

/// A valid request for one protected route.
struct Case {
    method: Method,
    /// The path template, exactly as [`protected_routes`] lists it.
    path: &'static str,
    body: Option<Value>,
    status: StatusCode,
    outcome: Outcome,
}

fn case(method: Method, path: &'static str, status: StatusCode, outcome: Outcome) -> Case {
    Case {
        method,
        path,
        body: None,
        status,
        outcome,
    }
}

fn cases() -> Vec<Case> {
    use Outcome::{ClearedByHandler, Rotated};
    vec![
        case(Method::GET, "/profile", StatusCode::OK, Rotated),
        case(Method::GET, "/auth/verify", StatusCode::NO_CONTENT, Rotated),
        case(Method::GET, "/session", StatusCode::OK, Rotated),
        Case {
            body: Some(json!({"theme": "dark"})),
            ..case(Method::PATCH, "/session", StatusCode::OK, Rotated)
        },
        case(Method::GET, "/sessions", StatusCode::OK, Rotated),
        case(
            Method::DELETE,
            "/sessions/{handle}",
            StatusCode::NO_CONTENT,
            Rotated,
        ),
        case(Method::POST, "/logout", StatusCode::OK, ClearedByHandler),
        Case {
            body: Some(json!({"disabled": false})),
            ..case(
                Method::PATCH,
                "/admin/users/{email}",
                StatusCode::OK,
                Rotated,
            )
        },
    ]
}

/// The concrete path: `{handle}` is the user's other session, `{email}` the
/// bystander. A new parameter needs a value here.
fn fill(template: &str, other_handle: &str) -> String {
    let path = template
        .replace("{handle}", other_handle)
        .replace("{email}", BYSTANDER);
    assert!(
        !path.contains('{'),
        "no value for a parameter of {template}"
    );
    path
}

#[test]
fn every_protected_route_has_exactly_one_request_case() {
    let routes: Vec<(Method, &str)> = protected_routes()
        .iter()
        .map(|r| (r.method.clone(), r.path))
        .collect();
    let cases: Vec<(Method, &str)> = cases().iter().map(|c| (c.method.clone(), c.path)).collect();
    let without_case: Vec<_> = routes.iter().filter(|r| !cases.contains(r)).collect();
    let without_route: Vec<_> = cases.iter().filter(|c| !routes.contains(c)).collect();
    let repeated: Vec<_> = cases
        .iter()
        .enumerate()
        .filter(|(i, c)| cases[..*i].contains(c))
        .map(|(_, c)| c)
        .collect();
    assert!(
        without_case.is_empty() && without_route.is_empty() && repeated.is_empty(),
        "routes without a case: {without_case:?}; cases without a route: {without_route:?}; \
         repeated cases: {repeated:?}"
    );
}

#[tokio::test]
async fn every_protected_route_hands_out_a_fresh_session_id_after_a_privilege_change() {
    let app = App::new();
    app.add_user(BYSTANDER, &[]).await;
    let mut failures = Vec::new();
    for (n, case) in cases().iter().enumerate() {
        if let Err(failure) = carry_out(&app, n, case).await {
            failures.push(format!("{} {}: {failure:#}", case.method, case.path));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// One case on a fresh user with two fresh logins: mark both sessions for
/// rotation by a role change, call the route with the first one's cookie.
async fn carry_out(app: &App, n: usize, case: &Case) -> anyhow::Result<()> {
    let email = format!("rotation-{n}@example.com");
    app.add_user(&email, &["admin"]).await;
    let this = app.login(&email).await;
    let other = app.login(&email).await;
    let roles = [Role::parse("admin")?, Role::parse("editor")?];
    let change = app
        .state
        .accounts()
        .set_roles(&Email::parse(&email)?, &roles)
        .await?
        .context("the user exists")?;
    ensure!(
        change.sessions_affected == 2,
        "the role change marked {} sessions, not 2",
        change.sessions_affected
    );

    let mut call =
        Call::new(case.method.clone(), &fill(case.path, &other.handle)).cookie(&this.cookie);
    if let Some(body) = &case.body {
        call = call.json(body);
    }
    let reply = app.send(call).await;
    ensure!(
        reply.status == case.status,
        "answered {} (expected {}): {}",
        reply.status,
        case.status,
        reply.body
    );
    let set = reply.only_session_cookie().map_err(anyhow::Error::msg)?;
    match case.outcome {
        Outcome::Rotated => {
            ensure!(
                !set.value().is_empty() && set.value() != this.cookie,
                "the Set-Cookie does not carry a fresh id: {set}"
            );
            ensure!(
                set.max_age().is_some_and(|age| age.is_positive()),
                "the fresh id's cookie has no positive Max-Age: {set}"
            );
            let fresh = app
                .send(Call::new(Method::GET, "/profile").cookie(set.value()))
                .await;
            ensure!(
                fresh.status == StatusCode::OK,
                "the fresh id is refused with {}",
                fresh.status
            );
            ensure!(
                fresh.body["session"]["handle"] == this.handle.as_str(),
                "the fresh id names another session: {}",
                fresh.body
            );
            ensure!(
                fresh.body["user"]["roles"] == json!(["admin", "editor"]),
                "the fresh id does not carry the new roles: {}",
                fresh.body
            );
        }
        Outcome::ClearedByHandler => {
            ensure!(
                set.value().is_empty() && set.max_age() == Some(cookie::time::Duration::ZERO),
                "the handler's clearing cookie was replaced: {set}"
            );
        }
    }
    let old = app.profile_status(&this.cookie).await;
    ensure!(
        old == StatusCode::UNAUTHORIZED,
        "the old id still answers {old}"
    );
    Ok(())
}
