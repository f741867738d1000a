//! Every protected route carries out what the `Caller` extractor requires on
//! the way out: after a privilege change, the session comes back under a
//! fresh id (or, where the handler set the cookie itself, with that cookie).
//! The old id keeps working for the rotation grace, and yields the same
//! fresh id; after the grace it is refused.
//!
//! The routes come from [`protected_routes`], the list the router is built
//! from; each needs a valid request here.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use tessera_axum::app::protected_routes;
use tessera_axum::{AppConfig, AuditContext, Credential};
use tessera_core::{ChainKey, Email, Role, RotationKey, SessionId, Timestamp};

use crate::support::{App, Call, PASSWORD};

/// Short, so that the test can wait it out; long enough for the checks
/// made within it on a loaded machine (each is timed, see `within_grace`).
const GRACE: Duration = Duration::from_millis(1500);

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
        case(Method::GET, "/admin/v1/audit", StatusCode::OK, Rotated),
        case(Method::GET, "/admin/v1/health", StatusCode::OK, Rotated),
        Case {
            body: Some(json!({"disabled": false})),
            ..case(
                Method::PATCH,
                "/admin/users/{email}",
                StatusCode::OK,
                Rotated,
            )
        },
        Case {
            body: Some(json!({"current_password": PASSWORD,
                              "new_password": "another long passphrase",
                              "end_other_sessions": false})),
            ..case(Method::POST, "/password", StatusCode::OK, Rotated)
        },
        Case {
            body: Some(json!({"new_email": "elsewhere@example.com", "password": PASSWORD})),
            ..case(Method::POST, "/email", StatusCode::ACCEPTED, Rotated)
        },
        Case {
            body: Some(json!({"password": PASSWORD})),
            ..case(Method::DELETE, "/account", StatusCode::OK, ClearedByHandler)
        },
        Case {
            body: Some(json!({"email": "created@example.com", "password": "long enough secret"})),
            ..case(
                Method::POST,
                "/admin/v1/users",
                StatusCode::CREATED,
                Rotated,
            )
        },
        case(Method::GET, "/admin/v1/users", StatusCode::OK, Rotated),
        case(Method::GET, "/admin/v1/users/{id}", StatusCode::OK, Rotated),
        Case {
            body: Some(json!({"email_verified": false})),
            ..case(
                Method::PATCH,
                "/admin/v1/users/{id}",
                StatusCode::OK,
                Rotated,
            )
        },
        case(
            Method::DELETE,
            "/admin/v1/users/{id}",
            StatusCode::NO_CONTENT,
            Rotated,
        ),
        case(
            Method::GET,
            "/admin/v1/users/{id}/sessions",
            StatusCode::OK,
            Rotated,
        ),
        case(
            Method::DELETE,
            "/admin/v1/users/{id}/sessions",
            StatusCode::OK,
            Rotated,
        ),
        case(
            Method::DELETE,
            "/admin/v1/users/{id}/sessions/{session}",
            StatusCode::NO_CONTENT,
            Rotated,
        ),
        case(
            Method::POST,
            "/admin/v1/users/{id}/password-reset",
            StatusCode::OK,
            Rotated,
        ),
        Case {
            body: Some(json!({"email": "invited@example.com", "roles": ["editor"]})),
            ..case(
                Method::POST,
                "/admin/v1/invites",
                StatusCode::CREATED,
                Rotated,
            )
        },
        Case {
            body: Some(json!({"name": "ci", "roles": ["admin"]})),
            ..case(
                Method::POST,
                "/admin/v1/apikeys",
                StatusCode::CREATED,
                Rotated,
            )
        },
        case(Method::GET, "/admin/v1/apikeys", StatusCode::OK, Rotated),
        case(
            Method::DELETE,
            "/admin/v1/apikeys/{key}",
            StatusCode::NO_CONTENT,
            Rotated,
        ),
    ]
}

/// What the admin routes of one case are about: a user of its own (so that
/// deleting it leaves the other cases theirs), one of that user's
/// sessions, and an API key.
struct Target {
    id: String,
    session: String,
    key: String,
}

impl Target {
    async fn new(app: &App, n: usize) -> anyhow::Result<Self> {
        let email = format!("target-{n}@example.com");
        app.add_user(&email, &[]).await;
        let user = app
            .state
            .users()
            .by_email(&Email::parse(&email)?)
            .await?
            .context("the target exists")?;
        let session = app.login(&email).await.handle;
        let key = app
            .state
            .api_keys()
            .create(&AuditContext::cli(), "rotation", Vec::new(), None)
            .await?;
        Ok(Self {
            id: user.id.to_string(),
            session,
            key: key.key.id.to_string(),
        })
    }
}

