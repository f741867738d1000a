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
use std::time::{SystemTime, UNIX_EPOCH};

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

/// A thread's line buffer, and the timestamp prefix of the second it last
/// wrote in.
#[derive(Default)]
struct Line {
    buffer: Vec<u8>,
    second: u64,
    /// `YYYY-MM-DDTHH:MM:SS` of `second`.
    prefix: [u8; 19],
}

impl AccessLog {
    /// Lines in `format`, each handed to `sink`.
    pub fn new(format: AccessLogFormat, sink: Arc<dyn LineSink>) -> Self {
        Self { format, sink }
    }

    /// Writes `entry`'s line.
    pub(crate) fn write(&self, entry: &Entry<'_>) {
        LINE.with_borrow_mut(|line| {
            line.format(self.format, entry, SystemTime::now());
            self.sink.write_line(&line.buffer);
        });
    }
}

impl Line {
    fn format(&mut self, format: AccessLogFormat, e: &Entry<'_>, now: SystemTime) {
        let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        if since.as_secs() != self.second || self.prefix[0] == 0 {
            self.second = since.as_secs();
            self.prefix = date_time(self.second);
        }
        let micros = since.subsec_micros();
        let mut digits = itoa::Buffer::new();
        let b = &mut self.buffer;
        b.clear();
        match format {
            AccessLogFormat::Json => {
                b.extend_from_slice(b"{\"timestamp\":\"");
                timestamp(b, &self.prefix, micros);
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
                    let _ = write!(b, "{client}");
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
                timestamp(b, &self.prefix, micros);
                b.extend_from_slice(b"  INFO tessera::access: request method=\"");
                b.extend_from_slice(e.method.as_bytes());
                b.extend_from_slice(b"\" route=\"");
                b.extend_from_slice(e.route.as_bytes());
                b.extend_from_slice(b"\" status=");
                b.extend_from_slice(digits.format(e.status).as_bytes());
                b.extend_from_slice(b" latency_us=");
                b.extend_from_slice(digits.format(e.latency_us).as_bytes());
                if let Some(client) = e.client {
                    let _ = write!(b, " client={client}");
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

/// `prefix` and `.uuuuuuZ`.
fn timestamp(b: &mut Vec<u8>, prefix: &[u8; 19], micros: u32) {
    b.extend_from_slice(prefix);
    b.push(b'.');
    let mut digits = [b'0'; 6];
    let mut n = micros;
    for slot in digits.iter_mut().rev() {
        *slot = b'0' + u8::try_from(n % 10).unwrap_or(0);
        n /= 10;
    }
    b.extend_from_slice(&digits);
    b.push(b'Z');
}

/// `YYYY-MM-DDTHH:MM:SS` (UTC) of a Unix time.
fn date_time(unix_seconds: u64) -> [u8; 19] {
    let days = i64::try_from(unix_seconds / 86_400).unwrap_or(0);
    let second_of_day = unix_seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    let mut out = [0u8; 19];
    let two = |out: &mut [u8], n: u64| {
        out[0] = b'0' + u8::try_from(n / 10 % 10).unwrap_or(0);
        out[1] = b'0' + u8::try_from(n % 10).unwrap_or(0);
    };
    let year = u64::try_from(year).unwrap_or(0);
    two(&mut out[0..2], year / 100);
    two(&mut out[2..4], year % 100);
    out[4] = b'-';
    two(&mut out[5..7], u64::from(month));
    out[7] = b'-';
    two(&mut out[8..10], u64::from(day));
    out[10] = b'T';
    two(&mut out[11..13], second_of_day / 3600);
    out[13] = b':';
    two(&mut out[14..16], second_of_day / 60 % 60);
    out[16] = b':';
    two(&mut out[17..19], second_of_day % 60);
    out
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn line(format: AccessLogFormat, unix_micros: u64, entry: &Entry<'_>) -> String {
        let mut line = Line::default();
        let at = UNIX_EPOCH + Duration::from_micros(unix_micros);
        line.format(format, entry, at);
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
    fn dates_are_utc_calendar_dates() {
        for (unix, text) in [
            (0, "1970-01-01T00:00:00"),
            (951_782_400, "2000-02-29T00:00:00"),
            (1_796_601_599, "2026-12-06T23:59:59"),
            (4_107_542_400, "2100-03-01T00:00:00"),
        ] {
            assert_eq!(std::str::from_utf8(&date_time(unix)).unwrap(), text);
        }
    }

    #[test]
    fn json_lines_parse_with_every_field() {
        let text = line(AccessLogFormat::Json, 1_796_601_599_000_042, &entry());
        assert!(text.ends_with('\n') && text.matches('\n').count() == 1);
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["timestamp"], "2026-12-06T23:59:59.000042Z");
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
    fn text_lines_read_like_the_other_log_lines() {
        assert_eq!(
            line(AccessLogFormat::Text, 1_796_601_599_123_456, &entry()),
            "2026-12-06T23:59:59.123456Z  INFO tessera::access: request method=\"GET\" \
             route=\"/sessions/{handle}\" status=200 latency_us=1234 client=2001:db8::1 \
             session=h4ndl3_-x request_id=abc-1\n"
        );
    }
}
