//! Password hashing off the async executor, with bounded concurrency.
//!
//! At most `workers` hashes run at once on the blocking thread pool, and at
//! most `queue` more wait. Past that, [`HashingPool::run`] fails at once with
//! [`Saturated`] (the server answers 503 with `Retry-After`) instead of letting
//! a login flood pile up memory and latency. Since only `workers` threads ever
//! hash, the async workers stay free for session checks.

use std::sync::Arc;

use tessera_core::PasswordHasher;
use tokio::sync::Semaphore;

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
}

impl HashingPool {
    /// A pool running at most `workers` jobs with at most `queue` waiting.
    pub fn new(hasher: PasswordHasher, workers: usize, queue: usize) -> Self {
        let workers = workers.max(1);
        Self {
            hasher: Arc::new(hasher),
            admitted: Arc::new(Semaphore::new(workers + queue)),
            running: Arc::new(Semaphore::new(workers)),
        }
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
        let running = Arc::clone(&self.running)
            .acquire_owned()
            .await
            .map_err(|_| Saturated)?;
        let hasher = Arc::clone(&self.hasher);
        tokio::task::spawn_blocking(move || {
            let _running = running;
            job(&hasher)
        })
        .await
        .map_err(|_| Saturated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_full_queue_refuses_at_once() {
        let pool = HashingPool::new(PasswordHasher::new(1024, 1, 1).unwrap(), 1, 1);
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
}
