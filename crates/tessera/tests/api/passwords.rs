use reqwest::StatusCode;

use crate::helpers::*;

#[tokio::test]
async fn long_passwords_work_and_are_never_truncated() {
    let server = Server::start();
    let long = "L".repeat(128) + "-tail";
    let out = server.data.cli(
        &["user", "add", "long@example.com", "--password-stdin"],
        &format!("{long}\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        server
            .login_response("long@example.com", &long)
            .await
            .status(),
        StatusCode::OK
    );
    let truncated = &long[..128];
    assert_eq!(
        server
            .login_response("long@example.com", truncated)
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn stored_hashes_are_argon2id_at_owasp_parameters() {
    let server = Server::start();
    let db = rusqlite::Connection::open(server.data.path().join("tessera.db")).unwrap();
    let hash: String = db
        .query_row(
            "SELECT password_hash FROM users WHERE email = 'alice@example.com'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
}

#[tokio::test]
async fn imported_bcrypt_hashes_log_in_and_are_rehashed_to_argon2id() {
    let server = Server::start();
    // "bcrypt-password" hashed by the Python bcrypt library ($2b$, cost 10), as a Node app would store it.
    let file = server.data.path().join("users.csv");
    std::fs::write(
        &file,
        "email,hash,roles\nnode@example.com,$2b$10$dsNiuBf/R.d0fcn74wij7ux/uc2lWzdXn.QzmxssJERi6hVFMt4vO,member\n",
    )
    .unwrap();
    let out = server
        .data
        .cli(&["user", "import", file.to_str().unwrap()], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        server
            .login_response("node@example.com", "wrong-password")
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        server
            .login_response("node@example.com", "bcrypt-password")
            .await
            .status(),
        StatusCode::OK
    );
    let db = rusqlite::Connection::open(server.data.path().join("tessera.db")).unwrap();
    let mut hash = String::new();
    for _ in 0..50 {
        hash = db
            .query_row(
                "SELECT password_hash FROM users WHERE email = 'node@example.com'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        if hash.starts_with("$argon2id$") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "not rehashed: {hash}"
    );
    assert_eq!(
        server
            .login_response("node@example.com", "bcrypt-password")
            .await
            .status(),
        StatusCode::OK
    );
}

/// RFC 8265 OpaqueString: a password set with `é` as one code point (NFC, as
/// most keyboards type it) logs in when a client sends `e` + combining accent
/// (NFD, as macOS file names and some input methods produce), and with a
/// no-break space for the space.
#[tokio::test]
async fn the_same_password_typed_on_another_system_logs_in() {
    let server = Server::start();
    let nfc = "jos\u{e9} p\u{e4}sswort";
    let out = server.data.cli(
        &["user", "add", "jose@example.com", "--password-stdin"],
        &format!("{nfc}\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for typed in [
        nfc,
        "jose\u{301} pa\u{308}sswort",
        "jos\u{e9}\u{a0}p\u{e4}sswort",
    ] {
        let response = server.login_response("jose@example.com", typed).await;
        assert_eq!(response.status(), StatusCode::OK, "{typed:?}");
    }
    let unaccented = server
        .login_response("jose@example.com", "jose passwort")
        .await;
    assert_eq!(unaccented.status(), StatusCode::UNAUTHORIZED);
}
