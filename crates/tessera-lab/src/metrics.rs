//! What the simulated users measure: successes per time slice, latencies of
//! successful calls, errors, and when sessions were lost.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The width of one point of the successes-over-time series.
pub const SLICE: Duration = Duration::from_millis(500);

/// The number of slices in a run of `duration`.
pub fn slices(duration: Duration) -> usize {
    duration.as_millis().div_ceil(SLICE.as_millis()) as usize
}

/// Running totals, read by the progress line while the users run.
#[derive(Debug, Default)]
pub struct Live {
    successes: AtomicU64,
    errors: AtomicU64,
    lost: AtomicU64,
}

/// A reading of [`Live`].
#[derive(Debug, Clone, Copy, Default)]
pub struct LiveTotals {
    /// Successful `/profile` calls.
    pub successes: u64,
    /// Failed requests.
    pub errors: u64,
    /// Sessions lost.
    pub lost: u64,
}

impl Live {
    /// The totals so far.
    pub fn totals(&self) -> LiveTotals {
        LiveTotals {
            successes: self.successes.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            lost: self.lost.load(Ordering::Relaxed),
        }
    }
}

/// What one user saw. Each user keeps its own, merged at the end, so the
/// measurement costs no shared locks.
#[derive(Debug)]
pub struct UserRecord {
    successes: Vec<u32>,
    latencies_us: Vec<u32>,
    requests: u64,
    logins: u64,
    errors: u64,
    losses: Vec<Duration>,
    /// Successes per slice, by the node that answered.
    by_node: BTreeMap<String, Vec<u32>>,
}

impl UserRecord {
    /// An empty record for a run of `slices` slices.
    pub fn new(slices: usize) -> Self {
        Self {
            successes: vec![0; slices],
            latencies_us: Vec::new(),
            requests: 0,
            logins: 0,
            errors: 0,
            losses: Vec::new(),
            by_node: BTreeMap::new(),
        }
    }

    /// A `/profile` call answered 200 at `at` (since the start) after
    /// `latency`, by `node` if nginx said which.
    pub fn success(&mut self, live: &Live, at: Duration, latency: Duration, node: Option<&str>) {
        self.requests += 1;
        let slice = (at.as_millis() / SLICE.as_millis()) as usize;
        let slices = self.successes.len();
        if let Some(count) = self.successes.get_mut(slice) {
            *count += 1;
        }
        if let Some(node) = node {
            let counts = self
                .by_node
                .entry(node.to_owned())
                .or_insert_with(|| vec![0; slices]);
            if let Some(count) = counts.get_mut(slice) {
                *count += 1;
            }
        }
        self.latencies_us
            .push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
        live.successes.fetch_add(1, Ordering::Relaxed);
    }

    /// A `/profile` call answered 401 at `at`: the session is gone.
    pub fn loss(&mut self, live: &Live, at: Duration) {
        self.requests += 1;
        self.losses.push(at);
        live.lost.fetch_add(1, Ordering::Relaxed);
    }

    /// A login that succeeded.
    pub fn login(&mut self) {
        self.requests += 1;
        self.logins += 1;
    }

    /// A request (login or `/profile`) that failed.
    pub fn error(&mut self, live: &Live) {
        self.requests += 1;
        self.errors += 1;
        live.errors.fetch_add(1, Ordering::Relaxed);
    }
}

/// Every user's records, merged.
#[derive(Debug)]
pub struct Measurement {
    /// Successful `/profile` calls per slice.
    pub successes: Vec<u64>,
    /// Requests sent (logins during the run included).
    pub requests: u64,
    /// Logins during the run (the first ones happen before it starts).
    pub logins: u64,
    /// Failed requests: 5xx, unexpected statuses, no answer.
    pub errors: u64,
    latencies_us: Vec<u32>,
    losses: Vec<Duration>,
    /// Each user's first lost session (users who never lost one: none).
    first_losses: Vec<Duration>,
    /// Successes per slice, by node.
    pub by_node: BTreeMap<String, Vec<u64>>,
}

impl Measurement {
    /// Merges the users' records.
    pub fn merge(records: impl IntoIterator<Item = UserRecord>, slices: usize) -> Self {
        let mut merged = Self {
            successes: vec![0; slices],
            requests: 0,
            logins: 0,
            errors: 0,
            latencies_us: Vec::new(),
            losses: Vec::new(),
            first_losses: Vec::new(),
            by_node: BTreeMap::new(),
        };
        for record in records {
            if let Some(first) = record.losses.iter().min() {
                merged.first_losses.push(*first);
            }
            for (node, counts) in &record.by_node {
                let totals = merged
                    .by_node
                    .entry(node.clone())
                    .or_insert_with(|| vec![0; slices]);
                for (total, count) in totals.iter_mut().zip(counts) {
                    *total += u64::from(*count);
                }
            }
            for (total, count) in merged.successes.iter_mut().zip(&record.successes) {
                *total += u64::from(*count);
            }
            merged.requests += record.requests;
            merged.logins += record.logins;
            merged.errors += record.errors;
            merged.latencies_us.extend(record.latencies_us);
            merged.losses.extend(record.losses);
        }
        merged.latencies_us.sort_unstable();
        merged.losses.sort_unstable();
        merged
    }

