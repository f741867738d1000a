//! Metrics on their own listener, scraped from the real server and parsed
//! with the Prometheus client's own text parser; request ids; the JSON
//! access log.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

/// One sample: its name and labels.
type Key = (String, BTreeMap<String, String>);

/// The address the server announced for its metrics listener.
fn metrics_address(server: &Server) -> SocketAddr {
    let logs = server.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("metrics on http://"))
        .unwrap_or_else(|| panic!("no metrics listener announced:\n{logs}"));
    line.split("metrics on http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap()
        .parse()
        .unwrap()
}

/// Scrapes `/metrics` and parses it with `prometheus_client`'s parser
/// (`text_string_to_metric_families`): every sample, by name and labels.
async fn scrape(server: &Server) -> BTreeMap<Key, f64> {
    let url = format!("http://{}/metrics", metrics_address(server));
    let response = reqwest::get(&url).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    let mut python = Command::new("python3")
        .args([
            "-c",
            "import json, sys\n\
             from prometheus_client.parser import text_string_to_metric_families\n\
             out = []\n\
             for family in text_string_to_metric_families(sys.stdin.read()):\n\
             \x20   for s in family.samples:\n\
             \x20       out.append([s.name, s.labels, s.value])\n\
             print(json.dumps(out))",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 with prometheus_client (see scripts/test)");
    python
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = python.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the Prometheus parser refused the exposition: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let samples: Vec<(String, BTreeMap<String, String>, f64)> =
        serde_json::from_slice(&out.stdout).unwrap();
    samples
        .into_iter()
        .map(|(name, labels, value)| ((name, labels), value))
        .collect()
}

fn value(samples: &BTreeMap<Key, f64>, name: &str, labels: &[(&str, &str)]) -> f64 {
    let labels: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    samples
        .get(&(name.to_owned(), labels))
        .copied()
        .unwrap_or(0.0)
}

fn with_metrics(options: Options) -> Options {
    options.env("TESSERA_METRICS_LISTEN", "127.0.0.1:0")
}

#[tokio::test]
async fn counters_move_for_the_actions_they_count() {
    let server = Server::start_with(
        with_metrics(Options::default())
            .env("TESSERA_LOGIN_ACCOUNT_BURST", 1)
            .env("TESSERA_LOGIN_ACCOUNT_PER_MINUTE", 1)
            .env("TESSERA_JWT_REFRESH_GRACE", 0),
    );
    let before = scrape(&server).await;

    // A login that succeeds, a wrong password, then the account's budget
    // is spent: throttled.
    let cookie = server.login_alice().await;
    let wrong = server
        .login_response("mallory@example.com", "not the password")
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let throttled = server
        .login_response("mallory@example.com", "not the password")
        .await;
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);

    // A refresh rotated, then the old token again: reuse (no grace), which
    // revokes the family.
    let tokens = server.token_alice().await;
    let first = tokens["refresh_token"].as_str().unwrap();
    let rotated = refresh(&server, first).await;
    assert_eq!(rotated.status(), StatusCode::OK);
    let reused = refresh(&server, first).await;
    assert_eq!(reused.status(), StatusCode::UNAUTHORIZED);

    // An access token revoked by its holder.
    let access = server.token_alice().await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let revoked = server
        .send_json(
            Method::POST,
            "/token/revoke",
            None,
            json!({"token": access}),
        )
        .await;
    assert_eq!(revoked.status(), StatusCode::OK);

    // A logout and a 404.
    let logout = server
        .send_json(Method::POST, "/logout", Some(&cookie), json!({}))
        .await;
    assert!(logout.status().is_success(), "{}", logout.status());
    let missing = server.get("/no/such/route", None).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    let after = scrape(&server).await;
    let moved = |name: &str, labels: &[(&str, &str)]| {
        value(&after, name, labels) - value(&before, name, labels)
    };
    assert_eq!(
        moved("tessera_logins_total", &[("result", "ok")]),
        3.0,
        "alice's login and two tokens"
    );
    assert_eq!(
        moved("tessera_logins_total", &[("result", "bad_credentials")]),
        1.0
    );
    assert_eq!(
        moved("tessera_logins_total", &[("result", "throttled")]),
        1.0
    );
    assert_eq!(
        moved("tessera_refreshes_total", &[("result", "rotated")]),
        1.0
    );
    assert_eq!(
        moved("tessera_refreshes_total", &[("result", "reused")]),
        1.0
    );
    assert_eq!(
        moved("tessera_revocations_total", &[("kind", "family")]),
        1.0
    );
    assert_eq!(
        moved("tessera_revocations_total", &[("kind", "token")]),
        1.0
    );
    assert_eq!(
        moved(
            "tessera_http_requests_total",
            &[("route", "unmatched"), ("method", "GET"), ("status", "404")]
        ),
        1.0
    );
    assert_eq!(
        moved(
            "tessera_http_requests_total",
            &[("route", "/logout"), ("method", "POST"), ("status", "200")]
        ) + moved(
            "tessera_http_requests_total",
            &[("route", "/logout"), ("method", "POST"), ("status", "204")]
        ),
        1.0
    );
    assert_eq!(
        moved(
            "tessera_http_requests_total",
            &[("route", "/login"), ("method", "POST"), ("status", "429")]
        ),
        1.0
    );
    // Latency histograms per route template, a revocation list that grew,
    // hashes timed, stores reported up.
    assert!(
        value(
            &after,
            "tessera_http_request_duration_seconds_count",
            &[("route", "/login"), ("method", "POST")]
        ) >= 3.0
    );
    assert!(
        value(
            &after,
            "tessera_revocation_list_entries",
            &[("kind", "family")]
        ) >= 1.0
    );
    assert!(
        value(
            &after,
            "tessera_revocation_list_entries",
            &[("kind", "token")]
        ) >= 1.0
    );
    assert!(value(&after, "tessera_hash_duration_seconds_count", &[]) >= 4.0);
    assert_eq!(value(&after, "tessera_hash_queue_depth", &[]), 0.0);
    assert_eq!(
        value(&after, "tessera_store_up", &[("store", "sessions")]),
        1.0
    );
    assert_eq!(
        value(&after, "tessera_store_up", &[("store", "users")]),
        1.0
    );
    assert!(after.contains_key(&(
        "tessera_audit_events_dropped_total".to_owned(),
        BTreeMap::new()
    )));
    // Every store call is timed, by store and operation: the logout's
    // session delete, the refresh families created by the two tokens.
    assert!(
        moved(
            "tessera_store_operation_duration_seconds_count",
            &[("store", "sessions"), ("operation", "delete")]
        ) >= 1.0
    );
    assert!(
        moved(
            "tessera_store_operation_duration_seconds_count",
            &[("store", "tokens"), ("operation", "create_family")]
        ) >= 2.0
    );
    assert_eq!(
        value(
            &after,
            "tessera_store_operation_errors_total",
            &[("store", "sessions"), ("operation", "delete")]
        ),
        0.0
    );
    // A 405 keeps its route template; a HEAD of a GET route its own row.
    let head = server
        .request(Method::HEAD, "/health")
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    let wrong_method = server
        .request(Method::PUT, "/profile")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), StatusCode::METHOD_NOT_ALLOWED);
    let last = scrape(&server).await;
    assert_eq!(
        value(
            &last,
            "tessera_http_requests_total",
            &[("route", "/profile"), ("method", "PUT"), ("status", "405")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &last,
            "tessera_http_requests_total",
            &[("route", "/health"), ("method", "HEAD"), ("status", "200")]
        ),
        1.0
    );
    // Labels stay low-cardinality: no address, user, id or token anywhere.
    for (name, labels) in after.keys() {
        for value in labels.values() {
            assert!(
                !value.contains('@') && !value.contains("127.0.0.1") && value.len() < 64,
                "{name} {labels:?}"
            );
        }
    }
}

