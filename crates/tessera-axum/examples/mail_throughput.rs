//! Outbox throughput: queues messages through `Mail::send` into a SQLite
//! outbox and times the background sender delivering them to an SMTP
//! relay; measures `/profile` (in process, through the router) while idle
//! and while the sender drains the queue. Run by `bench/mail_outbox.sh`,
//! which starts the aiosmtpd sink; not part of the test suite.
//!
//! ```text
//! mail_throughput --smtp-port PORT [--messages 1000] [--pool 2] [--batch 16]
//! ```

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Request, StatusCode, header};
use tessera_axum::mail::{MailConfig, MailTransport, SmtpConfig, SmtpUrl};
use tessera_axum::{Service, ServiceConfig, TokenKeys};
use tessera_core::{Email, NewUser, Notice, OutgoingMail, Password, PasswordHasher, Timestamp};
use tower::ServiceExt;

fn arg(name: &str, default: Option<u64>) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().expect("a number"))
        .or(default)
        .unwrap_or_else(|| panic!("{name} is required"))
}

async fn profile_latencies(router: &axum::Router, cookie: &str, n: usize) -> Vec<Duration> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let response = router
            .clone()
            .oneshot(
                Request::get("/profile")
                    .header(header::COOKIE, cookie)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        out.push(started.elapsed());
    }
    out
}

fn summary(mut latencies: Vec<Duration>) -> String {
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize].as_micros();
    format!(
        "{{\"n\": {}, \"p50_us\": {}, \"p99_us\": {}, \"max_us\": {}}}",
        latencies.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    )
}

#[tokio::main]
async fn main() {
    let port = arg("--smtp-port", None);
    let messages = arg("--messages", Some(1000));
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServiceConfig::new(dir.path().join("tessera.db"));
    config.app.mail = MailConfig {
        transport: MailTransport::Smtp(SmtpConfig {
            insecure: true,
            pool_size: u32::try_from(arg("--pool", Some(2))).unwrap(),
            ..SmtpConfig::new(SmtpUrl::parse(&format!("smtp://127.0.0.1:{port}")).unwrap())
        }),
        batch: usize::try_from(arg("--batch", Some(16))).unwrap(),
        ..MailConfig::default()
    };
    let service = Service::start(config, TokenKeys::generate().unwrap())
        .await
        .unwrap();
    let router = service
        .router()
        .layer(MockConnectInfo(SocketAddr::from(([192, 0, 2, 7], 40_000))));
    let password = "correct horse battery staple";
    let user = NewUser {
        email: Email::parse("bench@example.com").unwrap(),
        roles: vec![],
        password_hash: PasswordHasher::owasp()
            .hash(&Password::new(password))
            .unwrap(),
        email_verified: true,
    }
    .into_user(Timestamp::now());
    service.state().users().create(&user).await.unwrap();
    let login = router
        .clone()
        .oneshot(
            Request::post("/login")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(format!(
                    r#"{{"email":"bench@example.com","password":"{password}"}}"#
                )))
                .unwrap(),
        )
        .await
        .unwrap();
    let cookie = login
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .find(|c| c.starts_with("__Host-tessera="))
        .expect("logged in");

    let idle = profile_latencies(&router, &cookie, 2000).await;

    let mail = service.state().mail();
    let outbox = mail.outbox().unwrap().clone();
    let started = Instant::now();
    for i in 0..messages {
        mail.send(OutgoingMail {
            to: Email::parse(&format!("user{i}@example.com")).unwrap(),
            notice: Notice::ResetPassword {
                link: format!("https://auth.example.com/password/reset?token=t{i}"),
            },
        })
        .await
        .unwrap();
    }
    let enqueued = started.elapsed();
    let mut draining = Vec::new();
    loop {
        draining.extend(profile_latencies(&router, &cookie, 50).await);
        let stats = outbox.stats().await.unwrap();
        if stats.pending == 0 {
            assert_eq!(stats.undeliverable, 0, "some mail was given up");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "not drained in 10 minutes"
        );
    }
    let total = started.elapsed();
    println!(
        "{{\"messages\": {messages}, \"enqueue_per_s\": {:.0}, \"delivered_per_s\": {:.1}, \"total_s\": {:.2}, \"profile_idle\": {}, \"profile_while_draining\": {}}}",
        messages as f64 / enqueued.as_secs_f64(),
        messages as f64 / total.as_secs_f64(),
        total.as_secs_f64(),
        summary(idle),
        summary(draining)
    );
}
