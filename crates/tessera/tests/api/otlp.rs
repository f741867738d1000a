//! OTLP trace export (`otlp_endpoint`) against a receiver the test starts:
//! an HTTP server decoding what the exporter POSTs to `/v1/traces` with the
//! OpenTelemetry protobuf messages. Requests from a trusted proxy continue
//! its `traceparent`; anyone else's starts a trace of its own; store calls
//! are child spans of their request.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message as _;
use reqwest::StatusCode;

use crate::helpers::{Options, Server, with_cookie};

/// A span as received.
#[derive(Debug, Clone)]
struct Received {
    name: String,
    kind: i32,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent_span_id: Vec<u8>,
    attributes: Vec<KeyValue>,
    service: Option<String>,
}

impl Received {
    fn attribute(&self, key: &str) -> Option<String> {
        let value = self.attributes.iter().find(|kv| kv.key == key)?;
        match value.value.as_ref()?.value.as_ref()? {
            AnyValue::StringValue(s) => Some(s.clone()),
            AnyValue::IntValue(n) => Some(n.to_string()),
            AnyValue::BoolValue(b) => Some(b.to_string()),
            other => Some(format!("{other:?}")),
        }
    }
}

/// The collector stand-in: every span of every export it was sent.
#[derive(Clone, Default)]
struct Receiver {
    spans: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    async fn start() -> (Self, SocketAddr) {
        let receiver = Self::default();
        let app = axum::Router::new()
            .route("/v1/traces", post(export))
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (receiver, addr)
    }

    /// Waits until a span satisfies `found`.
    async fn wait_for(&self, what: &str, found: impl Fn(&Received) -> bool) -> Received {
        for _ in 0..200 {
            if let Some(span) = self.spans.lock().unwrap().iter().find(|s| found(s)) {
                return span.clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "no span {what} within 10 s; received: {:#?}",
            self.spans.lock().unwrap()
        );
    }

    fn all(&self) -> Vec<Received> {
        self.spans.lock().unwrap().clone()
    }
}

async fn export(State(receiver): State<Receiver>, body: Bytes) -> StatusCode {
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return StatusCode::BAD_REQUEST;
    };
    let mut spans = receiver.spans.lock().unwrap();
    for resource_spans in request.resource_spans {
        let service = resource_spans.resource.as_ref().and_then(|r| {
            r.attributes
                .iter()
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                    AnyValue::StringValue(s) => Some(s.clone()),
                    _ => None,
                })
        });
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                spans.push(Received {
                    name: span.name,
                    kind: span.kind,
                    trace_id: span.trace_id,
                    span_id: span.span_id,
                    parent_span_id: span.parent_span_id,
                    attributes: span.attributes,
                    service: service.clone(),
                });
            }
        }
    }
    StatusCode::OK
}

/// The proxy the servers trust: requests sent from this address.
const PROXY: [u8; 4] = [127, 0, 0, 2];

fn exporting_to(receiver: SocketAddr, ratio: &str) -> Options {
    Options::default()
        .env("TESSERA_OTLP_ENDPOINT", format!("http://{receiver}"))
        .env("TESSERA_OTLP_SAMPLE_RATIO", ratio)
        .env("TESSERA_TRUSTED_PROXIES", "127.0.0.2")
        // Export every 100 ms rather than every 5 s.
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
}

/// A client whose connections come from `source`.
fn client_from(source: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::from(source))
        .build()
        .unwrap()
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";

fn traceparent(flags: &str) -> String {
    format!("00-{TRACE_ID}-{PARENT_ID}-{flags}")
}

