//! Users in PostgreSQL (`users = "postgres"`), the cluster's user store.

use std::process::Command;
use std::sync::Arc;

use reqwest::StatusCode;

use crate::helpers::*;

/// A fresh database on the local PostgreSQL, dropped afterwards.
pub struct Database(pub String);

impl Database {
    pub fn create() -> Self {
        let name = format!(
            "tessera_it_{}",
            std::process::id() as u64 * 1000 + rand_suffix()
        );
        psql(&format!("CREATE DATABASE {name}"));
        Self(name)
    }

    pub fn url(&self) -> String {
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

/// A throwaway PostgreSQL cluster on a free port, which tests may stop and
/// start (the shared one on 5432 must stay up for everyone else).
struct ThrowawayPostgres {
    dir: tempfile::TempDir,
    bin: std::path::PathBuf,
    port: u16,
}

impl ThrowawayPostgres {
    fn start() -> Self {
        let version = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL binaries")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .max()
            .unwrap();
        let bin = version.join("bin");
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        assert!(
            Command::new("chown")
                .args(["-R", "postgres"])
                .arg(dir.path())
                .status()
                .unwrap()
                .success()
        );
        let data = dir.path().join("pg");
        let initdb = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(bin.join("initdb"))
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(&data)
            .output()
            .unwrap();
        assert!(
            initdb.status.success(),
            "{}",
            String::from_utf8_lossy(&initdb.stderr)
        );
        let pg = Self { dir, bin, port };
        pg.pg_ctl("start");
        pg
    }

    fn pg_ctl(&self, action: &str) {
        let data = self.dir.path().join("pg");
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.path().display()
        );
        let mut command = Command::new("runuser");
        command
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .args(["-w", "-o", &options]);
        if action == "stop" {
            command.args(["-m", "immediate"]);
        }
        command
            .arg("-l")
            .arg(self.dir.path().join("log"))
            .arg(action);
        let out = command.output().unwrap();
        assert!(
            out.status.success(),
            "pg_ctl {action}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for ThrowawayPostgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("pg");
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

#[tokio::test]
async fn with_postgres_down_logins_fail_closed_and_sessions_keep_working() {
    let pg = ThrowawayPostgres::start();
    let url = pg.url();
    let env: [(&str, &str); 2] = [
        ("TESSERA_USERS", "postgres"),
        ("TESSERA_DATABASE_URL", url.as_str()),
    ];
    let data = Arc::new(DataDir::new());
    let out = data.cli_with_env(
        &["user", "add", "alice@example.com", "--password-stdin"],
        &format!("{PASSWORD}\n"),
        &env,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let options = env.iter().fold(Options::default(), |o, (k, v)| o.env(k, v));
    let server = Server::start_on(data, options);
    let cookie = server.login_alice().await;
    let access = server.token_alice().await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    pg.pg_ctl("stop");

    let started = std::time::Instant::now();
    let login = server.login_response("alice@example.com", PASSWORD).await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "bounded: {:?}",
        started.elapsed()
    );
    assert!(session_cookie(login.headers()).is_none());
    assert!(login.headers().contains_key("retry-after"));
    assert_eq!(
        expect_error(login, StatusCode::SERVICE_UNAVAILABLE).await,
        "store_unavailable"
    );
    assert_eq!(
        server.get("/profile", Some(&cookie)).await.status(),
        StatusCode::OK,
        "sessions keep working"
    );
    let bearer = server
        .request(reqwest::Method::GET, "/profile")
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), StatusCode::OK, "tokens keep working");
    let mut ready = serde_json::Value::Null;
    for _ in 0..30 {
        let response = server.get("/health", None).await;
        assert_eq!(response.status(), StatusCode::OK, "the node still serves");
        ready = server
            .get("/health/ready", None)
            .await
            .json()
            .await
            .unwrap();
        if ready["failed"] == serde_json::json!(["user_store"]) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        ready,
        serde_json::json!({"status": "unavailable", "failed": ["user_store"]}),
        "readiness names the user store, and only it"
    );

    // Back again: service resumes without a restart.
    pg.pg_ctl("start");
    let mut status = StatusCode::SERVICE_UNAVAILABLE;
    for _ in 0..50 {
        status = server
            .login_response("alice@example.com", PASSWORD)
            .await
            .status();
        if status == StatusCode::OK {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, StatusCode::OK);
}
