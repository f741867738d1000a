//! Session id rotation after a privilege change, with continuity: the
//! replaced id keeps working for `session_rotation_grace` and yields the
//! same fresh id, so a page's parallel requests (or a proxy's) in flight with
//! the old cookie are not refused; after the grace, or once the session
//! ends, the old id is refused.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

/// Requests a page fires at once after the change.
const PARALLEL: usize = 8;

/// A server (with `options`) where alice (admin) and bob (member) are
/// logged in.
async fn alice_and_bob(options: Options) -> (Server, String, String) {
    let server = Server::start_with(options);
    server.data.add_user("bob@example.com", &["member"]);
    let admin = server.login_alice().await;
    let bob = server.login("bob@example.com", PASSWORD).await;
    (server, admin, bob)
}

/// Alice makes bob a billing member: bob's session is marked for rotation.
async fn change_bobs_roles(server: &Server, admin: &str) {
    let response = server
        .send_json(
            Method::PATCH,
            "/admin/users/bob@example.com",
            Some(admin),
            json!({"roles": ["member", "billing"]}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["sessions_affected"], 1);
}

/// What one `GET /profile` answered: status, the session cookie it set
/// (the full header) and the body.
struct Answer {
    status: StatusCode,
    set_cookie: Option<String>,
    body: Value,
}

async fn profile(url: String, cookie: String) -> Answer {
    let response = reqwest::Client::new()
        .get(url)
        .header("cookie", format!("{COOKIE}={cookie}"))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let set_cookie = set_cookie_header(response.headers());
    let body = response.json().await.unwrap_or(Value::Null);
    Answer {
        status,
        set_cookie,
        body,
    }
}

/// `GET /profile` with `cookie`, `PARALLEL` times at once, spread over
/// `nodes` in turn.
async fn parallel_profiles(nodes: &[&Server], cookie: &str) -> Vec<Answer> {
    let calls: Vec<_> = (0..PARALLEL)
        .map(|i| {
            tokio::spawn(profile(
                nodes[i % nodes.len()].url("/profile"),
                cookie.to_owned(),
            ))
        })
        .collect();
    let mut answers = Vec::new();
    for call in calls {
        answers.push(call.await.unwrap());
    }
    answers
}

fn cookie_value(set_cookie: &str) -> String {
    set_cookie
        .strip_prefix(&format!("{COOKIE}="))
        .and_then(|rest| rest.split(';').next())
        .expect("our cookie")
        .to_owned()
}

/// Every answer is a 200 with bob's new roles and sets one and the same
/// fresh cookie, with every protective attribute; that cookie.
fn all_ok_with_one_new_cookie(answers: &[Answer], old: &str) -> String {
    for answer in answers {
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        assert_eq!(answer.body["user"]["roles"], json!(["billing", "member"]));
    }
    let headers: Vec<&str> = answers
        .iter()
        .map(|a| {
            a.set_cookie
                .as_deref()
                .expect("every answer carries the new cookie")
        })
        .collect();
    let values: HashSet<String> = headers.iter().map(|h| cookie_value(h)).collect();
    assert_eq!(
        values.len(),
        1,
        "one successor for every request: {values:?}"
    );
    let fresh = values.into_iter().next().unwrap();
    assert_ne!(fresh, old);
    for header in headers {
        for attribute in ["HttpOnly", "Secure", "Path=/", "SameSite=Lax", "Max-Age="] {
            assert!(header.contains(attribute), "{header} lacks {attribute}");
        }
        assert!(!header.contains("Max-Age=0"), "{header}");
    }
    fresh
}

/// The fresh cookie works, carries the new roles and is not replaced again.
async fn works_as_is(server: &Server, fresh: &str) {
    let answer = profile(server.url("/profile"), fresh.to_owned()).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["user"]["roles"], json!(["billing", "member"]));
    assert_eq!(answer.set_cookie, None, "the fresh id stays");
}

async fn status(server: &Server, cookie: &str) -> StatusCode {
    server.get("/profile", Some(cookie)).await.status()
}

