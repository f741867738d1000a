use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

#[test]
fn user_add_refuses_duplicates_and_weak_passwords() {
    let data = DataDir::new();
    data.add_user("alice@example.com", &["admin"]);
    let dup = data.cli(
        &["user", "add", "ALICE@example.com", "--password-stdin"],
        &format!("{PASSWORD}\n"),
    );
    assert!(!dup.status.success());
    assert!(String::from_utf8_lossy(&dup.stderr).contains("already exists"));
    let weak = data.cli(
        &["user", "add", "weak@example.com", "--password-stdin"],
        "short\n",
    );
    assert!(!weak.status.success());
    assert!(String::from_utf8_lossy(&weak.stderr).contains("at least 8"));
}

#[test]
fn user_add_without_a_terminal_asks_for_password_stdin() {
    let data = DataDir::new();
    let out = data.cli(&["user", "add", "x@example.com"], "");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--password-stdin"));
}

#[test]
fn user_list_shows_roles_and_status_as_json() {
    let data = DataDir::new();
    data.add_user("alice@example.com", &["admin", "billing"]);
    data.add_user("bob@example.com", &[]);
    assert!(
        data.cli(&["user", "disable", "bob@example.com"], "")
            .status
            .success()
    );
    let out = data.cli(&["user", "list", "--json"], "");
    let users: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(users[0]["email"], "alice@example.com");
    assert_eq!(users[0]["roles"], serde_json::json!(["admin", "billing"]));
    assert_eq!(users[1]["disabled"], true);
    let text = String::from_utf8(data.cli(&["user", "list"], "").stdout).unwrap();
    assert!(
        text.contains("bob@example.com") && text.contains("disabled"),
        "{text}"
    );
    assert!(!text.contains("argon2"), "hashes are never listed");
}

#[test]
fn commands_on_unknown_users_fail_clearly() {
    let data = DataDir::new();
    for args in [
        vec!["user", "disable", "ghost@example.com"],
        vec!["user", "set-role", "ghost@example.com", "--role", "x"],
    ] {
        let out = data.cli(&args, "");
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("no user"),
            "{args:?}"
        );
    }
}

#[test]
fn import_is_all_or_nothing_and_skips_existing_users() {
    let data = DataDir::new();
    data.add_user("exists@example.com", &[]);
    let file = data.path().join("users.json");
    std::fs::write(
        &file,
        r#"[{"email": "ok@example.com", "hash": "$2b$10$dsNiuBf/R.d0fcn74wij7ux/uc2lWzdXn.QzmxssJERi6hVFMt4vO", "roles": ["member"]},
            {"email": "bad@example.com", "hash": "plaintext-password"}]"#,
    )
    .unwrap();
    let out = data.cli(&["user", "import", file.to_str().unwrap()], "");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("record 2"));
    let listed = String::from_utf8(data.cli(&["user", "list"], "").stdout).unwrap();
    assert!(!listed.contains("ok@example.com"), "nothing imported");

    std::fs::write(
        &file,
        r#"[{"email": "ok@example.com", "hash": "$2b$10$dsNiuBf/R.d0fcn74wij7ux/uc2lWzdXn.QzmxssJERi6hVFMt4vO", "roles": ["member"]},
            {"email": "exists@example.com", "password_hash": "$2b$10$dsNiuBf/R.d0fcn74wij7ux/uc2lWzdXn.QzmxssJERi6hVFMt4vO"}]"#,
    )
    .unwrap();
    let out = data.cli(&["user", "import", file.to_str().unwrap()], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("imported 1 users, skipped 1"));
}

#[tokio::test]
async fn passwd_changes_the_password_and_ends_every_session() {
    let server = Server::start();
    let cookie = server.login_alice().await;
    let out = server.data.cli(
        &["user", "passwd", "alice@example.com", "--password-stdin"],
        "a brand new password\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    expect_error(
        server.get("/profile", Some(&cookie)).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    expect_error(
        server.login_response("alice@example.com", PASSWORD).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(
        server
            .login_response("alice@example.com", "a brand new password")
            .await
            .status(),
        StatusCode::OK
    );
}
