//! The policy for new passwords (NIST SP 800-63B) at `tessera user add` and
//! `passwd`: minimum length setting, common passwords, the address's name,
//! and a breached-password range API (a stub served by the test) that fails
//! open or closed. Never applied at login.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::Arc;

use reqwest::StatusCode;

use crate::helpers::*;

fn add(data: &DataDir, email: &str, password: &str, env: &[(&str, &str)]) -> (bool, String) {
    let out = data.cli_with_env(
        &["user", "add", email, "--password-stdin"],
        &format!("{password}\n"),
        env,
    );
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn common_passwords_and_the_address_name_are_refused_at_user_add() {
    let data = DataDir::new();
    for (password, says) in [
        ("Password123", "most common passwords"),
        ("BASEBALL", "most common passwords"),
        ("short", "at least 8"),
        ("I am Carol.Jones, hi", "e-mail name"),
    ] {
        let (ok, stderr) = add(&data, "carol.jones@example.com", password, &[]);
        assert!(!ok, "{password:?} accepted");
        assert!(stderr.contains(says), "{password:?}: {stderr}");
    }
    let (ok, stderr) = add(&data, "carol.jones@example.com", PASSWORD, &[]);
    assert!(ok, "{stderr}");
}

#[test]
fn the_minimum_length_is_a_setting_and_never_below_8() {
    let data = DataDir::new();
    let twelve = [("TESSERA_PASSWORD_MIN_LENGTH", "12")];
    let (ok, stderr) = add(&data, "dan@example.com", "eleven char", &twelve);
    assert!(!ok);
    assert!(stderr.contains("at least 12"), "{stderr}");
    assert!(add(&data, "dan@example.com", "twelve chars", &twelve).0);
    let (ok, stderr) = add(
        &data,
        "eve@example.com",
        PASSWORD,
        &[("TESSERA_PASSWORD_MIN_LENGTH", "6")],
    );
    assert!(!ok);
    assert!(stderr.contains("password_min_length"), "{stderr}");
}

#[tokio::test]
async fn passwd_applies_the_policy_and_login_never_does() {
    let server = Server::start();
    let out = server.data.cli(
        &["user", "passwd", "alice@example.com", "--password-stdin"],
        "qwertyuiop\n",
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("most common"));
    // An account imported with a common password still logs in.
    let hash = tessera_core::PasswordHasher::new(1024, 1, 1)
        .unwrap()
        .hash(&tessera_core::Password::new("iloveyou"))
        .unwrap();
    let file = server.data.path().join("import.json");
    std::fs::write(
        &file,
        serde_json::json!([{"email": "weak@example.com", "hash": hash.as_str()}]).to_string(),
    )
    .unwrap();
    let out = server
        .data
        .cli(&["user", "import", file.to_str().unwrap()], "");
    assert!(out.status.success());
    let response = server.login_response("weak@example.com", "iloveyou").await;
    assert_eq!(response.status(), StatusCode::OK);
}

/// A range API serving `ranges` (prefix → body) on a free port, one thread
/// per connection; every other path is a 404.
struct RangeStub {
    url: String,
    requests: Arc<std::sync::Mutex<Vec<String>>>,
}

impl RangeStub {
    fn start(ranges: HashMap<String, String>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut first = String::new();
                if reader.read_line(&mut first).is_err() {
                    continue;
                }
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).unwrap_or(0) <= 2 {
                        break;
                    }
                }
                let path = first.split_whitespace().nth(1).unwrap_or("").to_owned();
                seen.lock().unwrap().push(path.clone());
                let body = path
                    .strip_prefix("/range/")
                    .and_then(|prefix| ranges.get(prefix));
                let response = match body {
                    Some(body) => format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    ),
                    None => {
                        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            .to_owned()
                    }
                };
                let _ = stream.write_all(response.as_bytes());
            }
        });
        Self { url, requests }
    }
}

/// The upper-case hex SHA-1 of a password (ASCII, so already normalised),
/// split after 5 characters.
fn range_key(password: &str) -> (String, String) {
    let digest = sha1_hex(password);
    (digest[..5].to_owned(), digest[5..].to_owned())
}