#[tokio::test]
async fn metrics_have_a_listener_of_their_own() {
    let server = Server::start_with(with_metrics(Options::default()));
    let metrics = metrics_address(&server);
    assert_ne!(metrics.port(), server.addr.port());
    // Not on the public port...
    let public = server.get("/metrics", None).await;
    assert_eq!(public.status(), StatusCode::NOT_FOUND);
    // ...and the API is not on the metrics port.
    let api = reqwest::get(format!("http://{metrics}/health"))
        .await
        .unwrap();
    assert_eq!(api.status(), StatusCode::NOT_FOUND);

    // Off by default: no listener, nothing announced.
    let plain = Server::start();
    assert!(!plain.logs().contains("metrics on"));

    // The same port as the public listener is refused at start-up.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let data = DataDir::new();
    let out = data.cli_with_env(
        &["serve", "--listen", &format!("127.0.0.1:{port}")],
        "",
        &[("TESSERA_METRICS_LISTEN", &format!("0.0.0.0:{port}"))],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("metrics_listen"), "{stderr}");
}

#[tokio::test]
async fn request_ids_are_taken_only_from_trusted_proxies() {
    let untrusted = Server::start();
    let response = untrusted
        .request(Method::GET, "/health")
        .header("x-request-id", "forged-by-the-client")
        .send()
        .await
        .unwrap();
    let id = response.headers()["x-request-id"].to_str().unwrap();
    assert_ne!(id, "forged-by-the-client");
    assert_eq!(id.len(), 32, "generated: {id}");

    let behind_proxy =
        Server::start_with(Options::default().env("TESSERA_TRUSTED_PROXIES", "127.0.0.1/32"));
    let response = behind_proxy
        .request(Method::GET, "/health")
        .header("x-request-id", "from-the-proxy-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "from-the-proxy-42");
    let response = behind_proxy
        .request(Method::GET, "/health")
        .header("x-request-id", "x".repeat(200))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["x-request-id"].len(),
        32,
        "too long: replaced"
    );
}

