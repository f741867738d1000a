//! Progress on standard error while a row runs (the results go to stdout).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::metrics::Live;

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
            "[{name:<15}] {:>5.1}s  {rate:>7.0} ok/s   errors {:<4}  sessions lost {}",
            (now - start).as_secs_f64(),
            totals.errors,
            totals.lost
        );
        last = totals;
        last_at = now;
    }
}
