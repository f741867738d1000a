//! hyper's timer for `header_read_timeout`, without a timer-wheel insert
//! and removal per request.
//!
//! hyper starts a sleep each time a connection waits for a request head and
//! drops it once the head is in: with `hyper_util`'s `TokioTimer`, every
//! request on a kept-alive connection registers a tokio timer and removes
//! it again, under the time driver's lock (measured: about 2 % of the CPU
//! `GET /health` costs). [`HeaderTimer`] keeps the dropped sleeps in a
//! small per-thread spare list instead and hands them out again: a spare
//! sleep is still registered with the driver for its old deadline, and
//! moving a registered deadline later is an atomic store in tokio (the
//! driver files it anew only when the old deadline comes). A spare whose
//! deadline has passed is registered again, as a new one would be.
//!
//! The deadline semantics are tokio's own: a handed-out sleep is a
//! `tokio::time::Sleep` reset to the asked deadline. A spare's last waker
//! is woken once if its old deadline passes while it waits in the list
//! (a spurious poll of a connection, at most once per spare per
//! `header_read_timeout`).

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::rt::{Sleep, Timer};
use tokio::runtime::Id as RuntimeId;

/// Spare sleeps kept per thread (beyond that they are dropped: a burst of
/// closed connections leaves no more than this registered).
const SPARES_PER_THREAD: usize = 256;

thread_local! {
    /// Spare sleeps, with the runtime they belong to: a sleep is registered
    /// with one runtime's time driver, and one thread may run several
    /// runtimes over its life (tests do). The servers of one runtime share
    /// them.
    static SPARES: RefCell<Vec<(RuntimeId, Pin<Box<tokio::time::Sleep>>)>> =
        const { RefCell::new(Vec::new()) };
}

/// A [`hyper::rt::Timer`] over tokio's timer that reuses the sleeps hyper
/// drops.
#[derive(Debug, Clone)]
pub(crate) struct HeaderTimer {
    id: RuntimeId,
}

impl HeaderTimer {
    /// A timer for the servers of the current runtime.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub(crate) fn new() -> Self {
        Self {
            id: tokio::runtime::Handle::current().id(),
        }
    }

    fn take_spare(&self) -> Option<Pin<Box<tokio::time::Sleep>>> {
        SPARES
            .try_with(|spares| {
                let mut spares = spares.borrow_mut();
                match spares.last() {
                    Some((id, _)) if *id == self.id => spares.pop().map(|(_, sleep)| sleep),
                    // Another runtime's (one this thread ran before): not
                    // ours to reuse; dropped here.
                    Some(_) => {
                        spares.retain(|(id, _)| *id == self.id);
                        spares.pop().map(|(_, sleep)| sleep)
                    }
                    None => None,
                }
            })
            .ok()
            .flatten()
    }
}

impl Timer for HeaderTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        self.sleep_until(self.now() + duration)
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        let deadline = tokio::time::Instant::from_std(deadline);
        let sleep = match self.take_spare() {
            Some(mut sleep) => {
                sleep.as_mut().reset(deadline);
                sleep
            }
            None => Box::pin(tokio::time::sleep_until(deadline)),
        };
        Box::pin(SpareOnDrop {
            timer: self.id,
            sleep: Some(sleep),
        })
    }

    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn Sleep>>, new_deadline: Instant) {
        match sleep.as_mut().downcast_mut_pin::<SpareOnDrop>() {
            Some(ours) => ours.reset(new_deadline),
            None => *sleep = self.sleep_until(new_deadline),
        }
    }
}

/// A handed-out sleep: back to the spare list when hyper drops it.
struct SpareOnDrop {
    timer: RuntimeId,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl SpareOnDrop {
    fn reset(self: Pin<&mut Self>, deadline: Instant) {
        // Nothing here is structurally pinned: the sleep is boxed.
        if let Some(sleep) = self.get_mut().sleep.as_mut() {
            sleep
                .as_mut()
                .reset(tokio::time::Instant::from_std(deadline));
        }
    }
}

impl Future for SpareOnDrop {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match self.get_mut().sleep.as_mut() {
            Some(sleep) => sleep.as_mut().poll(cx),
            None => Poll::Ready(()),
        }
    }
}

impl Sleep for SpareOnDrop {}

impl Drop for SpareOnDrop {
    fn drop(&mut self) {
        let Some(sleep) = self.sleep.take() else {
            return;
        };
        // During the thread's teardown the list is gone: the sleep is
        // simply dropped.
        let _ = SPARES.try_with(|spares| {
            let mut spares = spares.borrow_mut();
            if spares.len() < SPARES_PER_THREAD {
                spares.push((self.timer, sleep));
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_sleep_ends_at_its_deadline_new_or_reused() {
        let timer = HeaderTimer::new();
        let start = timer.now();
        timer.sleep(Duration::from_secs(15)).await;
        assert!(timer.now() >= start + Duration::from_secs(15));
        // The dropped sleep is reused, for a deadline later than its old
        // one, and earlier than its old one.
        for secs in [20, 1] {
            let start = timer.now();
            let sleep = timer.sleep(Duration::from_secs(secs));
            assert_eq!(
                SPARES.with_borrow(Vec::len),
                0,
                "the spare was handed out again"
            );
            sleep.await;
            let slept = timer.now() - start;
            assert!(
                slept >= Duration::from_secs(secs) && slept < Duration::from_secs(secs + 1),
                "{slept:?} for {secs} s"
            );
        }
        assert_eq!(SPARES.with_borrow(Vec::len), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_reused_sleep_does_not_end_before_its_new_deadline() {
        let timer = HeaderTimer::new();
        // Dropped while still registered for 5 s from now.
        drop(timer.sleep(Duration::from_secs(5)));
        let start = timer.now();
        let mut sleep = timer.sleep(Duration::from_secs(15));
        // Past the old deadline: still pending.
        assert!(
            tokio::time::timeout(Duration::from_secs(10), &mut sleep)
                .await
                .is_err()
        );
        sleep.await;
        assert!(timer.now() - start >= Duration::from_secs(15));
    }

    #[test]
    fn another_runtimes_spares_are_not_reused() {
        let runtime = || {
            tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .unwrap()
        };
        runtime().block_on(async {
            let timer = HeaderTimer::new();
            drop(timer.sleep(Duration::from_secs(5)));
            // A second server of the same runtime takes it.
            let other = HeaderTimer::new();
            assert!(other.take_spare().is_some());
            drop(other.sleep(Duration::from_secs(5)));
        });
        assert_eq!(SPARES.with_borrow(Vec::len), 1);
        runtime().block_on(async {
            let timer = HeaderTimer::new();
            assert!(timer.take_spare().is_none());
            assert_eq!(SPARES.with_borrow(Vec::len), 0, "the stale spare is gone");
            timer.sleep(Duration::from_millis(1)).await;
        });
    }
}