/// The concrete path: `{handle}` is the user's other session, `{email}` the
/// bystander, `{id}`, `{session}` and `{key}` the case's [`Target`]. A new
/// parameter needs a value here.
fn fill(template: &str, other_handle: &str, target: &Target) -> String {
    let path = template
        .replace("{handle}", other_handle)
        .replace("{email}", BYSTANDER)
        .replace("{id}", &target.id)
        .replace("{session}", &target.session)
        .replace("{key}", &target.key);
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
    let app = App::with_config(AppConfig {
        session_rotation_grace: GRACE,
        ..AppConfig::default()
    });
    app.add_user(BYSTANDER, &[]).await;
    let mut failures = Vec::new();
    let mut rotated = Vec::new();
    let cases = cases();
    for (n, case) in cases.iter().enumerate() {
        match carry_out(&app, n, case).await {
            Ok(ids) => rotated.push((case, ids)),
            Err(failure) => failures.push(format!("{} {}: {failure:#}", case.method, case.path)),
        }
    }
    // Once the grace has passed (for every case at once), every old id is
    // refused and every fresh one still works.
    tokio::time::sleep(GRACE + Duration::from_millis(200)).await;
    for (case, ids) in rotated {
        if let Err(failure) = after_the_grace(&app, &ids).await {
            failures.push(format!(
                "{} {} after the grace: {failure:#}",
                case.method, case.path
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The ids of one case: the one the route was called with, and the fresh
/// one it handed out (none where the handler ended the session).
struct Ids {
    old: String,
    fresh: Option<String>,
}

/// One case on a fresh user with two fresh logins: mark both sessions for
/// rotation by a role change, call the route with the first one's cookie.
async fn carry_out(app: &App, n: usize, case: &Case) -> anyhow::Result<Ids> {
    let email = format!("rotation-{n}@example.com");
    app.add_user(&email, &["admin"]).await;
    let this = app.login(&email).await;
    let other = app.login(&email).await;
    let roles = [Role::parse("admin")?, Role::parse("editor")?];
    let change = app
        .state
        .accounts()
        .set_roles(
            &tessera_axum::AuditContext::system(),
            &Email::parse(&email)?,
            &roles,
        )
        .await?
        .context("the user exists")?;
    ensure!(
        change.sessions_affected == 2,
        "the role change marked {} sessions, not 2",
        change.sessions_affected
    );

    let target = Target::new(app, n).await?;
    let mut call = Call::new(
        case.method.clone(),
        &fill(case.path, &other.handle, &target),
    )
    .cookie(&this.cookie);
    if let Some(body) = &case.body {
        call = call.json(body);
    }
    let rotated_at = Instant::now();
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
            ensure!(
                fresh.session_cookies().is_empty(),
                "the fresh id is replaced again: {:?}",
                fresh.session_cookies()
            );
            // Within the grace, the old id still works, names the same
            // session and hands out the same fresh id.
            let old = app
                .send(Call::new(Method::GET, "/profile").cookie(&this.cookie))
                .await;
            within_grace(rotated_at)?;
            ensure!(
                old.status == StatusCode::OK,
                "within the grace the old id answers {}",
                old.status
            );
            ensure!(
                old.body["session"]["handle"] == this.handle.as_str()
                    && old.body["user"]["roles"] == json!(["admin", "editor"]),
                "within the grace the old id names something else: {}",
                old.body
            );
            let again = old.only_session_cookie().map_err(anyhow::Error::msg)?;
            ensure!(
                again.value() == set.value(),
                "within the grace the old id yields another id: {again} (first {set})"
            );
            ensure!(
                again.max_age().is_some_and(|age| age.is_positive()),
                "the successor's cookie has no positive Max-Age: {again}"
            );
            Ok(Ids {
                old: this.cookie,
                fresh: Some(set.value().to_owned()),
            })
        }
        Outcome::ClearedByHandler => {
            ensure!(
                set.value().is_empty() && set.max_age() == Some(cookie::time::Duration::ZERO),
                "the handler's clearing cookie was replaced: {set}"
            );
            let old = app.profile_status(&this.cookie).await;
            ensure!(
                old == StatusCode::UNAUTHORIZED,
                "the ended session's id still answers {old}"
            );
            Ok(Ids {
                old: this.cookie,
                fresh: None,
            })
        }
    }
}

/// The checks meant to run within the grace did (else the machine was too
/// slow for this test to say anything).
fn within_grace(since: Instant) -> anyhow::Result<()> {
    ensure!(
        since.elapsed() < GRACE,
        "the checks took {:?}, longer than the grace",
        since.elapsed()
    );
    Ok(())
}

async fn after_the_grace(app: &App, ids: &Ids) -> anyhow::Result<()> {
    let old = app.profile_status(&ids.old).await;
    ensure!(
        old == StatusCode::UNAUTHORIZED,
        "the old id still answers {old}"
    );
    if let Some(fresh) = &ids.fresh {
        let status = app.profile_status(fresh).await;
        ensure!(
            status == StatusCode::OK,
            "the fresh id is refused with {status}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn an_old_id_counts_only_for_the_successor_derived_from_it() {
    let app = App::new();
    app.add_user("derived@example.com", &["admin"]).await;
    let login = app.login("derived@example.com").await;
    let id = SessionId::parse(&login.cookie).expect("a session id");
    let now = Timestamp::now();
    let sessions = app.state.sessions();
    let session = sessions
        .load(&id.hash(), now)
        .await
        .expect("the store answers")
        .expect("the session");
    // A rotation this server would not have made: the successor comes from
    // another key (a node with another chain key, or a forged alias).
    let other_key = RotationKey::derive(&ChainKey::generate());
    let (foreign_id, foreign) = app
        .state
        .config()
        .policy
        .successor(&session, &id, &other_key, now);
    let grace_until = now.plus(Duration::from_secs(60));
    assert!(
        sessions
            .rotate(&session.id_hash, &foreign, grace_until)
            .await
            .expect("the store answers")
    );
    assert!(
        sessions
            .load(&id.hash(), now)
            .await
            .expect("the store answers")
            .is_some(),
        "the store follows the alias"
    );
    let old = app
        .send(Call::new(Method::GET, "/profile").cookie(&login.cookie))
        .await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED, "{}", old.body);
    assert!(old.session_cookies().is_empty(), "no cookie is handed out");
    assert_eq!(
        app.profile_status(&foreign_id.expose()).await,
        StatusCode::OK
    );
}

/// A session of a fresh user, marked for rotation and read as a request
/// reads it; then another request rotates it (with the server's key and
/// grace). The copy read before, and the successor's cookie.
async fn read_then_rotated_by_another_request(
    app: &App,
    email: &str,
) -> anyhow::Result<(Credential, String)> {
    app.add_user(email, &["admin"]).await;
    let login = app.login(email).await;
    let roles = [Role::parse("editor")?];
    app.state
        .accounts()
        .set_roles(
            &tessera_axum::AuditContext::system(),
            &Email::parse(email)?,
            &roles,
        )
        .await?;
    let id = SessionId::parse(&login.cookie)?;
    let now = Timestamp::now();
    let sessions = app.state.sessions();
    let read = sessions
        .load(&id.hash(), now)
        .await?
        .context("the session")?;
    ensure!(read.rotate, "the role change marked the session");
    let key = app.state.tokens().session_rotation_key();
    let (new_id, next) = app.state.config().policy.successor(&read, &id, key, now);
    let grace_until = now.plus(app.state.config().session_rotation_grace);
    ensure!(sessions.rotate(&read.id_hash, &next, grace_until).await?);
    Ok((Credential::Stored(read), new_id.expose()))
}

#[tokio::test]
async fn a_logout_racing_a_rotation_ends_the_successor() -> anyhow::Result<()> {
    let app = App::new();
    let (read, fresh) = read_then_rotated_by_another_request(&app, "race-end@example.com").await?;
    let ended = read
        .end(&app.state)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    assert_eq!(ended.0, 1, "the session the logout was for ended");
    assert_eq!(app.profile_status(&fresh).await, StatusCode::UNAUTHORIZED);
    Ok(())
}

#[tokio::test]
async fn a_data_patch_racing_a_rotation_reaches_the_successor() -> anyhow::Result<()> {
    let app = App::new();
    let (read, fresh) =
        read_then_rotated_by_another_request(&app, "race-merge@example.com").await?;
    let patch = json!({"theme": "dark"});
    let (data, _) = read
        .merge_data(&app.state, patch.as_object().context("an object")?)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    assert_eq!(Value::Object(data), patch);
    let session = app
        .send(Call::new(Method::GET, "/session").cookie(&fresh))
        .await;
    assert_eq!(session.status, StatusCode::OK);
    assert_eq!(session.body["data"], patch, "{}", session.body);
    Ok(())
}