#[tokio::test]
async fn after_a_role_change_parallel_requests_with_the_old_cookie_all_succeed_with_one_new_cookie()
{
    let (server, admin, bob) = alice_and_bob(Options::default()).await;
    change_bobs_roles(&server, &admin).await;
    let answers = parallel_profiles(&[&server], &bob).await;
    let fresh = all_ok_with_one_new_cookie(&answers, &bob);
    works_as_is(&server, &fresh).await;
    let listed: Value = server
        .get("/sessions", Some(&fresh))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed["sessions"].as_array().map(Vec::len),
        Some(1),
        "the old id is not a session of its own: {listed}"
    );
    assert_eq!(listed["sessions"][0]["current"], true, "{listed}");
    // Still within the grace, a late request with the old cookie too.
    let late = profile(server.url("/profile"), bob.clone()).await;
    assert_eq!(late.status, StatusCode::OK);
    assert_eq!(late.set_cookie.as_deref().map(cookie_value), Some(fresh));
}

#[tokio::test]
async fn the_old_cookie_is_refused_once_the_grace_has_passed() {
    let options = Options::default().env("TESSERA_SESSION_ROTATION_GRACE", 1);
    let (server, admin, bob) = alice_and_bob(options).await;
    change_bobs_roles(&server, &admin).await;
    let first = profile(server.url("/profile"), bob.clone()).await;
    assert_eq!(first.status, StatusCode::OK);
    let fresh = cookie_value(&first.set_cookie.expect("a fresh id"));
    assert_eq!(
        status(&server, &bob).await,
        StatusCode::OK,
        "within the grace"
    );
    tokio::time::sleep(Duration::from_millis(1300)).await;
    expect_error(
        server.get("/profile", Some(&bob)).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    works_as_is(&server, &fresh).await;
}

#[tokio::test]
async fn logging_out_with_the_new_cookie_ends_the_old_one_too() {
    let (server, admin, bob) = alice_and_bob(Options::default()).await;
    change_bobs_roles(&server, &admin).await;
    let fresh = all_ok_with_one_new_cookie(&parallel_profiles(&[&server], &bob).await, &bob);
    let logout = server
        .send_json(Method::POST, "/logout", Some(&fresh), json!({}))
        .await;
    assert_eq!(logout.status(), StatusCode::OK);
    assert_eq!(status(&server, &fresh).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        status(&server, &bob).await,
        StatusCode::UNAUTHORIZED,
        "the old id ends with its successor, within the grace"
    );
}

#[tokio::test]
async fn logging_out_with_the_old_cookie_within_the_grace_ends_the_session() {
    let (server, admin, bob) = alice_and_bob(Options::default()).await;
    change_bobs_roles(&server, &admin).await;
    let fresh = all_ok_with_one_new_cookie(&parallel_profiles(&[&server], &bob).await, &bob);
    let logout = server
        .send_json(Method::POST, "/logout", Some(&bob), json!({}))
        .await;
    assert_eq!(logout.status(), StatusCode::OK);
    let cleared = set_cookie_header(logout.headers()).expect("logout clears the cookie");
    assert!(cleared.starts_with(&format!("{COOKIE}=;")), "{cleared}");
    assert_eq!(status(&server, &fresh).await, StatusCode::UNAUTHORIZED);
    assert_eq!(status(&server, &bob).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn disabling_the_user_ends_the_old_cookie_within_the_grace() {
    let (server, admin, bob) = alice_and_bob(Options::default()).await;
    change_bobs_roles(&server, &admin).await;
    let fresh = all_ok_with_one_new_cookie(&parallel_profiles(&[&server], &bob).await, &bob);
    let disable = server
        .send_json(
            Method::PATCH,
            "/admin/users/bob@example.com",
            Some(&admin),
            json!({"disabled": true}),
        )
        .await;
    assert_eq!(disable.status(), StatusCode::OK);
    assert_eq!(status(&server, &fresh).await, StatusCode::UNAUTHORIZED);
    assert_eq!(status(&server, &bob).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn with_no_grace_the_old_cookie_stops_working_at_once() {
    let options = Options::default().env("TESSERA_SESSION_ROTATION_GRACE", 0);
    let (server, admin, bob) = alice_and_bob(options).await;
    change_bobs_roles(&server, &admin).await;
    let first = profile(server.url("/profile"), bob.clone()).await;
    assert_eq!(first.status, StatusCode::OK);
    let fresh = cookie_value(&first.set_cookie.expect("a fresh id"));
    expect_error(
        server.get("/profile", Some(&bob)).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    works_as_is(&server, &fresh).await;
}

#[tokio::test]
async fn on_redis_requests_spread_over_two_nodes_converge_on_one_new_cookie() {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let options = Options::default()
        .env("TESSERA_STORE", "redis")
        .env("TESSERA_REDIS_URL", "redis://127.0.0.1:6379")
        .env(
            "TESSERA_REDIS_PREFIX",
            format!("tessera-rot-{nanos:x}-{}", std::process::id()),
        )
        .env("TESSERA_REDIS_NEAR_CACHE", 1000)
        .env("TESSERA_SESSION_ROTATION_GRACE", 2);
    // Two nodes on one data directory: they share the chain key, hence
    // the rotation key, as the nodes of a cluster do.
    let data = Arc::new(DataDir::new());
    data.add_user("alice@example.com", &["admin"]);
    data.add_user("bob@example.com", &["member"]);
    let a = Server::start_on(Arc::clone(&data), options.clone());
    let b = Server::start_on(Arc::clone(&data), options);
    let admin = a.login_alice().await;
    let bob = b.login("bob@example.com", PASSWORD).await;
    // Both nodes have read bob's session (into their near-caches).
    assert_eq!(status(&a, &bob).await, StatusCode::OK);
    assert_eq!(status(&b, &bob).await, StatusCode::OK);
    change_bobs_roles(&a, &admin).await;
    let fresh = all_ok_with_one_new_cookie(&parallel_profiles(&[&a, &b], &bob).await, &bob);
    works_as_is(&a, &fresh).await;
    works_as_is(&b, &fresh).await;
    // After the rotation, the old id resolves through its alias on either node.
    for node in [&a, &b] {
        let late = profile(node.url("/profile"), bob.clone()).await;
        assert_eq!(late.status, StatusCode::OK);
        assert_eq!(
            late.set_cookie.as_deref().map(cookie_value).as_ref(),
            Some(&fresh)
        );
    }
    tokio::time::sleep(Duration::from_millis(2300)).await;
    assert_eq!(status(&a, &bob).await, StatusCode::UNAUTHORIZED);
    assert_eq!(status(&b, &bob).await, StatusCode::UNAUTHORIZED);
    works_as_is(&b, &fresh).await;
}

#[test]
fn the_grace_is_a_setting_that_config_print_shows() {
    let print = |env: &[(&str, &str)], file: Option<&std::path::Path>| {
        let mut command = std::process::Command::new(BIN);
        command
            .args(["config", "print"])
            .env_remove("TESSERA_CONFIG");
        if let Some(file) = file {
            command.arg("--config").arg(file);
        }
        let out = command.envs(env.iter().copied()).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(print(&[], None).contains("session_rotation_grace = 30\n"));
    let data = DataDir::new();
    let file = data.path().join("tessera.toml");
    std::fs::write(&file, "session_rotation_grace = 7\n").unwrap();
    assert!(print(&[], Some(&file)).contains("session_rotation_grace = 7\n"));
    let env = [("TESSERA_SESSION_ROTATION_GRACE", "0")];
    assert!(print(&env, Some(&file)).contains("session_rotation_grace = 0\n"));
}

/// A login never keeps the session whose cookie it was sent with, even when
/// that cookie is an id replaced within the grace (it names the successor).
#[tokio::test]
async fn a_login_with_the_old_cookie_within_the_grace_ends_the_session_it_names() {
    let (server, admin, bob) = alice_and_bob(Options::default()).await;
    change_bobs_roles(&server, &admin).await;
    let fresh = all_ok_with_one_new_cookie(&parallel_profiles(&[&server], &bob).await, &bob);
    let login = with_cookie(server.request(Method::POST, "/login"), Some(&bob))
        .json(&json!({"email": "bob@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    let newest = session_cookie(login.headers()).unwrap();
    assert_eq!(status(&server, &newest).await, StatusCode::OK);
    assert_eq!(status(&server, &fresh).await, StatusCode::UNAUTHORIZED);
    assert_eq!(status(&server, &bob).await, StatusCode::UNAUTHORIZED);
}
