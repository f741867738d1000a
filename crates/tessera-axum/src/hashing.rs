//! Password hashing off the async executor, with bounded concurrency.
//!
//! At most `workers` hashes run at once on the blocking thread pool, and at
//! most `queue` more wait. Past that, [`HashingPool::run`] fails at once with
//! [`Saturated`] (the server answers 503 with `Retry-After`) instead of letting
//! a login flood pile up memory and latency. Since only `workers` threads ever
//! hash, the async workers stay free for session checks.
//!
//! The places are shared out fairly: jobs run for a client
//! ([`HashingPool::run_for`], keyed by the throttle's client key) hold at
//! most `per_client` of them, so one address or IPv6 network cannot fill
//! the queue and make everyone else's logins answer 503.

use std::sync::Arc;

use tessera_core::PasswordHasher;
use tokio::sync::Semaphore;

use crate::metrics::Metrics;
use crate::shares::Shares;

/// The hashing queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("password hashing is saturated")]
pub struct Saturated;

/// Runs password hashing jobs on the blocking pool with bounded concurrency.
#[derive(Debug, Clone)]
pub struct HashingPool {
    hasher: Arc<PasswordHasher>,
    admitted: Arc<Semaphore>,
    running: Arc<Semaphore>,
    shares: Arc<Shares<String>>,
    metrics: Metrics,
}

/// The default number of places (running or waiting) one client may hold:
/// a quarter of them, so at least four clients always find room.
pub fn fair_share(workers: usize, queue: usize) -> usize {
    (workers.max(1) + queue).div_ceil(4)
}

impl HashingPool {
    /// A pool running at most `workers` jobs with at most `queue` waiting,
    /// one client holding at most `per_client` of those places.
    pub fn new(hasher: PasswordHasher, workers: usize, queue: usize, per_client: usize) -> Self {
        let workers = workers.max(1);
        Self {
            hasher: Arc::new(hasher),
            admitted: Arc::new(Semaphore::new(workers + queue)),
            running: Arc::new(Semaphore::new(workers)),
            shares: Arc::new(Shares::new(per_client)),
            metrics: Metrics::disabled(),
        }
    }

    /// Counts the queue's depth and each hash's time in `metrics`.
    #[must_use]
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Runs `job` for `client` (see [`HashingPool::run`]), unless that
    /// client already holds its share of the places.
    ///
    /// # Errors
    ///
    /// [`Saturated`] at once when the client's share or the queue is full.
    pub async fn run_for<T, F>(&self, client: &str, job: F) -> Result<T, Saturated>
    where
        T: Send + 'static,
        F: FnOnce(&PasswordHasher) -> T + Send + 'static,
    {
        let _share = self.shares.claim(client.to_owned()).ok_or(Saturated)?;
        self.run(job).await
    }

    /// Runs `job` on a blocking thread once a worker is free.
    ///
    /// # Errors
    ///
    /// [`Saturated`] at once when the queue is full.
    pub async fn run<T, F>(&self, job: F) -> Result<T, Saturated>
    where
        T: Send + 'static,
        F: FnOnce(&PasswordHasher) -> T + Send + 'static,
    {
        let _admitted = Arc::clone(&self.admitted)
            .try_acquire_owned()
            .map_err(|_| Saturated)?;
        let _depth = QueueDepth::enter(&self.metrics);
        let running = Arc::clone(&self.running)
            .acquire_owned()
            .await
            .map_err(|_| Saturated)?;
        let hasher = Arc::clone(&self.hasher);
        let metrics = self.metrics.clone();
        tokio::task::spawn_blocking(move || {
            let _running = running;
            let started = std::time::Instant::now();
            let done = job(&hasher);
            metrics.hash_time(started.elapsed());
            done
        })
        .await
        .map_err(|_| Saturated)
    }
}

/// One place in the queue, counted in the depth gauge while held (also
/// when the waiting request is dropped).
struct QueueDepth<'a>(&'a Metrics);

impl<'a> QueueDepth<'a> {
    fn enter(metrics: &'a Metrics) -> Self {
        metrics.hash_queue(1);
        Self(metrics)
    }
}

impl Drop for QueueDepth<'_> {
    fn drop(&mut self) {
        self.0.hash_queue(-1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_full_queue_refuses_at_once() {
        let pool = HashingPool::new(PasswordHasher::new(1024, 1, 1).unwrap(), 1, 1, 2);
        let slow = |_: &PasswordHasher| std::thread::sleep(Duration::from_millis(300));
        let first = tokio::spawn({
            let pool = pool.clone();
            async move { pool.run(slow).await }
        });
        let second = tokio::spawn({
            let pool = pool.clone();
            async move { pool.run(slow).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(pool.run(|_| ()).await, Err(Saturated));
        assert!(first.await.unwrap().is_ok());
        assert!(second.await.unwrap().is_ok());
        assert!(pool.run(|_| ()).await.is_ok(), "capacity comes back");
    }

    #[tokio::test]
    async fn one_client_cannot_take_every_place() {
        let pool = HashingPool::new(PasswordHasher::new(1024, 1, 1).unwrap(), 1, 3, 2);
        let slow = |_: &PasswordHasher| std::thread::sleep(Duration::from_millis(300));
        let flood: Vec<_> = (0..2)
            .map(|_| {
                let pool = pool.clone();
                tokio::spawn(async move { pool.run_for("198.51.100.1", slow).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(pool.run_for("198.51.100.1", |_| ()).await, Err(Saturated));
        assert_eq!(pool.run_for("2001:db8::/64", |_| 7).await, Ok(7));
        for job in flood {
            assert!(job.await.unwrap().is_ok());
        }
        assert!(
            pool.run_for("198.51.100.1", |_| ()).await.is_ok(),
            "the share comes back"
        );
        assert_eq!(pool.shares.holders(), 0);
    }

    #[test]
    fn the_default_share_leaves_room_for_three_more_clients() {
        assert_eq!(fair_share(1, 32), 9);
        assert_eq!(fair_share(1, 0), 1);
        assert_eq!(fair_share(4, 4), 2);
    }
}
