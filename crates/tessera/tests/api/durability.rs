use std::sync::Arc;

use reqwest::{Method, StatusCode};

use crate::helpers::*;

#[tokio::test]
async fn sessions_survive_a_restart() {
    let mut server = Server::start();
    let cookie = server.login_alice().await;
    server.restart();
    assert_eq!(
        server.get("/profile", Some(&cookie)).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn kill_9_loses_no_acknowledged_login_or_logout() {
    let mut server = Server::start();
    let logged_out = server.login_alice().await;
    let mut kept = Vec::new();
    for _ in 0..5 {
        kept.push(server.login_alice().await);
    }
    let response = with_cookie(server.request(Method::POST, "/logout"), Some(&logged_out))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // SIGKILL right after the last acknowledgement: nothing gets flushed later.
    server.restart();
    for cookie in &kept {
        assert_eq!(
            server.get("/profile", Some(cookie)).await.status(),
            StatusCode::OK
        );
    }
    expect_error(
        server.get("/profile", Some(&logged_out)).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
}

#[tokio::test]
async fn the_memory_store_says_sessions_die_with_the_process_and_they_do() {
    let data = Arc::new(DataDir::new());
    data.add_user("alice@example.com", &["admin"]);
    let mut server = Server::start_on(
        Arc::clone(&data),
        Options::default().arg("--store").arg("memory"),
    );
    assert!(
        server.logs().contains("process memory"),
        "{}",
        server.logs()
    );
    let cookie = server.login_alice().await;
    assert_eq!(
        server.get("/profile", Some(&cookie)).await.status(),
        StatusCode::OK
    );
    server.restart();
    expect_error(
        server.get("/profile", Some(&cookie)).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
}

#[tokio::test]
async fn the_database_never_holds_a_working_session_id() {
    let server = Server::start();
    let cookie = server.login_alice().await;
    let mut scanned = 0;
    for file in files_below(server.data.path()) {
        let bytes = std::fs::read(&file).unwrap();
        scanned += bytes.len();
        assert!(
            !bytes.windows(cookie.len()).any(|w| w == cookie.as_bytes()),
            "session id found in {}",
            file.display()
        );
    }
    assert!(scanned > 0);
    // What the store holds is a hash, which as a cookie gets nowhere.
    let db = rusqlite::Connection::open(server.data.path().join("tessera.db")).unwrap();
    let stored: Vec<u8> = db
        .query_row("SELECT id_hash FROM sessions", [], |r| r.get(0))
        .unwrap();
    use base64::Engine as _;
    let as_cookie = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&stored);
    expect_error(
        server.get("/profile", Some(&as_cookie)).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
}

#[tokio::test]
async fn the_data_directory_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let parent = tempfile::tempdir().unwrap();
    let fresh = parent.path().join("fresh-data");
    let out = std::process::Command::new(BIN)
        .args(["user", "list", "--data-dir"])
        .arg(&fresh)
        .output()
        .unwrap();
    assert!(out.status.success());
    let mode = std::fs::metadata(&fresh).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "data dir readable by others: {mode:o}");
}

/// Holds SQLite's write lock from another connection, as a stuck process would.
fn block_writes(data: &DataDir) -> rusqlite::Connection {
    let blocker = rusqlite::Connection::open(data.path().join("tessera.db")).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    blocker
}

#[tokio::test]
async fn a_store_that_cannot_write_fails_closed_with_503() {
    let server = Server::start_with(Options::default().env("TESSERA_SQLITE_BUSY_TIMEOUT", 200));
    let cookie = server.login_alice().await;
    let blocker = block_writes(&server.data);

    let login = server.login_response("alice@example.com", PASSWORD).await;
    assert!(
        session_cookie(login.headers()).is_none(),
        "no cookie without a stored session"
    );
    assert!(login.headers().contains_key("retry-after"));
    assert_eq!(
        expect_error(login, StatusCode::SERVICE_UNAVAILABLE).await,
        "store_unavailable"
    );

    let logout = with_cookie(server.request(Method::POST, "/logout"), Some(&cookie))
        .send()
        .await
        .unwrap();
    assert!(
        set_cookie_header(logout.headers()).is_none(),
        "an unsaved logout is not acknowledged"
    );
    expect_error(logout, StatusCode::SERVICE_UNAVAILABLE).await;

    drop(blocker);
    // The store is back: the logout that failed did not happen, and nothing needs a restart.
    assert_eq!(
        server.get("/profile", Some(&cookie)).await.status(),
        StatusCode::OK
    );
    let logout = with_cookie(server.request(Method::POST, "/logout"), Some(&cookie))
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::OK);
    expect_error(
        server.get("/profile", Some(&cookie)).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
}
