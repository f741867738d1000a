//! Progress on standard error while the lab runs (the results go to
//! stdout): a line per step with the elapsed time and an estimate of what
//! is left, and a line per second while users run.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::metrics::Live;

/// The whole run's clock and its estimate of what is left.
#[derive(Debug)]
pub struct Progress {
    start: Instant,
    /// Estimated durations of the steps not yet begun.
    left: Mutex<Duration>,
}

impl Progress {
    /// A run estimated to take `total`.
    pub fn new(total: Duration) -> Self {
        Self {
            start: Instant::now(),
            left: Mutex::new(total),
        }
    }

    /// Announces a step (`experiment`, `what`) expected to take `estimate`.
    pub fn step(&self, experiment: &str, what: &str, estimate: Duration) {
        let mut left = self.left.lock().unwrap_or_else(PoisonError::into_inner);
        let remaining = *left;
        *left = left.saturating_sub(estimate);
        eprintln!(
            "lab: [{experiment}] {what} (elapsed {}, about {} left)",
            clock(self.start.elapsed()),
            clock(remaining)
        );
    }

    /// Time since the lab started.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }
}

/// `m:ss`.
pub fn clock(duration: Duration) -> String {
    let seconds = duration.as_secs();
    format!("{}:{:02}", seconds / 60, seconds % 60)
}

/// Prints a line every second until the run ends (or the task is dropped).
pub async fn every_second(name: &'static str, live: Arc<Live>, start: Instant, duration: Duration) {
    let mut ticks = tokio::time::interval_at(
        (start + Duration::from_secs(1)).into(),
        Duration::from_secs(1),
    );
    let mut last = live.totals();
    let mut last_at = start;
    loop {
        let now = ticks.tick().await.into_std();
        if now > start + duration + Duration::from_millis(500) {
            return;
        }
        let totals = live.totals();
        let rate = (totals.successes - last.successes) as f64 / (now - last_at).as_secs_f64();
        eprintln!(
            "[{name:<15}] {:>5.1}s of {:.0}s  {rate:>7.0} ok/s   errors {:<4}  sessions lost {}",
            (now - start).as_secs_f64(),
            duration.as_secs_f64(),
            totals.errors,
            totals.lost
        );
        last = totals;
        last_at = now;
    }
}
