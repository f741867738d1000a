//! Mail end to end: messages go through [`Mail::send`] into the real
//! outbox (a SQLite file, or a fresh PostgreSQL database), the real
//! background sender claims them and sends them through lettre to a real
//! SMTP server, `aiosmtpd` (`tests/support/smtp_sink.py`), which writes
//! each message it receives to a directory. The tests read what arrived.
//!
//! [`Mail::send`]: tessera_axum::Mail::send

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Request, StatusCode, header};
use serde_json::Value;
use tessera_axum::mail::{MailConfig, MailTransport, RetryPolicy, SmtpConfig, SmtpUrl};
use tessera_axum::startup::{SessionBackend, UserBackend};
use tessera_axum::{Service, ServiceConfig, TokenKeys};
use tessera_core::{
    Email, MessageId, MessageState, NewUser, Notice, Outbox, OutgoingMail, Password,
    PasswordHasher, Role, Timestamp,
};
use tessera_testkit::{ProcessGroup, free_port};
use tower::ServiceExt;

const SINK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/smtp_sink.py");

/// A certificate authority and a server certificate for 127.0.0.1, made
/// with the `openssl` command for one test.
struct TestCa {
    dir: tempfile::TempDir,
}

impl TestCa {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir.path())
                .output()
                .expect("the openssl command");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
        run(&[
            &["req", "-x509", "-nodes", "-days", "1"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-subj",
                "/CN=tessera test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        ]
        .concat());
        run(&[
            &["req", "-nodes"][..],
            &ec,
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        ]
        .concat());
        std::fs::write(
            dir.path().join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-out",
            "server.pem",
            "-extfile",
            "server.ext",
        ]);
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(self.path("ca.pem")).unwrap()
    }
}

/// `aiosmtpd` on a free port, writing what it receives to a directory.
struct Sink {
    process: ProcessGroup,
    port: u16,
    out: tempfile::TempDir,
}

impl Sink {
    /// Plain SMTP, or STARTTLS (offered and required) with `ca`'s server
    /// certificate.
    fn start(ca: Option<&TestCa>) -> Self {
        let out = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut command = Command::new("python3");
        command.arg(SINK).arg(port.to_string()).arg(out.path());
        if let Some(ca) = ca {
            command
                .arg("--cert")
                .arg(ca.path("server.pem"))
                .arg("--key")
                .arg(ca.path("server.key"));
        }
        let mut process = ProcessGroup::spawn("smtp sink", &mut command).expect("python3");
        process
            .wait_for_listener(
                SocketAddr::from(([127, 0, 0, 1], port)),
                Duration::from_secs(15),
            )
            .expect("the SMTP sink listens");
        Self { process, port, out }
    }

    fn url(&self) -> SmtpUrl {
        SmtpUrl::parse(&format!("smtp://127.0.0.1:{}", self.port)).unwrap()
    }

    /// What arrived so far, in order.
    fn received(&self) -> Vec<Value> {
        received(self.out.path())
    }

