//! The binary on Redis over TLS: `redis_tls_*` settings, files read by
//! `tessera serve`; a server that requires a client certificate; start-up
//! refused, with the reason, when the certificate cannot be trusted.

use std::process::Command;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use tessera_testkit::{RedisServer, ServerTls, TestCa};

use crate::helpers::*;

fn tls_server(ca: &TestCa) -> RedisServer {
    RedisServer::start_tls(ServerTls {
        server: ca.leaf(&["localhost", "127.0.0.1"]),
        ca: ca.cert(),
        require_client_cert: true,
    })
}

/// Runs `tessera serve` with `env`; it must exit (failing) by itself.
/// Returns what it printed.
fn serve_fails(env: &[(&str, String)]) -> String {
    let data = DataDir::new();
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .env_remove("TESSERA_CONFIG")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("tessera serve started despite bad Redis TLS settings");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("tessera serve said: {out}");
    out
}

#[tokio::test]
async fn sessions_live_in_redis_over_mutual_tls() {
    let ca = TestCa::new("tessera test CA");
    let redis = tls_server(&ca);
    let client = ca.leaf(&["tessera"]);
    let server = Server::start_with(
        Options::default()
            .env("TESSERA_STORE", "redis")
            .env("TESSERA_REDIS_URL", redis.url())
            .env("TESSERA_REDIS_TLS_CA", ca.cert().display())
            .env("TESSERA_REDIS_TLS_CERT", client.cert.display())
            .env("TESSERA_REDIS_TLS_KEY", client.key.display()),
    );
    let cookie = server.login_alice().await;
    assert_eq!(
        server.get("/profile", Some(&cookie)).await.status(),
        StatusCode::OK
    );
    let keys: u64 = redis.cli(&["DBSIZE"]).trim().parse().unwrap();
    assert!(keys > 0, "the session is not on the TLS server");
    let logout = server
        .send_json(Method::POST, "/logout", Some(&cookie), json!({}))
        .await;
    assert_eq!(logout.status(), StatusCode::OK);
    assert_eq!(
        server.get("/profile", Some(&cookie)).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[test]
fn an_untrusted_certificate_or_a_missing_client_certificate_stops_start_up() {
    let ca = TestCa::new("tessera test CA");
    let redis = tls_server(&ca);
    let client = ca.leaf(&["tessera"]);
    let other = TestCa::new("someone else's CA");
    let base = |ca: &TestCa| {
        vec![
            ("TESSERA_STORE", "redis".to_owned()),
            ("TESSERA_REDIS_URL", redis.url()),
            ("TESSERA_REDIS_TIMEOUT", "500".to_owned()),
            ("TESSERA_REDIS_TLS_CA", ca.cert().display().to_string()),
        ]
    };
    let mut untrusted = base(&other);
    untrusted.push(("TESSERA_REDIS_TLS_CERT", client.cert.display().to_string()));
    untrusted.push(("TESSERA_REDIS_TLS_KEY", client.key.display().to_string()));
    let out = serve_fails(&untrusted);
    assert!(
        out.contains("redis_url") && out.contains("UnknownIssuer"),
        "{out}"
    );

    let out = serve_fails(&base(&ca));
    assert!(out.contains("redis_url"), "{out}");
    assert!(out.to_lowercase().contains("certificate"), "{out}");

    let mut half = base(&ca);
    half.push(("TESSERA_REDIS_TLS_CERT", client.cert.display().to_string()));
    let out = serve_fails(&half);
    assert!(
        out.contains("redis_tls_cert and redis_tls_key go together"),
        "{out}"
    );
}
