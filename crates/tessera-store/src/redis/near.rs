//! The near-cache: sessions a node has read from Redis, kept in process
//! memory and dropped when any node changes them.
//!
//! Every script that changes or ends a session publishes the session's id
//! hash on `<prefix>:sessions`. A node with the near-cache subscribes to that
//! channel and drops what it hears about. The cache is trusted only while the
//! subscription is connected; each re-established subscription starts a new
//! view (announcements may have been missed meanwhile), so everything read
//! before is dropped, and nothing is trusted until the channel is
//! subscribed again. A subscription carries no traffic while nothing
//! changes, so a frozen Redis or a half-open connection would go unnoticed
//! by it: a heartbeat `PING` on the subscription's own connection, every
//! quarter of the timeout, must have been answered within the last timeout,
//! or the cache is bypassed (and requests fail closed with the store). Entries are also re-read after `max_age`, and a cached
//! session whose `expires_at` has passed is re-read (another node may have
//! extended it). The rules that keep racing reads from resurrecting a logout
//! are those of [`SessionCache`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fred::clients::SubscriberClient;
use fred::prelude::{ClientLike, EventInterface};
use tessera_core::SessionIdHash;

use crate::session_cache::SessionCache;

/// Near-cache state shared by the store and its subscription task.
pub(crate) struct Near {
    pub(crate) cache: SessionCache,
    generation: AtomicU64,
    subscriber: SubscriberClient,
    /// False from a reconnect until the channel is subscribed again.
    subscribed: AtomicBool,
    /// When the heartbeat was last answered, in ms since `started`.
    last_answer: AtomicU64,
    started: Instant,
    timeout: Duration,
}

impl Near {
    /// Starts dropping what `subscriber` (already subscribed to `channel`)
    /// hears announced.
    pub(crate) fn start(
        subscriber: SubscriberClient,
        channel: String,
        capacity: usize,
        max_age: Duration,
        timeout: Duration,
    ) -> Arc<Self> {
        let near = Arc::new(Self {
            cache: SessionCache::new(capacity, max_age),
            generation: AtomicU64::new(1),
            subscriber,
            subscribed: AtomicBool::new(true),
            last_answer: AtomicU64::new(0),
            started: Instant::now(),
            timeout,
        });
        tokio::spawn(heartbeat(Arc::downgrade(&near)));
        let mut messages = near.subscriber.message_rx();
        let mut reconnects = near.subscriber.reconnect_rx();
        let weak = Arc::downgrade(&near);
        tokio::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                tokio::select! {
                    message = messages.recv() => {
                        let Some(near) = weak.upgrade() else { break };
                        match message {
                            Ok(message) => match message.value.as_bytes().and_then(|b| <[u8; 32]>::try_from(b).ok()) {
                                Some(hash) => near.cache.invalidate(&[SessionIdHash::from_bytes(hash)]),
                                None => near.new_view(),
                            },
                            Err(RecvError::Lagged(_)) => near.new_view(),
                            Err(RecvError::Closed) => break,
                        }
                    }
                    reconnect = reconnects.recv() => {
                        let Some(near) = weak.upgrade() else { break };
                        match reconnect {
                            Ok(_) | Err(RecvError::Lagged(_)) => {
                                near.subscribed.store(false, Ordering::Release);
                                near.new_view();
                                let subscriber = near.subscriber.clone();
                                drop(near);
                                let alive = weak.clone();
                                if !super::resubscribe(&subscriber, &channel, || alive.strong_count() > 0).await {
                                    break;
                                }
                                let Some(near) = weak.upgrade() else { break };
                                // Whatever was read while unsubscribed is dropped.
                                near.new_view();
                                near.subscribed.store(true, Ordering::Release);
                            }
                            Err(RecvError::Closed) => break,
                        }
                    }
                }
            }
        });
        near
    }

    /// Announcements may have been missed: nothing read before counts.
    fn new_view(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.cache.clear();
    }

    fn millis_since_start(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The view to read the cache under: none while the subscription is
    /// down or Redis has not answered a heartbeat within the timeout.
    pub(crate) fn view(&self) -> Option<u64> {
        let since_answer = self
            .millis_since_start()
            .saturating_sub(self.last_answer.load(Ordering::Acquire));
        let answering = since_answer < u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX);
        (answering && self.subscribed.load(Ordering::Acquire) && self.subscriber.is_connected())
            .then(|| self.generation.load(Ordering::Acquire))
    }
}

/// Pings Redis on the subscription's connection every quarter of the
/// timeout and records each answer.
async fn heartbeat(near: std::sync::Weak<Near>) {
    let (period, client) = match near.upgrade() {
        Some(near) => (
            (near.timeout / 4).max(Duration::from_millis(10)),
            near.subscriber.clone(),
        ),
        None => return,
    };
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let answered = client.ping::<fred::types::Value>(None).await.is_ok();
        let Some(near) = near.upgrade() else { return };
        if answered {
            near.last_answer
                .store(near.millis_since_start().max(1), Ordering::Release);
        }
    }
}

impl Drop for Near {
    fn drop(&mut self) {
        let subscriber = self.subscriber.clone();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = subscriber.quit().await;
            });
        }
    }
}
