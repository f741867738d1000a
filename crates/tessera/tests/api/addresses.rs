//! One spelling per address (issue 11): every way of writing one address
//! reaches one account, in the CLI, at login, at `/token`, in the throttle;
//! invisible characters are refused with a clear error; addresses stored by
//! the old rules are migrated, collisions kept and reported.

use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

/// The address the account is created with (NFC, Unicode domain).
const JOSE: &str = "jos\u{e9}@b\u{fc}cher.example";

/// Spellings of [`JOSE`] that used to be separate accounts: each is the
/// same account now.
const SAME: &[&str] = &[
    "jose\u{301}@bu\u{308}cher.example",
    "JOS\u{c9}@B\u{dc}CHER.EXAMPLE",
    "JOSE\u{301}@BU\u{308}CHER.EXAMPLE",
    "\u{ff4a}\u{ff4f}\u{ff53}\u{e9}@b\u{fc}cher.example",
    "\u{ff2a}\u{ff2f}\u{ff33}\u{c9}@b\u{fc}cher.example",
    "jos\u{e9}@b\u{fc}cher.example.",
    "jos\u{e9}@xn--bcher-kva.example",
    "jos\u{e9}@XN--BCHER-KVA.EXAMPLE",
    "jos\u{e9}@xn--bcher-kva.example.",
    "jos\u{e9}@b\u{fc}cher\u{3002}example",
    "jos\u{e9}@\u{ff42}\u{fc}\u{ff43}\u{ff48}\u{ff45}\u{ff52}\u{ff0e}example",
    "  jos\u{e9}@b\u{fc}cher.example ",
];

