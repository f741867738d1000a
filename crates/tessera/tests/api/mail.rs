//! Mail settings through the binary: the mailer they configure shows in
//! `/admin/v1/health`, the SMTP URL's password shows nowhere, and bad mail settings
//! stop `tessera serve` at start. (Sending itself is tested against a real
//! SMTP server in `crates/tessera-axum/tests/mail.rs`.)

use std::process::Command;
use std::time::Duration;

use crate::helpers::*;

const SMTP_URL: &str = "smtp://robot:s3cret-pa55@127.0.0.1:1";

#[tokio::test]
async fn the_configured_mailer_shows_in_admin_health() {
    let server = Server::start_with(Options::default().env("TESSERA_MAIL", "file"));
    let body = server.admin_health().await;
    assert_eq!(body["mail"]["transport"], "file", "{body}");
    assert_eq!(body["mail"]["pending"], 0);
    assert_eq!(body["mail"]["undeliverable"], 0);

    let server = Server::start_with(
        Options::default()
            .env("TESSERA_MAIL", "smtp")
            .env("TESSERA_SMTP_URL", SMTP_URL)
            .env("TESSERA_SMTP_INSECURE", "true"),
    );
    let body = server.admin_health().await;
    assert_eq!(body["mail"]["transport"], "smtp", "{body}");
    assert!(!server.logs().contains("s3cret-pa55"), "{}", server.logs());

    let server = Server::start();
    let body = server.admin_health().await;
    assert_eq!(body["mail"]["transport"], "none", "the default");
    let anonymous: serde_json::Value = server.get("/health", None).await.json().await.unwrap();
    assert_eq!(
        anonymous,
        serde_json::json!({"status": "ok"}),
        "nothing about mail"
    );
}

#[test]
fn config_print_redacts_the_smtp_url() {
    let out = Command::new(BIN)
        .args(["config", "print"])
        .env_remove("TESSERA_CONFIG")
        .env("TESSERA_MAIL", "smtp")
        .env("TESSERA_SMTP_URL", SMTP_URL)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("mail = \"smtp\""), "{text}");
    assert!(text.contains("smtp_url = \"<redacted>\""), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
}

/// Runs `tessera serve` with `env`; it must exit (failing) by itself.
fn serve_fails(data: &DataDir, env: &[(&str, &str)]) -> String {
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .env_remove("TESSERA_CONFIG")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("tessera serve started despite bad mail settings");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn bad_mail_settings_stop_serve_and_name_the_setting() {
    let data = DataDir::new();
    let templates = data.path().join("templates");
    std::fs::create_dir_all(&templates).unwrap();
    std::fs::write(templates.join("reset_password.html"), "{% if %}").unwrap();
    let templates = templates.to_str().unwrap();
    for (env, named) in [
        (vec![("TESSERA_MAIL", "smtp")], "smtp_url"),
        (
            vec![
                ("TESSERA_MAIL", "smtp"),
                ("TESSERA_SMTP_URL", "https://relay.example"),
            ],
            "smtp_url",
        ),
        (
            vec![
                ("TESSERA_MAIL", "smtp"),
                ("TESSERA_SMTP_URL", SMTP_URL),
                ("TESSERA_MAIL_TEMPLATES", templates),
            ],
            "reset_password.html",
        ),
        (
            vec![
                ("TESSERA_MAIL", "smtp"),
                ("TESSERA_SMTP_URL", SMTP_URL),
                ("TESSERA_SMTP_TLS_CA", "/nonexistent/ca.pem"),
            ],
            "smtp_tls_ca",
        ),
        (
            vec![
                ("TESSERA_MAIL", "file"),
                ("TESSERA_MAIL_FROM", "not an address"),
            ],
            "mail_from",
        ),
    ] {
        let output = serve_fails(&data, &env);
        assert!(output.contains(named), "{env:?}: {output}");
        assert!(!output.contains("s3cret"), "{env:?}: {output}");
    }
}