fn sha1_hex(text: &str) -> String {
    // The test computes SHA-1 itself, independently of tessera-core.
    let out = std::process::Command::new("sha1sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
            child.wait_with_output()
        })
        .expect("sha1sum");
    String::from_utf8(out.stdout).unwrap()[..40].to_ascii_uppercase()
}

const BREACHED: &str = "summer holidays 2019";
const CLEAN: &str = "violet kettle on the moon";

#[test]
fn a_breached_password_is_refused_and_a_clean_one_accepted() {
    let (breached_prefix, breached_suffix) = range_key(BREACHED);
    let (clean_prefix, _) = range_key(CLEAN);
    let mut ranges = HashMap::new();
    ranges.insert(
        breached_prefix.clone(),
        format!("0018A45C4D1DEF81644B54AB7F969B88D65:3\r\n{breached_suffix}:12345\r\n"),
    );
    // The clean password's range holds other suffixes only (and padding).
    ranges.insert(
        clean_prefix.clone(),
        "00D4F6E8FA6EECAD2A3AA415EEC418D38EC:2\r\n011053FD0102E94D6AE2F8B83D76FAF94F6:0\r\n"
            .to_owned(),
    );
    let stub = RangeStub::start(ranges);
    let data = DataDir::new();
    let env = [("TESSERA_BREACHED_PASSWORD_URL", stub.url.as_str())];
    let (ok, stderr) = add(&data, "fay@example.com", BREACHED, &env);
    assert!(!ok, "a breached password was accepted");
    assert!(stderr.contains("known data breaches"), "{stderr}");
    let (ok, stderr) = add(&data, "fay@example.com", CLEAN, &env);
    assert!(ok, "{stderr}");
    // Only the 5-character prefixes left the process.
    let requests = stub.requests.lock().unwrap().clone();
    assert_eq!(
        requests,
        vec![
            format!("/range/{breached_prefix}"),
            format!("/range/{clean_prefix}")
        ]
    );
    // Without the service the same password passes the offline rules.
    let (ok, stderr) = add(&data, "gus@example.com", BREACHED, &[]);
    assert!(ok, "{stderr}");
}

#[test]
fn an_unreachable_service_passes_when_open_and_refuses_when_closed() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}");
    let data = DataDir::new();
    let (ok, stderr) = add(
        &data,
        "hal@example.com",
        CLEAN,
        &[
            ("TESSERA_BREACHED_PASSWORD_URL", &url),
            ("TESSERA_BREACHED_PASSWORD_FAIL", "open"),
        ],
    );
    assert!(ok, "{stderr}");
    let (ok, stderr) = add(
        &data,
        "ida@example.com",
        CLEAN,
        &[
            ("TESSERA_BREACHED_PASSWORD_URL", &url),
            ("TESSERA_BREACHED_PASSWORD_FAIL", "closed"),
        ],
    );
    assert!(
        !ok,
        "accepted unchecked with breached_password_fail = closed"
    );
    assert!(stderr.contains("could not be checked"), "{stderr}");
    // A service that answers with an error counts as unreachable.
    let stub = RangeStub::start(HashMap::new());
    let (ok, stderr) = add(
        &data,
        "ida@example.com",
        CLEAN,
        &[
            ("TESSERA_BREACHED_PASSWORD_URL", &stub.url),
            ("TESSERA_BREACHED_PASSWORD_FAIL", "closed"),
        ],
    );
    assert!(!ok);
    assert!(stderr.contains("could not be checked"), "{stderr}");
}

#[test]
fn config_print_shows_the_policy_and_redacts_the_service_url() {
    let out = std::process::Command::new(BIN)
        .args(["config", "print"])
        .env_remove("TESSERA_CONFIG")
        .env("TESSERA_PASSWORD_MIN_LENGTH", "12")
        .env("TESSERA_BREACHED_PASSWORD_FAIL", "closed")
        .env(
            "TESSERA_BREACHED_PASSWORD_URL",
            "http://user:hunter2@127.0.0.1:9",
        )
        .output()
        .unwrap();
    assert!(out.status.success());
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("password_min_length = 12"), "{printed}");
    assert!(
        printed.contains("breached_password_fail = \"closed\""),
        "{printed}"
    );
    assert!(
        printed.contains("breached_password_url = \"<redacted>\""),
        "{printed}"
    );
    assert!(!printed.contains("hunter2"));
}
