//! Points in time, as whole milliseconds since the Unix epoch.
//!
//! Stores keep timestamps as plain integers so that every backend (SQLite,
//! Redis, PostgreSQL) can compare and expire them natively.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Room for any RFC 3339 text [`Timestamp::format_rfc3339`] writes.
pub const RFC3339_MAX: usize = 40;

/// A point in time in milliseconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The current wall-clock time.
    pub fn now() -> Self {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        Self(i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX))
    }

    /// Wraps a count of milliseconds since the Unix epoch.
    pub const fn from_unix_millis(millis: i64) -> Self {
        Self(millis)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn unix_millis(self) -> i64 {
        self.0
    }

    /// Whole seconds since the Unix epoch (rounded down).
    pub const fn unix_seconds(self) -> i64 {
        self.0.div_euclid(1000)
    }

    /// This instant moved forward by `duration` (saturating).
    pub fn plus(self, duration: Duration) -> Self {
        let millis = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        Self(self.0.saturating_add(millis))
    }

    /// How long after `earlier` this instant is; zero if it is not after it.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }

    /// RFC 3339 text in UTC, e.g. `2026-11-28T03:38:43.123Z`.
    pub fn to_rfc3339(self) -> String {
        let mut buf = [0u8; RFC3339_MAX];
        self.format_rfc3339(&mut buf).to_owned()
    }

    /// Writes RFC 3339 text into `buf` and returns it, without allocating.
    /// Instants outside the years 0–9999 are written as plain milliseconds.
    pub fn format_rfc3339(self, buf: &mut [u8; RFC3339_MAX]) -> &str {
        let nanos = i128::from(self.0) * 1_000_000;
        let mut cursor = std::io::Cursor::new(&mut buf[..]);
        let written = OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .ok()
            .and_then(|t| t.format_into(&mut cursor, &Rfc3339).ok());
        let len = match written {
            Some(_) => usize::try_from(cursor.position()).unwrap_or(0),
            None => {
                use std::io::Write as _;
                cursor.set_position(0);
                let _ = write!(cursor, "{}", self.0);
                usize::try_from(cursor.position()).unwrap_or(0)
            }
        };
        std::str::from_utf8(&buf[..len]).unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_as_rfc3339_utc() {
        let t = Timestamp::from_unix_millis(1_700_000_000_123);
        assert_eq!(t.to_rfc3339(), "2023-11-14T22:13:20.123Z");
    }

    #[test]
    fn since_never_goes_negative() {
        let a = Timestamp::from_unix_millis(10);
        let b = Timestamp::from_unix_millis(5);
        assert_eq!(b.since(a), Duration::ZERO);
        assert_eq!(a.since(b), Duration::from_millis(5));
    }
}
