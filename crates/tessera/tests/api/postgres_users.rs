//! Users in PostgreSQL (`users = "postgres"`), the cluster's user store.

use std::process::Command;
use std::sync::Arc;

use reqwest::StatusCode;

use crate::helpers::*;

/// A fresh database on the local PostgreSQL, dropped afterwards.
struct Database(String);

impl Database {
    fn create() -> Self {
        let name = format!(
            "tessera_it_{}",
            std::process::id() as u64 * 1000 + rand_suffix()
        );
        psql(&format!("CREATE DATABASE {name}"));
        Self(name)
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.0)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        psql(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.0));
    }
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
        % 1000
}

fn psql(sql: &str) {
    let out = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-qc",
            sql,
        ])
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn users_live_in_postgres_and_log_in_through_any_node() {
    let db = Database::create();
    let url = db.url();
    let env_ref: [(&str, &str); 2] = [
        ("TESSERA_USERS", "postgres"),
        ("TESSERA_DATABASE_URL", url.as_str()),
    ];

    let out = DataDir::new().cli_with_env(&["migrate"], "", &env_ref);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The user is created once, in PostgreSQL, from one machine's data dir...
    let admin_dir = DataDir::new();
    let out = admin_dir.cli_with_env(
        &[
            "user",
            "add",
            "carol@example.com",
            "--role",
            "ops",
            "--password-stdin",
        ],
        &format!("{PASSWORD}\n"),
        &env_ref,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // ...and two nodes with their own data dirs both know her.
    let options = env_ref
        .iter()
        .fold(Options::default(), |o, (k, v)| o.env(k, v));
    let a = Server::start_on(Arc::new(DataDir::new()), options.clone());
    let b = Server::start_on(Arc::new(DataDir::new()), options);
    for node in [&a, &b] {
        let response = node.login_response("carol@example.com", PASSWORD).await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    let rows = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            &db.0,
            "-tAc",
            "SELECT roles FROM users",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&rows.stdout).trim(), "ops");
}

#[tokio::test]
async fn the_database_url_is_redacted_and_required() {
    let out = Command::new(BIN)
        .args(["config", "print"])
        .env(
            "TESSERA_DATABASE_URL",
            "postgres://tessera:hunter2@db.internal/tessera",
        )
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        !text.contains("hunter2") && text.contains("database_url = \"<redacted>\""),
        "{text}"
    );

    let data = DataDir::new();
    let out = data.cli_with_env(&["user", "list"], "", &[("TESSERA_USERS", "postgres")]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("database_url"));
}
