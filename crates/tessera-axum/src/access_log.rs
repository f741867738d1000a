//! The access log: one line per request (method, route template, status,
//! latency, client address through `trusted_proxies`, the session handle
//! when there is one, the request id), formatted here by hand into a
//! reused buffer and handed whole to a [`LineSink`].
//!
//! The lines look like the service's other log lines (the `tracing`
//! formats of the `tessera` binary: target `tessera::access`, the request
//! id last, as the binary adds it to every line a request writes), but they are not `tracing` events: formatting one
//! through `tracing-subscriber`'s formatters cost a fast route a quarter of
//! its throughput, and asking `tracing` per request whether the line is
//! wanted corrupts its per-layer filter state (tokio-rs/tracing#2519).
//! Whoever installs the log decides once whether the access log is on.
//!
//! Nothing here is escaped, because nothing needs it: every value is a
//! route template, a method, a number, an IP address, a base64url session
//! handle or a request id of `[A-Za-z0-9-_.:]` (see [`crate::observe`]).
//! Never a cookie, token, password or email: none of them is a field.

use std::cell::RefCell;
use std::io::Write as _;
use std::net::IpAddr;
use std::sync::Arc;

use tessera_core::Timestamp;
use tessera_core::clock::RFC3339_MAX;

/// Where finished lines go (e.g. the log writer's channel). Called with one
/// whole line, its `\n` included, from the thread that served the request:
/// keep it short (no file or socket write here).
pub trait LineSink: Send + Sync + 'static {
    /// Takes one line.
    fn write_line(&self, line: &[u8]);
}

/// The shape of the lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessLogFormat {
    /// As `tracing-subscriber`'s text lines.
    Text,
    /// One JSON object a line, as `tracing-subscriber`'s JSON lines
    /// (flattened fields).
    Json,
}

/// The access log is on: lines in `format` to a sink.
#[derive(Clone)]
pub struct AccessLog {
    format: AccessLogFormat,
    sink: Arc<dyn LineSink>,
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLog")
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

/// One request, as logged.
pub(crate) struct Entry<'a> {
    pub request_id: &'a str,
    pub method: &'a str,
    pub route: &'a str,
    pub status: u16,
    pub latency_us: u64,
    pub client: Option<IpAddr>,
    pub session: Option<&'a str>,
}

thread_local! {
    static LINE: RefCell<Line> = RefCell::new(Line::default());
}

/// A thread's line buffer, and the time text of the second it last wrote
/// (lines of one second differ only in their milliseconds).
struct Line {
    buffer: Vec<u8>,
    second: Option<i64>,
    time: [u8; RFC3339_MAX],
    time_len: usize,
}

impl Default for Line {
    fn default() -> Self {
        Self {
            buffer: Vec::new(),
            second: None,
            time: [0; RFC3339_MAX],
            time_len: 0,
        }
    }
}

impl AccessLog {
    /// Lines in `format`, each handed to `sink`.
    pub fn new(format: AccessLogFormat, sink: Arc<dyn LineSink>) -> Self {
        Self { format, sink }
    }

    /// Writes `entry`'s line.
    pub(crate) fn write(&self, entry: &Entry<'_>) {
        LINE.with_borrow_mut(|line| {
            line.format(self.format, entry, Timestamp::now());
            self.sink.write_line(&line.buffer);
        });
    }
}

impl Line {
    /// `now` as RFC 3339 text, formatted whole once per second.
    fn time(&mut self, now: Timestamp) -> &[u8] {
        if self.second == Some(now.unix_seconds()) && self.time_len == 24 {
            // `YYYY-MM-DDTHH:MM:SS.mmmZ`: only the milliseconds change.
            let mut millis = now.unix_millis().rem_euclid(1000);
            for digit in self.time[20..23].iter_mut().rev() {
                *digit = b'0' + u8::try_from(millis % 10).unwrap_or(0);
                millis /= 10;
            }
        } else {
            let mut time = [0u8; RFC3339_MAX];
            let text = now.rfc3339_ascii(&mut time);
            self.time_len = text.len();
            self.time[..text.len()].copy_from_slice(text);
            self.second = Some(now.unix_seconds());
        }
        &self.time[..self.time_len]
    }

