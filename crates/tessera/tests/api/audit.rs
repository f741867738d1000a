//! The audit trail through the real binary: each security event shows up in
//! `GET /admin/v1/audit` and `tessera audit tail` with who, whom, from where
//! and with which session; never a password, token, session id or address.
//! Once with SQLite, once with users in PostgreSQL.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::postgres_users::Database;

const UA: &str = "audit-test-agent/1.0";
const WRONG: &str = "not-the-password-Zq9";
const BOB: &str = "bob@example.com";

/// Where the users (and so the audit log) live.
enum Users {
    Sqlite,
    Postgres(Database),
}

impl Users {
    fn env(&self) -> Vec<(String, String)> {
        match self {
            Self::Sqlite => Vec::new(),
            Self::Postgres(db) => vec![
                ("TESSERA_USERS".into(), "postgres".into()),
                ("TESSERA_DATABASE_URL".into(), db.url()),
            ],
        }
    }

    /// Every stored audit row, as text.
    fn dump(&self, data: &DataDir) -> String {
        let out = match self {
            Self::Sqlite => Command::new("sqlite3")
                .arg(data.path().join("tessera.db"))
                .arg("SELECT * FROM audit_log")
                .output()
                .unwrap(),
            Self::Postgres(db) => Command::new("psql")
                .args(["-h", "127.0.0.1", "-U", "postgres", "-d", &db.0, "-tAc"])
                .arg("SELECT * FROM audit_events")
                .output()
                .unwrap(),
        };
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

fn cli(data: &DataDir, users: &Users, args: &[&str], stdin: &str) -> std::process::Output {
    let env = users.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    data.cli_with_env(args, stdin, &env)
}

async fn post(server: &Server, path: &str, cookie: Option<&str>, body: Value) -> reqwest::Response {
    with_cookie(server.request(Method::POST, path), cookie)
        .header("user-agent", UA)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn audit(server: &Server, cookie: &str, query: &str) -> (StatusCode, String) {
    let response = with_cookie(
        server.request(Method::GET, &format!("/admin/v1/audit{query}")),
        Some(cookie),
    )
    .send()
    .await
    .unwrap();
    (response.status(), response.text().await.unwrap())
}

/// Waits until the log holds an event of `kind` (the trail writes in the
/// background) and returns the newest one.
async fn event(server: &Server, admin: &str, kind: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = audit(server, admin, &format!("?kind={kind}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        if let Some(event) = body["events"].as_array().unwrap().first() {
            return event.clone();
        }
        assert!(Instant::now() < deadline, "no {kind} event");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the background writer has written what was recorded: the
/// log stops growing.
async fn settle(server: &Server, admin: &str) {
    let mut last = String::new();
    loop {
        let (_, body) = audit(server, admin, "?limit=1").await;
        if body == last {
            return;
        }
        last = body;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn assert_from_client(event: &Value) {
    assert_eq!(event["ip"], "127.0.0.1", "{event}");
    assert_eq!(event["user_agent"], UA, "{event}");
}

async fn every_event_is_recorded_and_readable(users: Users) {
    let data = Arc::new(DataDir::new());
    let options = users
        .env()
        .into_iter()
        .fold(Options::default(), |o, (k, v)| o.env(&k, v))
        .env("TESSERA_JWT_REFRESH_GRACE", 1)
        .env("TESSERA_LOGIN_ACCOUNT_BURST", 2)
        .env("TESSERA_LOGIN_IP_BURST", 100);
    if let Users::Postgres(_) = users {
        let out = cli(&data, &users, &["migrate"], "");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for (email, role) in [("alice@example.com", "admin"), (BOB, "member")] {
        let out = cli(
            &data,
            &users,
            &["user", "add", email, "--role", role, "--password-stdin"],
            &format!("{PASSWORD}\n"),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let server = Server::start_on(Arc::clone(&data), options);
    let admin = server.login_alice().await;
    let mut secrets = vec![PASSWORD.to_owned(), WRONG.to_owned(), admin.clone()];

    // A login that succeeds.
    let response = post(
        &server,
        "/login",
        None,
        json!({"email": BOB, "password": PASSWORD}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let bob_cookie = session_cookie(response.headers()).unwrap();
    let body: Value = response.json().await.unwrap();
    let bob = body["user"]["id"].as_str().unwrap().to_owned();
    let bob_handle = body["session"]["handle"].as_str().unwrap().to_owned();
    secrets.push(bob_cookie.clone());
    let ok = loop {
        // Alice's login came first: wait for bob's.
        let e = event(&server, &admin, "login_succeeded").await;
        if e["subject"] == bob.as_str() {
            break e;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(ok["actor"], json!({"type": "anonymous"}));
    assert_eq!(ok["session"], bob_handle.as_str());
    assert_from_client(&ok);

    // A failed login, with a request id of the client's own (not a
    // trusted proxy: replaced by one generated for the request).
    let response = server
        .request(Method::POST, "/login")
        .header("user-agent", UA)
        .header("x-request-id", "forged-by-the-client")
        .json(&json!({"email": BOB, "password": WRONG}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_ne!(request_id, "forged-by-the-client");
    let failed = event(&server, &admin, "login_failed").await;
    assert_eq!(
        failed["request_id"],
        request_id.as_str(),
        "the event names the request that caused it"
    );
    assert_eq!(failed["subject"], bob.as_str());
    assert_eq!(failed["actor"], json!({"type": "anonymous"}));
    assert_eq!(failed["session"], Value::Null);
    assert_from_client(&failed);

    // A throttled one: an unknown account, past its burst.
    let mut throttled = false;
    for _ in 0..5 {
        let response = post(
            &server,
            "/login",
            None,
            json!({"email": "nobody@example.com", "password": WRONG}),
        )
        .await;
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            throttled = true;
            break;
        }
    }
    assert!(throttled, "the account burst of 2 was never reached");
    let refused = event(&server, &admin, "login_throttled").await;
    assert_eq!(refused["actor"], json!({"type": "anonymous"}));
    assert_eq!(refused["subject"], Value::Null);
    assert_from_client(&refused);
    // More refusals from the same client within the window: no more rows
    // (they cost the client nothing, so they must not cost a write each).
    for _ in 0..20 {
        let response = post(
            &server,
            "/login",
            None,
            json!({"email": "nobody@example.com", "password": WRONG}),
        )
        .await;
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    }

    // An admin's role change.
    let response = with_cookie(
        server.request(Method::PATCH, &format!("/admin/users/{BOB}")),
        Some(&admin),
    )
    .header("user-agent", UA)
    .json(&json!({"roles": ["member", "editor"]}))
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let alice_id = {
        let profile: Value = server
            .get("/profile", Some(&admin))
            .await
            .json()
            .await
            .unwrap();
        profile["user"]["id"].as_str().unwrap().to_owned()
    };
    let roles = event(&server, &admin, "roles_changed").await;
    assert_eq!(roles["actor"], json!({"type": "user", "id": alice_id}));
    assert_eq!(roles["subject"], bob.as_str());
    assert!(roles["session"].is_string());
    assert_from_client(&roles);

    // A logout.
    let response = post(&server, "/logout", Some(&bob_cookie), json!({})).await;
    assert_eq!(response.status(), StatusCode::OK);
    let out = event(&server, &admin, "logged_out").await;
    assert_eq!(out["actor"], json!({"type": "user", "id": bob}));
    assert_eq!(out["subject"], bob.as_str());
    assert_eq!(out["session"], bob_handle.as_str());
    assert_from_client(&out);

    // A refresh token used again after its grace.
    let response = post(
        &server,
        "/token",
        None,
        json!({"email": BOB, "password": PASSWORD}),
    )
    .await;
    let first: Value = response.json().await.unwrap();
    let old = first["refresh_token"].as_str().unwrap().to_owned();
    secrets.push(old.clone());
    secrets.push(first["access_token"].as_str().unwrap().to_owned());
    let second: Value = refresh(&server, &old).await.json().await.unwrap();
    secrets.push(second["refresh_token"].as_str().unwrap().to_owned());
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let response = post(
        &server,
        "/token/refresh",
        None,
        json!({"refresh_token": old}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let reused = event(&server, &admin, "refresh_token_reused").await;
    assert_eq!(reused["subject"], bob.as_str());
    assert_from_client(&reused);
    // The session is the family's public id, the access token's `sid`.
    let access = first["access_token"].as_str().unwrap();
    let claims = access.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, claims).unwrap(),
    )
    .unwrap();
    assert_eq!(reused["session"], claims["sid"]);

    // The operator's `user add` is there too, by the CLI.
    let created = event(&server, &admin, "user_created").await;
    assert_eq!(created["actor"], json!({"type": "cli"}));

    // Only admins read it.
    let member = server.login(BOB, PASSWORD).await;
    let (status, body) = audit(&server, &member, "").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(
        server.get("/admin/v1/audit", None).await.status(),
        StatusCode::UNAUTHORIZED
    );

    settle(&server, &admin).await;
    // Nothing secret or personal, in the API or in the database.
    let (status, everything) = audit(&server, &admin, "?limit=500").await;
    assert_eq!(status, StatusCode::OK);
    let stored = users.dump(&data);
    for text in [&everything, &stored] {
        for secret in &secrets {
            assert!(!text.contains(secret.as_str()), "a secret leaked: {text}");
        }
        for personal in [
            BOB,
            "alice@example.com",
            "nobody@example.com",
            "example.com",
        ] {
            assert!(!text.contains(personal), "{personal} leaked: {text}");
        }
    }
    let all: Value = serde_json::from_str(&everything).unwrap();
    let all = all["events"].as_array().unwrap().clone();
    let throttled = all
        .iter()
        .filter(|e| e["kind"] == "login_throttled")
        .count();
    assert_eq!(throttled, 1, "one throttled event per client per window");
    assert!(all.len() >= 9, "{all:?}");

    // Filters.
    let (_, body) = audit(&server, &admin, &format!("?user={bob}&limit=500")).await;
    let about_bob: Value = serde_json::from_str(&body).unwrap();
    let about_bob = about_bob["events"].as_array().unwrap();
    assert!(about_bob.iter().all(|e| e["subject"] == bob.as_str()));
    let expected = all.iter().filter(|e| e["subject"] == bob.as_str()).count();
    assert_eq!(about_bob.len(), expected);
    let (_, by_email) = audit(&server, &admin, &format!("?user={BOB}&limit=500")).await;
    assert_eq!(by_email, body, "a user by address or by id");
    let (_, body) = audit(&server, &admin, "?since=4102444800").await; // 2100
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["events"],
        json!([])
    );
    let (_, body) = audit(&server, &admin, "?since=2000-01-01T00:00:00Z&limit=500").await;
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["events"]
            .as_array()
            .unwrap()
            .len(),
        all.len()
    );

    // Pages of 2: every event once, newest first, even while events arrive.
    let mut paged = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, body) = audit(&server, &admin, &format!("?limit=2{cursor}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let page: Value = serde_json::from_str(&body).unwrap();
        paged.extend(page["events"].as_array().unwrap().iter().cloned());
        // Another failed login lands on a newer page than the one we read.
        post(
            &server,
            "/login",
            None,
            json!({"email": "carol@example.com", "password": WRONG}),
        )
        .await;
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    let ids: Vec<&Value> = paged.iter().map(|e| &e["id"]).collect();
    let expected_ids: Vec<&Value> = all.iter().map(|e| &e["id"]).collect();
    assert_eq!(ids, expected_ids);

    // Bad parameters: 400 with a JSON body.
    for query in [
        "?kind=nope",
        "?limit=0",
        "?limit=501",
        "?limit=x",
        "?cursor=abc",
        "?since=yesterday",
        "?user=not an address",
        "?colour=red",
    ] {
        let (status, body) = audit(&server, &admin, query).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        let body: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("{query}: {body}"));
        assert!(body["error"]["code"].is_string(), "{query}: {body}");
    }

    // The CLI reads the same log.
    let out = cli(
        &data,
        &users,
        &["audit", "tail", "--kind", "login_failed"],
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.lines()
            .any(|l| l.contains("login_failed") && l.contains(&bob) && l.contains(UA)),
        "{text}"
    );
    assert!(text.lines().all(|l| l.contains("login_failed")), "{text}");
    let out = cli(
        &data,
        &users,
        &["audit", "tail", "--user", BOB, "--json", "-n", "500"],
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), expected);

    // `--follow` prints what is recorded after it started.
    let env = users.env();
    let mut follower = Command::new(BIN)
        .args([
            "audit",
            "tail",
            "--follow",
            "--kind",
            "login_failed",
            "-n",
            "1",
            "--data-dir",
        ])
        .arg(data.path())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = follower.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // The latest one first, printed at once.
    let first_line = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("tail prints the latest");
    assert!(first_line.contains("login_failed"), "{first_line}");
    let marker = "follow-marker-agent/7";
    with_cookie(server.request(Method::POST, "/login"), None)
        .header("user-agent", marker)
        .json(&json!({"email": BOB, "password": WRONG}))
        .send()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = false;
    while Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200))
            && line.contains(marker)
        {
            seen = true;
            break;
        }
    }
    let _ = follower.kill();
    let _ = follower.wait();
    assert!(seen, "--follow did not print the new event");
}

#[tokio::test]
async fn every_event_is_recorded_and_readable_on_sqlite() {
    every_event_is_recorded_and_readable(Users::Sqlite).await;
}

#[tokio::test]
async fn every_event_is_recorded_and_readable_on_postgres() {
    every_event_is_recorded_and_readable(Users::Postgres(Database::create())).await;
}

/// All events of `kind` about `subject`, oldest first, once at least `n`
/// have been written.
async fn events_about(
    server: &Server,
    admin: &str,
    kind: &str,
    subject: &str,
    n: usize,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = audit(
            server,
            admin,
            &format!("?kind={kind}&user={subject}&limit=500"),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        let mut events = body["events"].as_array().unwrap().clone();
        if events.len() >= n {
            events.reverse();
            return events;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {n} {kind} events",
            events.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sessions ended by the cap, by handle and everywhere; and the same
/// account change from the admin API and from the CLI leaves the same event
/// (only the actor differs).
#[tokio::test]
async fn every_entry_point_records_the_same_events() {
    let server = Server::start_with(Options::default().env("TESSERA_MAX_SESSIONS_PER_USER", 2));
    server.data.add_user(BOB, &[]);
    let admin = server.login_alice().await;
    let mut handles = Vec::new();
    let mut cookies = Vec::new();
    for _ in 0..3 {
        let response = post(
            &server,
            "/login",
            None,
            json!({"email": BOB, "password": PASSWORD}),
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK);
        cookies.push(session_cookie(response.headers()).unwrap());
        let body: Value = response.json().await.unwrap();
        handles.push(body["session"]["handle"].as_str().unwrap().to_owned());
    }
    let profile: Value = server
        .get("/profile", Some(&cookies[2]))
        .await
        .json()
        .await
        .unwrap();
    let bob = profile["user"]["id"].as_str().unwrap().to_owned();

    // The third login ended the first session: by tessera, at bob's login.
    let capped = events_about(&server, &admin, "session_ended", &bob, 1).await;
    assert_eq!(capped[0]["actor"], json!({"type": "system"}));
    assert_eq!(capped[0]["session"], handles[0].as_str());
    assert_from_client(&capped[0]);

    // Bob ends his second session from his third.
    let response = with_cookie(
        server.request(Method::DELETE, &format!("/sessions/{}", handles[1])),
        Some(&cookies[2]),
    )
    .header("user-agent", UA)
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let by_handle = events_about(&server, &admin, "session_ended", &bob, 2).await;
    assert_eq!(by_handle[1]["actor"], json!({"type": "user", "id": bob}));
    assert_eq!(by_handle[1]["session"], handles[1].as_str());
    assert!(
        by_handle[1]["detail"]
            .as_str()
            .unwrap()
            .contains(&handles[2])
    );
    assert_from_client(&by_handle[1]);

    // Log out everywhere.
    let response = post(
        &server,
        "/logout",
        Some(&cookies[2]),
        json!({"everywhere": true}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let everywhere = events_about(&server, &admin, "session_ended", &bob, 3).await;
    assert_eq!(everywhere[2]["actor"], json!({"type": "user", "id": bob}));
    assert_eq!(everywhere[2]["session"], handles[2].as_str());
    assert!(
        everywhere[2]["detail"]
            .as_str()
            .unwrap()
            .contains("everywhere")
    );

    // Disable and enable: once by the admin API, once by the CLI.
    for disabled in [true, false] {
        let response = with_cookie(
            server.request(Method::PATCH, &format!("/admin/users/{BOB}")),
            Some(&admin),
        )
        .header("user-agent", UA)
        .json(&json!({"disabled": disabled}))
        .send()
        .await
        .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    // The server's trail writes in batches: let it, so that the CLI's
    // events (written at once) come after them in the log.
    for kind in ["user_disabled", "user_enabled"] {
        events_about(&server, &admin, kind, &bob, 1).await;
    }
    for command in ["disable", "enable"] {
        let out = server.data.cli(&["user", command, BOB], "");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for kind in ["user_disabled", "user_enabled"] {
        let events = events_about(&server, &admin, kind, &bob, 2).await;
        assert_eq!(events.len(), 2, "{kind}: one per change");
        assert_eq!(events[0]["actor"]["type"], "user", "{kind}: the admin API");
        assert_from_client(&events[0]);
        assert_eq!(
            events[1]["actor"],
            json!({"type": "cli"}),
            "{kind}: the CLI"
        );
        assert_eq!(events[1]["ip"], Value::Null);
    }
    // Roles and password from the CLI.
    let out = server
        .data
        .cli(&["user", "set-role", BOB, "--role", "editor"], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let roles = events_about(&server, &admin, "roles_changed", &bob, 1).await;
    assert_eq!(roles[0]["actor"], json!({"type": "cli"}));
    assert_eq!(roles[0]["detail"], "roles: editor (were: -)");
    let out = server.data.cli(
        &["user", "passwd", BOB, "--password-stdin"],
        "another long passphrase\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let changed = events_about(&server, &admin, "password_changed", &bob, 1).await;
    assert_eq!(changed[0]["actor"], json!({"type": "cli"}));
    let (_, all) = audit(&server, &admin, "?limit=500").await;
    assert!(
        !all.contains("another long passphrase") && !all.contains(BOB),
        "{all}"
    );
    // Nothing was dropped, and the admin health view says so.
    let health: Value = server
        .get("/admin/v1/health", Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(health["audit"]["dropped"], 0, "{health}");
}