    /// Successful `/profile` calls in all.
    pub fn total_successes(&self) -> u64 {
        self.successes.iter().sum()
    }

    /// The latency below which `quantile` (0..=1) of successful calls
    /// finished (nearest rank), if there were any.
    pub fn latency(&self, quantile: f64) -> Option<Duration> {
        let n = self.latencies_us.len();
        if n == 0 {
            return None;
        }
        let rank = ((quantile * n as f64).ceil() as usize).clamp(1, n);
        Some(Duration::from_micros(u64::from(
            self.latencies_us[rank - 1],
        )))
    }

    /// Sessions lost (401s) during `window` (times since the start).
    pub fn losses_in(&self, window: Range<Duration>) -> usize {
        self.losses.iter().filter(|at| window.contains(*at)).count()
    }

    /// Sessions lost in all.
    pub fn total_losses(&self) -> usize {
        self.losses.len()
    }

    /// 401s per second, slice by slice.
    pub fn loss_rates(&self) -> Vec<f64> {
        let mut counts = vec![0_u32; self.successes.len()];
        for at in &self.losses {
            let slice = (at.as_millis() / SLICE.as_millis()) as usize;
            if let Some(count) = counts.get_mut(slice) {
                *count += 1;
            }
        }
        counts
            .into_iter()
            .map(|count| f64::from(count) / SLICE.as_secs_f64())
            .collect()
    }

    /// Of `users`, how many had never been sent back to the login by the
    /// end of each slice.
    pub fn kept_sessions(&self, users: usize) -> Vec<usize> {
        (1..=self.successes.len())
            .map(|slice| {
                let end = SLICE * u32::try_from(slice).unwrap_or(u32::MAX);
                users - self.first_losses.iter().filter(|at| **at < end).count()
            })
            .collect()
    }

    /// Successful calls per second at `node` during `window`.
    pub fn node_rate(&self, node: &str, window: Range<Duration>) -> f64 {
        let Some(counts) = self.by_node.get(node) else {
            return 0.0;
        };
        let first = (window.start.as_millis() / SLICE.as_millis()) as usize;
        let last = (window.end.as_millis() / SLICE.as_millis()) as usize;
        let last = last.min(counts.len());
        if last <= first {
            return 0.0;
        }
        let total: u64 = counts[first..last].iter().sum();
        total as f64 / (SLICE.as_secs_f64() * (last - first) as f64)
    }

    /// Successful calls per second, slice by slice.
    pub fn rates(&self) -> Vec<f64> {
        self.successes
            .iter()
            .map(|&count| count as f64 / SLICE.as_secs_f64())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn merges_users_and_reads_percentiles_by_rank() {
        let live = Live::default();
        let mut a = UserRecord::new(2);
        let mut b = UserRecord::new(2);
        for i in 1..=99 {
            a.success(&live, ms(10), ms(i), Some("n1"));
        }
        b.success(&live, ms(600), ms(1000), Some("n2"));
        b.loss(&live, ms(700));
        b.error(&live);
        b.login();
        let m = Measurement::merge([a, b], 2);
        assert_eq!(m.successes, vec![99, 1]);
        assert_eq!(m.total_successes(), 100);
        assert_eq!(m.requests, 103);
        assert_eq!((m.errors, m.logins), (1, 1));
        assert_eq!(m.latency(0.5), Some(ms(50)));
        assert_eq!(m.latency(0.99), Some(ms(99)));
        assert_eq!(m.latency(1.0), Some(ms(1000)));
        assert_eq!(m.losses_in(ms(0)..ms(700)), 0);
        assert_eq!(m.losses_in(ms(700)..ms(800)), 1);
        assert_eq!(m.rates(), vec![198.0, 2.0]);
        assert_eq!(m.loss_rates(), vec![0.0, 2.0]);
        assert_eq!(m.kept_sessions(2), vec![2, 1]);
        assert_eq!(m.node_rate("n1", ms(0)..ms(500)), 198.0);
        assert_eq!(m.node_rate("n2", ms(0)..ms(1000)), 1.0);
        let totals = live.totals();
        assert_eq!((totals.successes, totals.errors, totals.lost), (100, 1, 1));
    }

    #[test]
    fn no_calls_no_latency() {
        let m = Measurement::merge([], 3);
        assert_eq!(m.latency(0.5), None);
        assert_eq!(m.successes, vec![0, 0, 0]);
    }

    #[test]
    fn slices_cover_the_whole_run() {
        assert_eq!(slices(Duration::from_secs(20)), 40);
        assert_eq!(slices(ms(1250)), 3);
    }
}
