//! Requests no HTTP client library would send, as raw bytes over TCP to the
//! real binary: what answers each, and with which body. Heads within the
//! documented limits' reach get the JSON error body; what hyper refuses
//! before any of our code runs gets its empty-bodied answer (README,
//! "Errors").

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

/// An answer as it came off the wire.
#[derive(Debug)]
struct Raw {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The JSON error code; panics unless the body is the JSON error shape.
    fn error_code(&self) -> String {
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "{self:?}"
        );
        let body: Value = serde_json::from_slice(&self.body).expect("a JSON body");
        assert!(body["error"]["message"].is_string(), "{body}");
        body["error"]["code"].as_str().expect("a code").to_owned()
    }
}

/// Sends `request` and reads everything the server answers until it
/// closes (requests that are served ask it to: `Connection: close`; hyper
/// closes after refusing one). `None` if it closed without a byte.
async fn exchange(server: &Server, request: &[u8]) -> Option<Raw> {
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    // The server may answer (and close) before it has read everything.
    let _ = stream.write_all(request).await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 8192];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server neither answered nor closed");
    if answer.is_empty() {
        return None;
    }
    let end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete head");
    let head = String::from_utf8(answer[..end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap();
    let headers = lines
        .map(|line| {
            let (name, value) = line.split_once(':').unwrap();
            (name.to_ascii_lowercase(), value.trim().to_owned())
        })
        .collect();
    Some(Raw {
        status: status.parse().unwrap(),
        headers,
        body: answer[end + 4..].to_vec(),
    })
}

fn get(target: &str, fields: &[(String, String)]) -> Vec<u8> {
    let mut request = format!("GET {target} HTTP/1.1\r\nHost: tessera\r\nConnection: close\r\n");
    for (name, value) in fields {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.into_bytes()
}

/// `count` fields of `size` bytes of value each.
fn fields(count: usize, size: usize) -> Vec<(String, String)> {
    (0..count)
        .map(|i| (format!("x-filler-{i}"), "v".repeat(size)))
        .collect()
}

fn health_with_query(target_len: usize) -> String {
    let prefix = "/health?q=";
    format!("{prefix}{}", "a".repeat(target_len - prefix.len()))
}

#[tokio::test]
async fn a_request_target_over_the_limit_is_a_json_414() {
    let server = Server::start();
    // At the limit: served.
    let at = exchange(&server, &get(&health_with_query(8192), &[]))
        .await
        .unwrap();
    assert_eq!(at.status, 200, "{at:?}");
    for len in [8193, 20_000, 60_000] {
        let over = exchange(&server, &get(&health_with_query(len), &[]))
            .await
            .unwrap();
        assert_eq!(over.status, 414, "{len}: {over:?}");
        assert_eq!(over.error_code(), "uri_too_long");
        assert_eq!(over.header("cache-control"), Some("no-store"));
    }
}

#[tokio::test]
async fn header_fields_over_the_limit_are_a_json_431() {
    let server = Server::start();
    // 30 KiB of fields: served.
    let within = exchange(&server, &get("/health", &fields(30, 1000)))
        .await
        .unwrap();
    assert_eq!(within.status, 200, "{within:?}");
    // Over 32 KiB, one large field or many: JSON 431.
    for (count, size) in [(1, 40_000), (40, 1000), (97, 400)] {
        let over = exchange(&server, &get("/health", &fields(count, size)))
            .await
            .unwrap();
        assert_eq!(over.status, 431, "{count} x {size}: {over:?}");
        assert_eq!(over.error_code(), "headers_too_large");
    }
    // A request after a refused one, on a fresh connection, is served.
    let after = exchange(&server, &get("/health", &[])).await.unwrap();
    assert_eq!(after.status, 200);
}

/// What hyper refuses before any route runs: its own status, an empty
/// body, and the connection closed. README lists exactly these.
#[tokio::test]
async fn what_hyper_refuses_itself_has_an_empty_body() {
    let server = Server::start();
    let empty = |raw: &Raw, status: u16| {
        assert_eq!(raw.status, status, "{raw:?}");
        assert_eq!(raw.header("content-length"), Some("0"), "{raw:?}");
        assert!(raw.body.is_empty(), "{raw:?}");
    };
    // A head that does not fit hyper's buffer: 64 KiB, which one read may
    // overshoot by up to 64 KiB more, so beyond 128 KiB for certain.
    let huge = exchange(&server, &get("/health", &fields(40, 4000)))
        .await
        .unwrap();
    empty(&huge, 431);
    // A request target too long for the buffer.
    let long = exchange(&server, &get(&health_with_query(200_000), &[]))
        .await
        .unwrap();
    empty(&long, 431);
    // More than 100 fields, however small.
    let many = exchange(&server, &get("/health", &fields(101, 1)))
        .await
        .unwrap();
    empty(&many, 431);
    let at_most = exchange(&server, &get("/health", &fields(98, 1)))
        .await
        .unwrap();
    assert_eq!(
        at_most.status, 200,
        "100 fields with Host and Connection: {at_most:?}"
    );
    // Unparsable requests.
    for garbage in [
        &b"HELLO\r\n\r\n"[..],
        b"GET /health HTTP/9.9\r\nHost: t\r\n\r\n",
        b"GET /he alth HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost t\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: t\r\nX-Bad: a\x01b\r\n\r\n",
        b"POST /login HTTP/1.1\r\nHost: t\r\nContent-Length: ten\r\n\r\n",
        b"POST /login HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        b"POST /login HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    ] {
        let raw = exchange(&server, garbage)
            .await
            .unwrap_or_else(|| panic!("no answer to {:?}", String::from_utf8_lossy(garbage)));
        empty(&raw, 400);
    }
    // An HTTP/2 preface: closed without a byte.
    let h2 = exchange(&server, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
    assert!(h2.is_none(), "{h2:?}");
    // And the server still serves.
    let after = exchange(&server, &get("/health", &[])).await.unwrap();
    assert_eq!(after.status, 200);
}