    /// Waits until `n` messages arrived (at most `patience`).
    fn wait_for(&self, n: usize, patience: Duration) -> Vec<Value> {
        let deadline = Instant::now() + patience;
        loop {
            let got = self.received();
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn received(dir: &Path) -> Vec<Value> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
        .iter()
        .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
        .collect()
}

fn email(s: &str) -> Email {
    Email::parse(s).unwrap()
}

/// Mail settings for tests: quick polls and retries.
fn mail_config(transport: MailTransport) -> MailConfig {
    MailConfig {
        transport,
        from: "Example Accounts <accounts@example.com>".to_owned(),
        site_name: "Example".to_owned(),
        poll_interval: Duration::from_millis(200),
        retry: RetryPolicy {
            first_delay: Duration::from_millis(300),
            max_delay: Duration::from_secs(2),
            ..RetryPolicy::default()
        },
        ..MailConfig::default()
    }
}

fn smtp(url: SmtpUrl, insecure: bool, ca: Option<Vec<u8>>) -> MailTransport {
    MailTransport::Smtp(SmtpConfig {
        insecure,
        tls_ca: ca,
        timeout: Duration::from_secs(3),
        ..SmtpConfig::new(url)
    })
}

fn service_config(dir: &Path, mail: MailConfig) -> ServiceConfig {
    let mut config = ServiceConfig::new(dir.join("tessera.db"));
    config.app.mail = mail;
    config
}

async fn start(config: ServiceConfig) -> Service {
    Service::start(config, TokenKeys::generate().unwrap())
        .await
        .expect("the service starts")
}

fn outbox(service: &Service) -> Arc<dyn Outbox> {
    Arc::clone(service.state().mail().outbox().expect("mail is configured"))
}

/// Waits until `check` holds for the outbox (at most `patience`).
async fn eventually<F, Fut>(patience: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + patience;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn reset(to: &str, token: &str) -> OutgoingMail {
    OutgoingMail {
        to: email(to),
        notice: Notice::ResetPassword {
            link: format!("https://auth.example.com/password/reset?token={token}"),
        },
    }
}

/// Checks one received reset message.
fn assert_reset_message(message: &Value, to: &str, token: &str) {
    let link = format!("https://auth.example.com/password/reset?token={token}");
    assert_eq!(message["rcpt_tos"], serde_json::json!([to]), "{message}");
    assert_eq!(message["to"], to);
    assert_eq!(message["from"], "Example Accounts <accounts@example.com>");
    assert_eq!(message["subject"], "Reset your Example password");
    assert_eq!(message["content_type"], "multipart/alternative");
    assert_eq!(message["auto_submitted"], "auto-generated");
    let text = message["text"].as_str().expect("a text/plain part");
    let html = message["html"].as_str().expect("a text/html part");
    assert!(text.contains(&link), "{text}");
    assert!(html.contains(&format!("href=\"{link}\"")), "{html}");
    assert!(html.contains("Choose a new password"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_smtp_delivers_text_and_html_and_erases_the_body() {
    let sink = Sink::start(None);
    let dir = tempfile::tempdir().unwrap();
    let service = start(service_config(
        dir.path(),
        mail_config(smtp(sink.url(), true, None)),
    ))
    .await;
    let mail = service.state().mail();
    assert!(mail.is_configured());
    mail.send(reset("alice@example.com", "tok-alice"))
        .await
        .unwrap();
    mail.send(OutgoingMail {
        to: email("bob@example.com"),
        notice: Notice::VerifyEmail {
            link: "https://auth.example.com/email/verify?token=tok-bob".to_owned(),
        },
    })
    .await
    .unwrap();
    let got = sink.wait_for(2, Duration::from_secs(20));
    assert_eq!(got.len(), 2, "{got:?}");
    let alice = got.iter().find(|m| m["to"] == "alice@example.com").unwrap();
    assert_reset_message(alice, "alice@example.com", "tok-alice");
    assert_eq!(alice["tls"], false);
    let bob = got.iter().find(|m| m["to"] == "bob@example.com").unwrap();
    assert_eq!(bob["subject"], "Confirm your email address for Example");
    assert!(
        bob["text"]
            .as_str()
            .unwrap()
            .contains("https://auth.example.com/email/verify?token=tok-bob")
    );
    // Delivered: marked sent, with no body or recipient left behind.
    let outbox = outbox(&service);
    eventually(Duration::from_secs(5), "both marked sent", || async {
        outbox.stats().await.unwrap().pending == 0
    })
    .await;
    for id in [1, 2] {
        let record = outbox.record(MessageId(id)).await.unwrap().unwrap();
        assert_eq!(record.state, MessageState::Sent);
        assert_eq!(record.mail, None);
    }
    // Nor in the table itself, as any SQL reader sees it.
    let leftovers: i64 = rusqlite_count(
        &dir.path().join("tessera.db"),
        "SELECT count(*) FROM mail_outbox
         WHERE body IS NOT NULL OR recipient IS NOT NULL OR kind = ''",
    );
    assert_eq!(leftovers, 0);
    // /admin/v1/health shows the (cached) figures.
    eventually(Duration::from_secs(5), "health refreshed", || async {
        health(&service).await["mail"]["pending"] == 0
    })
    .await;
    let body = health(&service).await;
    assert_eq!(body["mail"]["transport"], "smtp");
    assert_eq!(body["mail"]["undeliverable"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_with_a_private_ca_delivers_over_tls() {
    let ca = TestCa::new();
    let sink = Sink::start(Some(&ca));
    let dir = tempfile::tempdir().unwrap();
    let service = start(service_config(
        dir.path(),
        mail_config(smtp(sink.url(), false, Some(ca.ca_pem()))),
    ))
    .await;
    service
        .state()
        .mail()
        .send(reset("carol@example.com", "tok-carol"))
        .await
        .unwrap();
    let got = sink.wait_for(1, Duration::from_secs(20));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["tls"], true, "sent after STARTTLS");
    assert_reset_message(&got[0], "carol@example.com", "tok-carol");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_smtp_insecure_a_server_without_starttls_gets_nothing() {
    let sink = Sink::start(None);
    let dir = tempfile::tempdir().unwrap();
    let service = start(service_config(
        dir.path(),
        mail_config(smtp(sink.url(), false, None)),
    ))
    .await;
    service
        .state()
        .mail()
        .send(reset("dave@example.com", "tok-dave"))
        .await
        .unwrap();
    let outbox = outbox(&service);
    eventually(Duration::from_secs(10), "a failed attempt", || async {
        outbox
            .record(MessageId(1))
            .await
            .unwrap()
            .is_some_and(|r| r.last_error.is_some())
    })
    .await;
    let record = outbox.record(MessageId(1)).await.unwrap().unwrap();
    assert_eq!(record.state, MessageState::Pending, "kept for a retry");
    assert!(record.mail.is_some());
    assert!(sink.received().is_empty(), "nothing went out in plain text");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_with_a_certificate_from_an_unknown_ca_gets_nothing() {
    let ca = TestCa::new();
    let sink = Sink::start(Some(&ca));
    let dir = tempfile::tempdir().unwrap();
    // Mozilla's roots only: the test CA is unknown.
    let service = start(service_config(
        dir.path(),
        mail_config(smtp(sink.url(), false, None)),
    ))
    .await;
    service
        .state()
        .mail()
        .send(reset("erin@example.com", "tok-erin"))
        .await
        .unwrap();
    let outbox = outbox(&service);
    eventually(Duration::from_secs(10), "a failed attempt", || async {
        outbox
            .record(MessageId(1))
            .await
            .unwrap()
            .is_some_and(|r| r.last_error.is_some())
    })
    .await;
    assert!(sink.received().is_empty());
}

/// One number from the SQLite file, read with the `sqlite3` command.
fn rusqlite_count(path: &Path, sql: &str) -> i64 {
    let out = Command::new("sqlite3")
        .arg(path)
        .arg(sql)
        .output()
        .expect("the sqlite3 command");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// `GET /admin/v1/health` through the router, with an admin API key made
/// for it.
async fn health(service: &Service) -> Value {
    let key = service
        .state()
        .api_keys()
        .create(
            &tessera_axum::AuditContext::cli(),
            "health",
            vec![Role::parse(Role::ADMIN).unwrap()],
            None,
        )
        .await
        .unwrap();
    let request = Request::get("/admin/v1/health")
        .header(
            header::AUTHORIZATION,
            format!("Bearer {}", key.token.expose()),
        )
        .body(Body::empty())
        .unwrap();
    let peer = SocketAddr::from(([192, 0, 2, 9], 40_000));
    let response = service
        .router()
        .layer(MockConnectInfo(peer))
        .oneshot(request)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

const PASSWORD: &str = "correct horse battery staple";

/// Creates a user and logs in; returns the `Cookie` header value.
async fn logged_in(service: &Service, router: &axum::Router) -> String {
    let hash = PasswordHasher::owasp()
        .hash(&Password::new(PASSWORD))
        .unwrap();
    let user = NewUser {
        email: email("user@example.com"),
        roles: vec![Role::parse("member").unwrap()],
        password_hash: hash,
        email_verified: true,
    }
    .into_user(Timestamp::now());
    service.state().users().create(&user).await.unwrap();
    let response = router
        .clone()
        .oneshot(
            Request::post("/login")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(
                    serde_json::json!({"email": "user@example.com", "password": PASSWORD})
                        .to_string(),
                ))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|v| v.starts_with("__Host-tessera="))
        .unwrap();
    cookie.split(';').next().unwrap().to_owned()
}

/// The slowest of `n` requests to `uri`.
async fn slowest(router: &axum::Router, uri: &str, cookie: Option<&str>, n: usize) -> Duration {
    let mut worst = Duration::ZERO;
    for _ in 0..n {
        let mut request = Request::get(uri);
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        let started = Instant::now();
        let response = router
            .clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{uri}");
        worst = worst.max(started.elapsed());
    }
    worst
}

/// A relay that accepts connections and never answers (a stopped process:
/// the kernel completes the handshake, nothing reads) or one that is not
/// there at all: mail waits and retries, requests do not notice.
async fn unreachable_relay_leaves_mail_pending_and_requests_fast(url: SmtpUrl) {
    let dir = tempfile::tempdir().unwrap();
    let service = start(service_config(
        dir.path(),
        mail_config(smtp(url, true, None)),
    ))
    .await;
    let peer = SocketAddr::from(([192, 0, 2, 7], 40_000));
    let router = service.router().layer(MockConnectInfo(peer));
    let cookie = logged_in(&service, &router).await;
    const MESSAGES: i64 = 40;
    let started = Instant::now();
    for i in 0..MESSAGES {
        service
            .state()
            .mail()
            .send(reset(&format!("u{i}@example.com"), "t"))
            .await
            .unwrap();
    }
    let enqueue = started.elapsed();
    assert!(
        enqueue < Duration::from_secs(5),
        "40 sends took {enqueue:?}"
    );
    // While the sender is stuck on the relay, requests answer at once.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let health_worst = slowest(&router, "/health", None, 30).await;
    let profile_worst = slowest(&router, "/profile", Some(&cookie), 30).await;
    assert!(
        health_worst < Duration::from_millis(500),
        "/health took {health_worst:?}"
    );
    assert!(
        profile_worst < Duration::from_millis(500),
        "/profile took {profile_worst:?}"
    );
    // Every message is still pending, and some have been tried and
    // scheduled again.
    let outbox = outbox(&service);
    eventually(Duration::from_secs(20), "failed attempts", || async {
        let first = outbox.record(MessageId(1)).await.unwrap().unwrap();
        first.last_error.is_some()
    })
    .await;
    let stats = outbox.stats().await.unwrap();
    assert_eq!(stats.pending, MESSAGES as u64);
    assert_eq!(stats.undeliverable, 0);
    let first = outbox.record(MessageId(1)).await.unwrap().unwrap();
    assert_eq!(first.state, MessageState::Pending);
    assert!(first.attempts >= 1);
    assert!(first.mail.is_some());
    eventually(Duration::from_secs(10), "health shows them", || async {
        health(&service).await["mail"]["pending"] == MESSAGES
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_smtp_server_leaves_mail_pending_and_slows_no_request() {
    // A port nothing listens on.
    let url = SmtpUrl::parse(&format!("smtp://127.0.0.1:{}", free_port())).unwrap();
    unreachable_relay_leaves_mail_pending_and_requests_fast(url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_smtp_server_leaves_mail_pending_and_slows_no_request() {
    let sink = Sink::start(None);
    sink.process.pause().unwrap();
    unreachable_relay_leaves_mail_pending_and_requests_fast(sink.url()).await;
    sink.process.resume().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_deliver_once_the_server_is_back() {
    let port = free_port();
    let url = SmtpUrl::parse(&format!("smtp://127.0.0.1:{port}")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let service = start(service_config(
        dir.path(),
        mail_config(smtp(url, true, None)),
    ))
    .await;
    service
        .state()
        .mail()
        .send(reset("frank@example.com", "tok-frank"))
        .await
        .unwrap();
    let outbox = outbox(&service);
    eventually(Duration::from_secs(10), "a failed attempt", || async {
        outbox
            .record(MessageId(1))
            .await
            .unwrap()
            .is_some_and(|r| r.last_error.is_some())
    })
    .await;
    // The server comes up on that port; the backoff's next attempt sends.
    let out = tempfile::tempdir().unwrap();
    let mut command = Command::new("python3");
    command.arg(SINK).arg(port.to_string()).arg(out.path());
    let _sink = ProcessGroup::spawn("smtp sink", &mut command).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while received(out.path()).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = received(out.path());
    assert_eq!(got.len(), 1);
    assert_reset_message(&got[0], "frank@example.com", "tok-frank");
    let record = outbox.record(MessageId(1)).await.unwrap().unwrap();
    assert!(record.attempts >= 2, "{record:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_refusal_is_given_up_at_once_and_counted_as_undeliverable() {
    // The sink answers 550 to recipients whose address starts with "reject".
    let sink = Sink::start(None);
    let dir = tempfile::tempdir().unwrap();
    let service = start(service_config(
        dir.path(),
        mail_config(smtp(sink.url(), true, None)),
    ))
    .await;
    let mail = service.state().mail();
    mail.send(reset("reject@example.com", "tok-r"))
        .await
        .unwrap();
    mail.send(reset("kim@example.com", "tok-k")).await.unwrap();
    let outbox = outbox(&service);
    eventually(Duration::from_secs(10), "given up", || async {
        outbox.stats().await.unwrap().undeliverable == 1
    })
    .await;
    let record = outbox.record(MessageId(1)).await.unwrap().unwrap();
    assert_eq!(record.state, MessageState::Undeliverable);
    assert_eq!(record.attempts, 1, "a 5xx answer is not retried");
    assert_eq!(record.mail, None, "no body kept");
    assert!(
        record.last_error.as_deref().unwrap_or("").contains("550"),
        "{record:?}"
    );
    eventually(Duration::from_secs(5), "health counts it", || async {
        health(&service).await["mail"]["undeliverable"] == 1
    })
    .await;
    assert_eq!(sink.wait_for(1, Duration::from_secs(10)).len(), 1);
    // And the audit trail has it, with no address or link.
    let users = std::sync::Arc::clone(service.state().users());
    eventually(Duration::from_secs(5), "audited", || {
        let users = std::sync::Arc::clone(&users);
        async move {
            let page = users
                .audit_events(&tessera_core::AuditQuery::latest(10))
                .await
                .unwrap();
            page.events.iter().any(|r| {
                r.event.kind == tessera_core::AuditKind::MailUndeliverable
                    && !r.event.detail.contains("reject@")
                    && !r.event.detail.contains("tok-r")
            })
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_keeps_failing_is_given_up_after_the_last_attempt() {
    let url = SmtpUrl::parse(&format!("smtp://127.0.0.1:{}", free_port())).unwrap();
    let mut config = mail_config(smtp(url, true, None));
    config.retry.max_attempts = 2;
    let dir = tempfile::tempdir().unwrap();
    let service = start(service_config(dir.path(), config)).await;
    service
        .state()
        .mail()
        .send(reset("gina@example.com", "tok-gina"))
        .await
        .unwrap();
    let outbox = outbox(&service);
    eventually(Duration::from_secs(15), "given up", || async {
        outbox.stats().await.unwrap().undeliverable == 1
    })
    .await;
    let record = outbox.record(MessageId(1)).await.unwrap().unwrap();
    assert_eq!(record.state, MessageState::Undeliverable);
    assert_eq!(record.attempts, 2);
    assert_eq!(record.mail, None);
}

/// Sends `n` messages through two services sharing one outbox and checks
/// that each arrived exactly once.
async fn each_message_reaches_the_sink_once(first: &Service, second: &Service, sink: &Sink) {
    const N: usize = 60;
    for i in 0..N {
        let service = if i % 2 == 0 { first } else { second };
        service
            .state()
            .mail()
            .send(reset(&format!("u{i}@example.com"), &format!("t{i}")))
            .await
            .unwrap();
    }
    let got = sink.wait_for(N, Duration::from_secs(60));
    // Give a duplicate time to arrive.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let got = if got.len() == N { sink.received() } else { got };
    let mut recipients: Vec<String> = got
        .iter()
        .map(|m| m["to"].as_str().unwrap().to_owned())
        .collect();
    recipients.sort();
    let mut expected: Vec<String> = (0..N).map(|i| format!("u{i}@example.com")).collect();
    expected.sort();
    assert_eq!(recipients, expected, "every message exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_senders_sharing_one_sqlite_file_send_each_message_once() {
    let sink = Sink::start(None);
    let dir = tempfile::tempdir().unwrap();
    let config = || service_config(dir.path(), mail_config(smtp(sink.url(), true, None)));
    let first = start(config()).await;
    let second = start(config()).await;
    each_message_reaches_the_sink_once(&first, &second, &sink).await;
}

/// A fresh PostgreSQL database (127.0.0.1:5432), dropped afterwards.
struct PgDatabase {
    name: String,
}

impl PgDatabase {
    fn new() -> Self {
        let name = format!("tessera_mail_{}", uuid::Uuid::new_v4().simple());
        psql(&format!("CREATE DATABASE {name}"));
        Self { name }
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        psql(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_sharing_one_postgres_database_send_each_message_once() {
    let sink = Sink::start(None);
    let db = PgDatabase::new();
    let node = |dir: &Path| {
        let mut config = service_config(dir, mail_config(smtp(sink.url(), true, None)));
        config.sessions = SessionBackend::Memory;
        config.users = UserBackend::Postgres {
            url: db.url(),
            options: tessera_store::PostgresOptions::default(),
        };
        config
    };
    // Each node has its own data directory: they share only PostgreSQL.
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first = start(node(a.path())).await;
    let second = start(node(b.path())).await;
    assert!(
        !a.path().join("tessera.db").exists(),
        "the outbox is in PostgreSQL, not a local file"
    );
    each_message_reaches_the_sink_once(&first, &second, &sink).await;
    drop((first, second));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_backend_writes_one_eml_per_message() {
    let dir = tempfile::tempdir().unwrap();
    let mail_dir = dir.path().join("mail");
    let service = start(service_config(
        dir.path(),
        mail_config(MailTransport::File {
            dir: mail_dir.clone(),
        }),
    ))
    .await;
    for (to, token) in [("hana@example.com", "tok-h"), ("ivan@example.com", "tok-i")] {
        service.state().mail().send(reset(to, token)).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let files = loop {
        let files: Vec<PathBuf> = std::fs::read_dir(&mail_dir)
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                    .collect()
            })
            .unwrap_or_default();
        if files.len() >= 2 || Instant::now() > deadline {
            break files;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(files.len(), 2, "{files:?}");
    let all: String = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    for needle in [
        "To: hana@example.com",
        "To: ivan@example.com",
        "Subject: Reset your Example password",
        "Content-Type: multipart/alternative",
        "Content-Type: text/plain",
        "Content-Type: text/html",
    ] {
        assert!(all.contains(needle), "{needle} missing in\n{all}");
    }
    let health = health(&service).await;
    assert_eq!(health["mail"]["transport"], "file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_mail_none_send_records_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let service = start(service_config(dir.path(), MailConfig::default())).await;
    let mail = service.state().mail();
    assert!(!mail.is_configured());
    assert!(mail.outbox().is_none());
    mail.send(reset("jo@example.com", "t")).await.unwrap();
    let store = tessera_store::SqliteStore::open(
        dir.path().join("tessera.db"),
        tessera_store::SqliteOptions::default(),
    )
    .unwrap();
    assert_eq!(store.stats().await.unwrap().pending, 0);
    assert_eq!(health(&service).await["mail"]["transport"], "none");
}