/// Spellings that hide a character: refused.
const HIDDEN: &[&str] = &[
    "jos\u{200b}\u{e9}@b\u{fc}cher.example",
    "\u{feff}jos\u{e9}@b\u{fc}cher.example",
    "jos\u{e9}@b\u{fc}ch\u{200b}er.example",
    "jos\u{e9}\u{202e}@b\u{fc}cher.example",
];

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn user_count(data: &DataDir) -> usize {
    let out = data.cli(&["user", "list", "--json"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice::<Vec<Value>>(&out.stdout)
        .unwrap()
        .len()
}

#[tokio::test]
async fn the_seventeen_spellings_reach_one_account() {
    let data = Arc::new(DataDir::new());
    data.add_user(JOSE, &[]);
    assert_eq!(SAME.len() + HIDDEN.len() + 1, 17);
    for spelling in SAME {
        let out = data.cli(
            &["user", "add", spelling, "--password-stdin"],
            &format!("{PASSWORD}\n"),
        );
        assert!(!out.status.success(), "{spelling:?} made a second account");
        assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    }
    for spelling in HIDDEN {
        let out = data.cli(
            &["user", "add", spelling, "--password-stdin"],
            &format!("{PASSWORD}\n"),
        );
        assert!(!out.status.success(), "{spelling:?} accepted");
        assert!(
            stderr(&out).contains("invisible, formatting or direction-control character"),
            "{}",
            stderr(&out)
        );
    }
    assert_eq!(user_count(&data), 1);

    let server = Server::start_on(data, Options::default());
    let response = server.login_response(JOSE, PASSWORD).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    let id = body["user"]["id"].as_str().unwrap().to_owned();
    assert_eq!(body["user"]["email"], "jos\u{e9}@xn--bcher-kva.example");
    for spelling in SAME {
        let response = server.login_response(spelling, PASSWORD).await;
        assert_eq!(response.status(), StatusCode::OK, "{spelling:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["user"]["id"], id.as_str(), "{spelling:?}");
    }
    for spelling in HIDDEN {
        let response = server.login_response(spelling, PASSWORD).await;
        expect_error(response, StatusCode::UNAUTHORIZED).await;
    }
}

#[tokio::test]
async fn a_client_sending_nfd_logs_in_to_an_account_created_with_nfc() {
    let data = Arc::new(DataDir::new());
    data.add_user("ren\u{e9}e@example.com", &[]);
    let server = Server::start_on(data, Options::default());
    let nfd = "rene\u{301}e@example.com";
    server.login(nfd, PASSWORD).await;
    let response = server
        .send_json(
            Method::POST,
            "/token",
            None,
            json!({"email": nfd, "password": PASSWORD}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_hidden_character_is_a_clear_400_invalid_email() {
    let server = Server::start();
    server.data.add_user("bob@example.com", &[]);
    let admin = server.login_alice().await;
    let response = server
        .send_json(
            Method::PATCH,
            "/admin/users/b\u{200b}ob@example.com",
            Some(&admin),
            json!({"disabled": true}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_email");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("zero-width space"),
        "{body}"
    );
    // Another spelling of bob's address names bob.
    let response = server
        .send_json(
            Method::PATCH,
            "/admin/users/BOB@EXAMPLE.COM.",
            Some(&admin),
            json!({"roles": ["member"]}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["user"]["email"], "bob@example.com");
}

#[tokio::test]
async fn every_spelling_draws_from_one_login_budget() {
    let data = Arc::new(DataDir::new());
    data.add_user(JOSE, &[]);
    let server = Server::start_on(
        data,
        Options::default()
            .env("TESSERA_LOGIN_ACCOUNT_BURST", 3)
            .env("TESSERA_LOGIN_ACCOUNT_PER_MINUTE", 1),
    );
    for spelling in &SAME[..3] {
        let response = server.login_response(spelling, "wrong password").await;
        expect_error(response, StatusCode::UNAUTHORIZED).await;
    }
    let response = server.login_response(SAME[3], "wrong password").await;
    assert_eq!(
        expect_error(response, StatusCode::TOO_MANY_REQUESTS).await,
        "too_many_attempts"
    );
}

#[tokio::test]
async fn an_address_that_mixes_scripts_is_warned_about_and_logged_by_id_only() {
    let data = Arc::new(DataDir::new());
    // "paypal" with a Cyrillic "а".
    let spoof = "p\u{430}ypal@example.com";
    let out = data.cli(
        &["user", "add", spoof, "--password-stdin"],
        &format!("{PASSWORD}\n"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("mixes scripts"), "{}", stderr(&out));
    let plain = data.cli(
        &["user", "add", "plain@example.com", "--password-stdin"],
        &format!("{PASSWORD}\n"),
    );
    assert!(!stderr(&plain).contains("mixes scripts"));
    // Import warns the same way ("google" with two Cyrillic "о").
    let hash = tessera_core::PasswordHasher::new(1024, 1, 1)
        .unwrap()
        .hash(&tessera_core::Password::new(PASSWORD))
        .unwrap();
    let file = data.path().join("import.json");
    std::fs::write(
        &file,
        json!([{"email": "g\u{43e}\u{43e}gle@example.com", "hash": hash.as_str()}]).to_string(),
    )
    .unwrap();
    let out = data.cli(&["user", "import", file.to_str().unwrap()], "");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("mixes scripts"), "{}", stderr(&out));

    let server = Server::start_on(data, Options::default());
    let response = server.login_response(spoof, PASSWORD).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    let id = body["user"]["id"].as_str().unwrap().to_owned();
    let logs = server.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("mixes scripts"))
        .unwrap_or_else(|| panic!("no warning in:\n{logs}"));
    assert!(line.contains(&id), "{line}");
    assert!(!logs.contains(spoof) && !logs.contains("ypal@"), "{logs}");
}

/// A data directory written by schema 5 (the old rules: trimmed and
/// lower-cased), with three spellings of one address.
#[tokio::test]
async fn old_rows_are_migrated_and_collisions_reported() {
    let data = Arc::new(DataDir::new());
    data.add_user("old@example.com", &[]);
    let db = rusqlite::Connection::open(data.path().join("tessera.db")).unwrap();
    let (oldest, hash): (String, String) = db
        .query_row("SELECT id, password_hash FROM users", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    // Migration 6 changes rows, not tables: schema 5 plus old rows.
    db.execute(
        "UPDATE users SET email = ?1, created_at = 1",
        ["jose\u{301}@b\u{fc}cher.example"],
    )
    .unwrap();
    let nfc = uuid_like(1);
    let hidden = uuid_like(2);
    for (id, email, at) in [
        (&nfc, "jos\u{e9}@b\u{fc}cher.example", 2),
        (&hidden, "jos\u{200b}\u{e9}@b\u{fc}cher.example", 3),
    ] {
        db.execute(
            "INSERT INTO users (id, email, roles, disabled, password_hash, created_at, \
             email_verified) VALUES (?1, ?2, '', 0, ?3, ?4, 1)",
            rusqlite::params![id, email, hash, at],
        )
        .unwrap();
    }
    // What migrations 7 to 12 added, undone: schema 5 as it was (12's
    // column goes with audit_log).
    db.execute_batch(
        "ALTER TABLE sessions DROP COLUMN email_verified;
         DROP TABLE tickets;
         DROP TABLE api_keys;
         DROP TABLE audit_log;
         CREATE TABLE audit_events (
             at INTEGER NOT NULL, kind TEXT NOT NULL, user_id TEXT, detail TEXT NOT NULL);
         DROP TABLE mail_outbox;
         PRAGMA user_version = 5;",
    )
    .unwrap();
    drop(db);

    let server = Server::start_on(Arc::clone(&data), Options::default());
    let logs = server.logs();
    for id in [&nfc, &hidden] {
        assert!(
            logs.lines()
                .any(|l| l.contains(id.as_str()) && l.contains("left as it was")),
            "{id} not reported:\n{logs}"
        );
    }
    assert!(
        !logs.contains("b\u{fc}cher"),
        "addresses stay out of the log"
    );
    // The oldest account has the canonical spelling: every spelling logs in to it.
    for typed in [JOSE, "jose\u{301}@xn--bcher-kva.example"] {
        let response = server.login_response(typed, PASSWORD).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["user"]["id"], oldest.as_str());
        assert_eq!(body["user"]["email"], "jos\u{e9}@xn--bcher-kva.example");
    }
    drop(server);

    let out = data.cli(&["migrate"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("2 accounts keep an address"), "{stdout}");
    let out = data.cli(&["user", "collisions", "--json"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    let listed: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    let by_user = |id: &str| {
        listed
            .iter()
            .find(|c| c["user"] == id)
            .unwrap_or_else(|| panic!("{id} not listed: {listed:?}"))
            .clone()
    };
    assert_eq!(by_user(&nfc)["holder"], oldest.as_str());
    assert_eq!(
        by_user(&nfc)["canonical"],
        "jos\u{e9}@xn--bcher-kva.example"
    );
    assert_eq!(by_user(&hidden)["canonical"], Value::Null);
    assert_eq!(user_count(&data), 3, "nothing merged or deleted");
}

fn uuid_like(n: u8) -> String {
    format!("00000000-0000-4000-8000-0000000000{n:02x}")
}

/// `psql -c SQL` on database `db` of the local PostgreSQL.
fn psql(db: &str, sql: &str) {
    let out = std::process::Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", db, "-qc", sql])
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A throwaway database on the local PostgreSQL, dropped afterwards.
struct TempDb(String);

impl TempDb {
    fn create() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!("tessera_addr_{}_{nanos}", std::process::id());
        psql("postgres", &format!("CREATE DATABASE {name}"));
        Self(name)
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        psql(
            "postgres",
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.0),
        );
    }
}

/// The same upgrade on PostgreSQL (schema 2 → 3), through `tessera migrate`.
#[test]
fn old_rows_in_postgres_are_migrated_by_tessera_migrate() {
    let db = TempDb::create();
    let url = format!("postgres://postgres@127.0.0.1:5432/{}", db.0);
    let env = [
        ("TESSERA_USERS", "postgres"),
        ("TESSERA_DATABASE_URL", url.as_str()),
    ];
    let data = DataDir::new();
    let out = data.cli_with_env(
        &["user", "add", "old@example.com", "--password-stdin"],
        &format!("{PASSWORD}\n"),
        &env,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let nfc = uuid_like(7);
    psql(
        &db.0,
        &format!(
            "UPDATE users SET email = 'jose\u{301}@b\u{fc}cher.example', created_at = 1;
             INSERT INTO users (id, email, roles, disabled, password_hash, created_at, email_verified)
               SELECT '{nfc}', 'jos\u{e9}@b\u{fc}cher.example', roles, disabled, password_hash, 2, TRUE
               FROM users;
             DROP TABLE tickets;
             DROP TABLE api_keys;
             DROP INDEX audit_events_by_user;
             DROP INDEX audit_events_by_kind;
             ALTER TABLE audit_events DROP COLUMN actor_kind, DROP COLUMN actor_id,
               DROP COLUMN ip, DROP COLUMN user_agent, DROP COLUMN session,
               DROP COLUMN request_id;
             DROP TABLE mail_outbox;
             UPDATE tessera_schema SET version = 2;"
        ),
    );
    let out = data.cli_with_env(&["migrate"], "", &env);
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("1 accounts keep an address"), "{stdout}");
    assert!(stdout.contains(&nfc), "{stdout}");
    let out = data.cli_with_env(&["user", "list", "--json"], "", &env);
    let users: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let emails: Vec<&str> = users.iter().map(|u| u["email"].as_str().unwrap()).collect();
    assert!(
        emails.contains(&"jos\u{e9}@xn--bcher-kva.example"),
        "{emails:?}"
    );
    assert!(
        emails.contains(&"jos\u{e9}@b\u{fc}cher.example"),
        "{emails:?}"
    );
}