#[tokio::test]
async fn the_json_access_log_has_one_line_per_request_and_no_secrets() {
    let server = Server::start_with(
        Options::default()
            .env("TESSERA_LOG_FORMAT", "json")
            .env("TESSERA_TRUSTED_PROXIES", "127.0.0.1/32"),
    );
    let login = server.login_response("alice@example.com", PASSWORD).await;
    let login_id = login.headers()["x-request-id"].to_str().unwrap().to_owned();
    let cookie = session_cookie(login.headers()).unwrap();
    let profile = server
        .request(Method::GET, "/profile")
        .header("cookie", format!("{COOKIE}={cookie}"))
        .header("x-forwarded-for", "198.51.100.23")
        .header("x-request-id", "proxy-id-1")
        .send()
        .await
        .unwrap();
    assert_eq!(profile.status(), StatusCode::OK);
    let handle = profile.json::<Value>().await.unwrap()["session"]["handle"]
        .as_str()
        .map(str::to_owned);
    let tokens = server.token_alice().await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let bearer = bearer(&server, "/profile", &access).await;
    assert_eq!(bearer.status(), StatusCode::OK);
    let wrong = server
        .login_response("alice@example.com", "wrong password!")
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);

    // The log lines of the last requests are written as they finish.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let logs = server.logs();
    let lines: Vec<Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let access_lines: Vec<&Value> = lines
        .iter()
        .filter(|l| l["target"] == "tessera::access")
        .collect();
    assert_eq!(access_lines.len(), 5, "one line per request:\n{logs}");
    let login_line = access_lines[0];
    assert_eq!(login_line["method"], "POST");
    assert_eq!(login_line["route"], "/login");
    assert_eq!(login_line["status"], 200);
    assert!(login_line["latency_us"].as_u64().is_some());
    assert_eq!(login_line["client"], "127.0.0.1");
    assert_eq!(login_line["request_id"], login_id.as_str());
    let profile_line = access_lines[1];
    assert_eq!(profile_line["route"], "/profile");
    assert_eq!(profile_line["request_id"], "proxy-id-1");
    assert_eq!(
        profile_line["client"], "198.51.100.23",
        "through trusted_proxies"
    );
    assert_eq!(profile_line["session"].as_str(), handle.as_deref());
    // Every line a request writes carries its id: the login's own line,
    // not only the access log's.
    let login_event = lines
        .iter()
        .find(|l| l["target"] == "tessera_axum::routes::login")
        .unwrap_or_else(|| panic!("no line from the login route:\n{logs}"));
    assert_eq!(
        login_event["request_id"],
        login_id.as_str(),
        "{login_event}"
    );
    // Lines written outside any request carry none.
    let listening = lines
        .iter()
        .find(|l| l["target"] == "tessera::serve")
        .unwrap();
    assert!(listening.get("request_id").is_none(), "{listening}");
    for secret in [
        cookie.as_str(),
        access.as_str(),
        tokens["refresh_token"].as_str().unwrap(),
        PASSWORD,
        "wrong password!",
        "alice@example.com",
    ] {
        assert!(!logs.contains(secret), "{secret} in the log:\n{logs}");
    }
}

#[tokio::test]
async fn the_metrics_listener_holds_few_connections_per_client() {
    use tokio::io::AsyncReadExt as _;

    let server = Server::start_with(with_metrics(Options::default()));
    let addr = metrics_address(&server);
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The fifth from the same address is closed at once, not held open.
    let mut fifth = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(5), fifth.read(&mut byte))
        .await
        .expect("the fifth connection was kept open");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    // Once the idle ones are gone, scrapes are served again.
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!scrape(&server).await.is_empty());
}

#[tokio::test]
async fn text_log_lines_of_a_request_end_with_its_id() {
    let server = Server::start();
    let login = server.login_response("alice@example.com", PASSWORD).await;
    assert_eq!(login.status(), StatusCode::OK);
    let id = login.headers()["x-request-id"].to_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let logs = server.logs();
    let ending = format!(" request_id={id}");
    for target in ["tessera_axum::routes::login:", "tessera::access:"] {
        let line = logs
            .lines()
            .find(|l| l.contains(target) && l.contains(&id))
            .unwrap_or_else(|| panic!("no {target} line with the request's id:\n{logs}"));
        assert!(line.ends_with(&ending), "{line}");
    }
    let listening = logs.lines().find(|l| l.contains("listening on")).unwrap();
    assert!(!listening.contains("request_id="), "{listening}");
}
