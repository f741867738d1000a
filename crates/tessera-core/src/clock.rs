//! Points in time, as whole milliseconds since the Unix epoch.
//!
//! Stores keep timestamps as plain integers so that every backend (SQLite,
//! Redis, PostgreSQL) can compare and expire them natively.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

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

    /// Writes RFC 3339 text (`YYYY-MM-DDTHH:MM:SS.mmmZ`) into `buf` and
    /// returns it, without allocating. Instants outside the years 0–9999 are
    /// written as plain milliseconds.
    ///
    /// Hand-written because it runs several times per `/profile` response and
    /// the general formatter of the `time` crate was a visible share of that
    /// route's CPU; it is checked against `time` in the tests.
    pub fn format_rfc3339(self, buf: &mut [u8; RFC3339_MAX]) -> &str {
        std::str::from_utf8(self.rfc3339_ascii(buf)).unwrap_or("")
    }

    /// As [`Timestamp::format_rfc3339`], as the ASCII bytes it is: for
    /// writers of bytes (JSON bodies, log lines), which skip the UTF-8
    /// check (as long as the formatting itself, for a 24-byte text).
    pub fn rfc3339_ascii(self, buf: &mut [u8; RFC3339_MAX]) -> &[u8] {
        const MIN: i64 = -62_167_219_200_000; // 0000-01-01T00:00:00Z
        const MAX: i64 = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z
        if !(MIN..=MAX).contains(&self.0) {
            use std::io::Write as _;
            let mut cursor = std::io::Cursor::new(&mut buf[..]);
            let _ = write!(cursor, "{}", self.0);
            let len = usize::try_from(cursor.position()).unwrap_or(0);
            return &buf[..len];
        }
        let days = self.0.div_euclid(86_400_000);
        // In range, every field fits a u32 (the year is 0 to 9999).
        let field = |value: i64| u32::try_from(value).unwrap_or(0);
        let millis_of_day = field(self.0.rem_euclid(86_400_000));
        let (year, month, day) = civil_from_days(days);
        let year = field(year);
        buf[..24].copy_from_slice(b"0000-00-00T00:00:00.000Z");
        let pairs = [
            (0, year / 100),
            (2, year % 100),
            (5, field(month)),
            (8, field(day)),
            (11, millis_of_day / 3_600_000),
            (14, millis_of_day / 60_000 % 60),
            (17, millis_of_day / 1000 % 60),
            (21, millis_of_day % 100),
        ];
        for (at, value) in pairs {
            let digits = digit_pair(value);
            buf[at] = digits[0];
            buf[at + 1] = digits[1];
        }
        buf[20] = b'0' + u8::try_from(millis_of_day % 1000 / 100).unwrap_or(0);
        &buf[..24]
    }
}

/// The two decimal digits of `value` (below 100), from a table: a field
/// costs one lookup instead of two divisions.
fn digit_pair(value: u32) -> [u8; 2] {
    const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";
    let i = usize::try_from(value % 100).unwrap_or(0) * 2;
    [PAIRS[i], PAIRS[i + 1]]
}

/// Year, month, day of the proleptic Gregorian calendar for a count of days
/// since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
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
    fn out_of_range_instants_fall_back_to_milliseconds() {
        assert_eq!(
            Timestamp::from_unix_millis(i64::MAX).to_rfc3339(),
            i64::MAX.to_string()
        );
        assert_eq!(
            Timestamp::from_unix_millis(i64::MIN).to_rfc3339(),
            i64::MIN.to_string()
        );
    }

    proptest::proptest! {
        #[test]
        fn matches_the_time_crate_for_every_year_0_to_9999(
            millis in -62_167_219_200_000i64..=253_402_300_799_999
        ) {
            use time::format_description::well_known::Rfc3339;
            let expected = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
                .unwrap()
                .format(&Rfc3339)
                .unwrap();
            // `time` drops trailing zeros of the fraction; we always print three digits.
            let ours = Timestamp::from_unix_millis(millis).to_rfc3339();
            let (ours_main, ours_frac) = ours.trim_end_matches('Z').split_once('.').unwrap();
            let (main, frac) = expected.trim_end_matches('Z').split_once('.').unwrap_or((expected.trim_end_matches('Z'), ""));
            proptest::prop_assert_eq!(ours_main, main);
            proptest::prop_assert_eq!(ours_frac.trim_end_matches('0'), frac.trim_end_matches('0'));
        }
    }

    #[test]
    fn since_never_goes_negative() {
        let a = Timestamp::from_unix_millis(10);
        let b = Timestamp::from_unix_millis(5);
        assert_eq!(b.since(a), Duration::ZERO);
        assert_eq!(a.since(b), Duration::from_millis(5));
    }
}
