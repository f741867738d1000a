//! PostgreSQL over TLS (`database_url` with libpq's `sslmode`,
//! `sslrootcert`): a throwaway PostgreSQL that accepts TLS only
//! (`hostssl`), with a certificate for `localhost` from a CA the test made.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tessera_testkit::{TestCa, TlsPostgres};

use crate::helpers::*;

/// A TLS-only PostgreSQL with a certificate for `localhost`, and its CA.
fn postgres() -> (TestCa, TlsPostgres) {
    let ca = TestCa::new("tessera postgres test CA");
    let server = ca.issue(&["localhost"], 1, 2);
    let postgres = TlsPostgres::start(&server);
    (ca, postgres)
}

fn env(url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("TESSERA_USERS", "postgres".to_owned()),
        ("TESSERA_DATABASE_URL", url.to_owned()),
    ]
}

/// `tessera serve` with `url`, expected to stop at start-up: what it said.
fn start_up_error(url: &str) -> String {
    let data = DataDir::new();
    let started = Instant::now();
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .envs(env(url))
        .env("TESSERA_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(20) {
            child.kill().unwrap();
            panic!("tessera serve did not stop within 20 s for {url}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        stderr.contains("database_url"),
        "the error names the setting: {stderr}"
    );
    let first_line = stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or("");
    let why = first_line.rsplit(": ").next().unwrap_or("");
    assert_eq!(
        stderr.matches(why).count(),
        1,
        "said once, not repeated by the error chain: {stderr}"
    );
    stderr
}

/// Adds carol through the CLI and logs her in through a server, both on `url`.
async fn login_through(url: &str, mode: &str) {
    let env = env(url);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = DataDir::new().cli_with_env(
        &["user", "add", "carol@example.com", "--password-stdin"],
        &format!("{PASSWORD}\n"),
        &env,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let options = env
        .iter()
        .fold(Options::default(), |options, (k, v)| options.env(k, v));
    let server = Server::start_on(Arc::new(DataDir::new()), options);
    let response = server.login_response("carol@example.com", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        server.logs().contains(&format!("sslmode={mode}")),
        "{}",
        server.logs()
    );
}

#[tokio::test]
async fn verify_full_connects_and_users_log_in() {
    let (ca, postgres) = postgres();
    let root = ca.cert();
    let url = postgres.url(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={}", root.display()),
    );
    login_through(&url, "verify-full").await;
}

#[tokio::test]
async fn verify_full_refuses_a_wrong_host_name_and_an_untrusted_ca() {
    let (ca, postgres) = postgres();
    let root = ca.cert().display().to_string();
    // The certificate names localhost only.
    let error = start_up_error(&postgres.url(
        "127.0.0.1",
        &format!("sslmode=verify-full&sslrootcert={root}"),
    ));
    assert!(
        error.contains("does not name the host") && error.contains("sslmode=verify-full"),
        "{error}"
    );
    let stranger = TestCa::new("a CA nobody trusts here");
    for mode in ["verify-full", "verify-ca", "require"] {
        let error = start_up_error(&postgres.url(
            "localhost",
            &format!("sslmode={mode}&sslrootcert={}", stranger.cert().display()),
        ));
        assert!(
            error.contains("not signed by a trusted root"),
            "{mode}: {error}"
        );
    }
}

#[tokio::test]
async fn verify_ca_and_require_accept_a_host_name_the_certificate_lacks() {
    let (ca, postgres) = postgres();
    let root = ca.cert().display().to_string();
    login_through(
        &postgres.url(
            "127.0.0.1",
            &format!("sslmode=verify-ca&sslrootcert={root}"),
        ),
        "verify-ca",
    )
    .await;
    // require without sslrootcert: encrypted, nothing verified (libpq).
    let out = DataDir::new().cli_with_env(
        &["migrate"],
        "",
        &[
            ("TESSERA_USERS", "postgres"),
            (
                "TESSERA_DATABASE_URL",
                &postgres.url("127.0.0.1", "sslmode=require"),
            ),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn plain_text_against_a_tls_only_server_is_a_clear_error() {
    let (_ca, postgres) = postgres();
    let started = Instant::now();
    let error = start_up_error(&postgres.url("localhost", "sslmode=disable"));
    assert!(error.contains("refuses plain-text connections"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(10), "no hang");
}

#[tokio::test]
async fn a_client_certificate_from_sslcert_and_sslkey_is_presented() {
    let ca = TestCa::new("tessera postgres test CA");
    let server = ca.issue(&["localhost"], 1, 2);
    // `cert` authentication: the certificate's common name is the user.
    let client = ca.issue(&["postgres"], 2, 2);
    let postgres = TlsPostgres::start_requiring_client_certificates(&server, &ca.cert());
    let root = ca.cert().display().to_string();
    let error = start_up_error(&postgres.url(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={root}"),
    ));
    assert!(
        error.contains("connection requires a valid client certificate"),
        "{error}"
    );
    login_through(
        &postgres.url(
            "localhost",
            &format!(
                "sslmode=verify-full&sslrootcert={root}&sslcert={}&sslkey={}",
                client.cert.display(),
                client.key.display()
            ),
        ),
        "verify-full",
    )
    .await;
}