async fn profile(server: &Server, client: &reqwest::Client, cookie: &str, parent: &str) {
    let response = with_cookie(client.get(server.url("/profile")), Some(cookie))
        .header("traceparent", parent)
        .header("x-request-id", "otlp-test-request")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn requests_and_store_calls_are_exported_and_only_trusted_proxies_continue_a_trace() {
    let (receiver, addr) = Receiver::start().await;
    let server = Server::start_with(exporting_to(addr, "1"));
    let cookie = server.login_alice().await;

    // From a trusted proxy: the request continues the proxy's trace.
    profile(&server, &client_from(PROXY), &cookie, &traceparent("01")).await;
    let request = receiver
        .wait_for("GET /profile in the proxy's trace", |s| {
            s.name == "GET /profile" && s.trace_id == hex(TRACE_ID)
        })
        .await;
    assert_eq!(request.parent_span_id, hex(PARENT_ID));
    assert_eq!(request.kind, SpanKind::Server as i32);
    assert_eq!(request.attribute("http.route").as_deref(), Some("/profile"));
    assert_eq!(
        request.attribute("http.request.method").as_deref(),
        Some("GET")
    );
    assert_eq!(
        request.attribute("http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(request.service.as_deref(), Some("tessera"));
    // Tied to the request's log lines by its id.
    assert_eq!(
        request.attribute("request_id").as_deref(),
        Some("otlp-test-request")
    );

    // Its session lookup is a child span, in the same trace.
    let load = receiver
        .wait_for("sessions load under the request", |s| {
            s.parent_span_id == request.span_id && s.name == "load"
        })
        .await;
    assert_eq!(load.trace_id, request.trace_id);
    assert_eq!(load.kind, SpanKind::Client as i32);
    assert_eq!(load.attribute("store").as_deref(), Some("sessions"));
    assert_eq!(load.attribute("db.system").as_deref(), Some("sqlite"));

    // From anyone else: the same header starts no continuation.
    profile(
        &server,
        &client_from([127, 0, 0, 1]),
        &cookie,
        &traceparent("01"),
    )
    .await;
    let own = receiver
        .wait_for("a second GET /profile", |s| {
            s.name == "GET /profile" && s.span_id != request.span_id
        })
        .await;
    assert_ne!(
        own.trace_id,
        hex(TRACE_ID),
        "an untrusted traceparent was believed"
    );
    assert!(own.parent_span_id.is_empty(), "{own:?}");

    // Nothing secret is an attribute: no cookie, no address, no password.
    for span in receiver.all() {
        for kv in &span.attributes {
            let value = span.attribute(&kv.key).unwrap_or_default();
            assert!(!value.contains(&cookie), "{span:?}");
            assert!(!value.contains("alice@example.com"), "{span:?}");
            assert!(!value.contains("correct horse"), "{span:?}");
        }
    }
}

#[tokio::test]
async fn a_trusted_proxys_sampling_decision_is_followed() {
    let (receiver, addr) = Receiver::start().await;
    // Sample no trace of our own.
    let server = Server::start_with(exporting_to(addr, "0"));
    let cookie = server.login_alice().await;

    // The proxy sampled its trace (flags 01): so is the request.
    profile(&server, &client_from(PROXY), &cookie, &traceparent("01")).await;
    receiver
        .wait_for("the proxy's sampled trace", |s| {
            s.name == "GET /profile" && s.trace_id == hex(TRACE_ID)
        })
        .await;
    // The proxy did not sample (flags 00), nor would we: nothing is sent.
    let unsampled = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
    profile(&server, &client_from(PROXY), &cookie, unsampled).await;
    // A request of our own (and the login before): not sampled either.
    profile(&server, &client_from([127, 0, 0, 1]), &cookie, unsampled).await;
    // Exports go out every 100 ms: give them six times that.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let spans = receiver.all();
    assert!(
        spans.iter().all(|s| s.trace_id == hex(TRACE_ID)),
        "only the proxy's sampled trace is exported: {spans:#?}"
    );
}

#[tokio::test]
async fn a_bad_endpoint_is_refused_at_start_with_its_setting_named() {
    let data = crate::helpers::DataDir::new();
    for (key, value) in [
        ("TESSERA_OTLP_ENDPOINT", "https://collector:4318"),
        ("TESSERA_OTLP_SAMPLE_RATIO", "2"),
    ] {
        let mut env = vec![(key, value)];
        if key == "TESSERA_OTLP_SAMPLE_RATIO" {
            env.push(("TESSERA_OTLP_ENDPOINT", "http://127.0.0.1:4318"));
        }
        let output = data.cli_with_env(&["config", "check"], "", &env);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(!output.status.success(), "{key}={value} accepted");
        let named = key.trim_start_matches("TESSERA_").to_lowercase();
        assert!(
            stderr.contains(&named) || stdout.contains(&named),
            "{key}={value}: {stdout}{stderr}"
        );
    }
}

#[tokio::test]
async fn a_collector_that_is_down_costs_the_requests_nothing() {
    // A port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let mut server = Server::start_with(exporting_to(addr, "1"));
    let cookie = server.login_alice().await;
    let client = client_from([127, 0, 0, 1]);
    let started = std::time::Instant::now();
    for _ in 0..50 {
        profile(&server, &client, &cookie, &traceparent("01")).await;
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "requests waited for the collector: {:?}",
        started.elapsed()
    );
    assert_eq!(
        server.get("/health/ready", None).await.status(),
        StatusCode::OK
    );
    // Nor does it hold up a stop: the last spans are tried once.
    let status = server
        .terminate_within(Duration::from_secs(15))
        .expect("SIGTERM did not stop the server in time");
    assert!(status.success(), "{status:?}");
}