    fn format(&mut self, format: AccessLogFormat, e: &Entry<'_>, now: Timestamp) {
        self.time(now);
        let time = &self.time[..self.time_len];
        let mut digits = itoa::Buffer::new();
        let b = &mut self.buffer;
        b.clear();
        match format {
            AccessLogFormat::Json => {
                b.extend_from_slice(b"{\"timestamp\":\"");
                b.extend_from_slice(time);
                b.extend_from_slice(b"\",\"level\":\"INFO\",\"message\":\"request\",\"method\":\"");
                b.extend_from_slice(e.method.as_bytes());
                b.extend_from_slice(b"\",\"route\":\"");
                b.extend_from_slice(e.route.as_bytes());
                b.extend_from_slice(b"\",\"status\":");
                b.extend_from_slice(digits.format(e.status).as_bytes());
                b.extend_from_slice(b",\"latency_us\":");
                b.extend_from_slice(digits.format(e.latency_us).as_bytes());
                if let Some(client) = e.client {
                    b.extend_from_slice(b",\"client\":\"");
                    push_ip(b, client);
                    b.push(b'"');
                }
                if let Some(session) = e.session {
                    b.extend_from_slice(b",\"session\":\"");
                    b.extend_from_slice(session.as_bytes());
                    b.push(b'"');
                }
                b.extend_from_slice(b",\"target\":\"tessera::access\",\"request_id\":\"");
                b.extend_from_slice(e.request_id.as_bytes());
                b.extend_from_slice(b"\"}\n");
            }
            AccessLogFormat::Text => {
                b.extend_from_slice(time);
                b.extend_from_slice(b"  INFO tessera::access: request method=\"");
                b.extend_from_slice(e.method.as_bytes());
                b.extend_from_slice(b"\" route=\"");
                b.extend_from_slice(e.route.as_bytes());
                b.extend_from_slice(b"\" status=");
                b.extend_from_slice(digits.format(e.status).as_bytes());
                b.extend_from_slice(b" latency_us=");
                b.extend_from_slice(digits.format(e.latency_us).as_bytes());
                if let Some(client) = e.client {
                    b.extend_from_slice(b" client=");
                    push_ip(b, client);
                }
                if let Some(session) = e.session {
                    b.extend_from_slice(b" session=");
                    b.extend_from_slice(session.as_bytes());
                }
                b.extend_from_slice(b" request_id=");
                b.extend_from_slice(e.request_id.as_bytes());
                b.push(b'\n');
            }
        }
    }
}

/// Appends `ip` as its `Display` writes it; IPv4 (nearly every client)
/// formatted on the stack and appended in one copy.
fn push_ip(b: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            let mut text = [0u8; 15];
            let mut len = 0;
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    text[len] = b'.';
                    len += 1;
                }
                if octet >= 100 {
                    text[len] = b'0' + octet / 100;
                    len += 1;
                }
                if octet >= 10 {
                    text[len] = b'0' + octet / 10 % 10;
                    len += 1;
                }
                text[len] = b'0' + octet % 10;
                len += 1;
            }
            b.extend_from_slice(&text[..len]);
        }
        IpAddr::V6(v6) => {
            let _ = write!(b, "{v6}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(format: AccessLogFormat, unix_millis: i64, entry: &Entry<'_>) -> String {
        let mut line = Line::default();
        line.format(format, entry, Timestamp::from_unix_millis(unix_millis));
        String::from_utf8(line.buffer).unwrap()
    }

    fn entry() -> Entry<'static> {
        Entry {
            request_id: "abc-1",
            method: "GET",
            route: "/sessions/{handle}",
            status: 200,
            latency_us: 1234,
            client: Some("2001:db8::1".parse().unwrap()),
            session: Some("h4ndl3_-x"),
        }
    }

    #[test]
    fn json_lines_parse_with_every_field() {
        let text = line(AccessLogFormat::Json, 1_796_601_599_042, &entry());
        assert!(text.ends_with('\n') && text.matches('\n').count() == 1);
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["timestamp"], "2026-12-06T23:59:59.042Z");
        assert_eq!(value["level"], "INFO");
        assert_eq!(value["target"], "tessera::access");
        assert_eq!(value["method"], "GET");
        assert_eq!(value["route"], "/sessions/{handle}");
        assert_eq!(value["status"], 200);
        assert_eq!(value["latency_us"], 1234);
        assert_eq!(value["client"], "2001:db8::1");
        assert_eq!(value["session"], "h4ndl3_-x");
        assert_eq!(value["request_id"], "abc-1");

        let bare = Entry {
            client: None,
            session: None,
            ..entry()
        };
        let value: serde_json::Value =
            serde_json::from_str(&line(AccessLogFormat::Json, 0, &bare)).unwrap();
        assert!(value.get("client").is_none() && value.get("session").is_none());
    }

    #[test]
    fn lines_of_one_second_carry_their_own_milliseconds() {
        let mut line = Line::default();
        for millis in [
            1_796_601_599_000,
            1_796_601_599_042,
            1_796_601_599_999,
            1_796_601_600_007,
            1_796_601_599_500,
        ] {
            let now = Timestamp::from_unix_millis(millis);
            let mut fresh = [0u8; RFC3339_MAX];
            assert_eq!(line.time(now), now.format_rfc3339(&mut fresh).as_bytes());
        }
    }

    #[test]
    fn client_addresses_read_as_display_writes_them() {
        for ip in [
            "0.0.0.0",
            "192.0.2.7",
            "255.255.255.255",
            "10.0.10.100",
            "100.9.90.109",
            "1.20.199.200",
            "::1",
            "2001:db8::1",
            "::ffff:192.0.2.1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let mut b = Vec::new();
            push_ip(&mut b, ip);
            assert_eq!(String::from_utf8(b).unwrap(), ip.to_string());
        }
        for octet in 0..=255u8 {
            let ip = IpAddr::from([octet, 255 - octet, octet / 2, octet % 7]);
            let mut b = Vec::new();
            push_ip(&mut b, ip);
            assert_eq!(String::from_utf8(b).unwrap(), ip.to_string());
        }
    }

    #[test]
    fn text_lines_read_like_the_other_log_lines() {
        assert_eq!(
            line(AccessLogFormat::Text, 1_796_601_599_123, &entry()),
            "2026-12-06T23:59:59.123Z  INFO tessera::access: request method=\"GET\" \
             route=\"/sessions/{handle}\" status=200 latency_us=1234 client=2001:db8::1 \
             session=h4ndl3_-x request_id=abc-1\n"
        );
    }
}
