use std::time::Duration;

use reqwest::StatusCode;

use crate::helpers::*;

fn short_timeouts(idle: u64, absolute: u64) -> Options {
    Options::default()
        .env("TESSERA_SESSION_IDLE_TIMEOUT", idle)
        .env("TESSERA_SESSION_ABSOLUTE_TIMEOUT", absolute)
}

#[tokio::test]
async fn an_idle_session_expires() {
    let server = Server::start_with(short_timeouts(2, 60));
    let cookie = server.login_alice().await;
    assert_eq!(
        server.get("/profile", Some(&cookie)).await.status(),
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_millis(2300)).await;
    expect_error(
        server.get("/profile", Some(&cookie)).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
}

#[tokio::test]
async fn activity_keeps_a_session_alive_past_the_idle_timeout() {
    let server = Server::start_with(short_timeouts(2, 60));
    let cookie = server.login_alice().await;
    // 5 s of activity every 0.5 s: well past the 2 s idle timeout.
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            server.get("/profile", Some(&cookie)).await.status(),
            StatusCode::OK
        );
    }
}

#[tokio::test]
async fn the_absolute_timeout_ends_even_an_active_session() {
    let server = Server::start_with(short_timeouts(2, 3));
    let cookie = server.login_alice().await;
    let mut last = StatusCode::OK;
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        last = server.get("/profile", Some(&cookie)).await.status();
        if last != StatusCode::OK {
            break;
        }
    }
    assert_eq!(
        last,
        StatusCode::UNAUTHORIZED,
        "still live after the absolute timeout"
    );
}

#[tokio::test]
async fn expired_sessions_are_purged_from_the_store() {
    let server = Server::start_with(short_timeouts(1, 2).env("TESSERA_PURGE_INTERVAL", 1));
    server.login_alice().await;
    let db = rusqlite::Connection::open(server.data.path().join("tessera.db")).unwrap();
    let count = || -> i64 {
        db.query_row("SELECT count(*) FROM sessions", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(count(), 1);
    for _ in 0..40 {
        if count() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("expired session was not purged");
}

#[tokio::test]
async fn invalid_timeouts_are_refused_at_start_up() {
    let data = DataDir::new();
    let out = std::process::Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .env("TESSERA_SESSION_IDLE_TIMEOUT", "100")
        .env("TESSERA_SESSION_ABSOLUTE_TIMEOUT", "10")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("session_idle_timeout"), "{stderr}");
}
