//! The near-cache: sessions a node has read from Redis, kept in process
//! memory and dropped when any node changes them.
//!
//! Every script that changes or ends a session publishes the session's id
//! hash on `<prefix>:sessions`. A node with the near-cache subscribes to that
//! channel and drops what it hears about. The cache is trusted only while the
//! subscription is connected; each re-established subscription starts a new
//! view (announcements may have been missed meanwhile), so everything read
//! before is dropped. Entries are also re-read after `max_age`, and a cached
//! session whose `expires_at` has passed is re-read (another node may have
//! extended it). The rules that keep racing reads from resurrecting a logout
//! are those of [`SessionCache`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fred::clients::SubscriberClient;
use fred::prelude::{ClientLike, EventInterface, PubsubInterface};
use tessera_core::{SessionIdHash, StoreError};

use super::unavailable;
use crate::session_cache::SessionCache;

/// Near-cache state shared by the store and its subscription task.
pub(crate) struct Near {
    pub(crate) cache: SessionCache,
    generation: AtomicU64,
    subscriber: SubscriberClient,
}

impl Near {
    /// Subscribes to `channel` and starts dropping what it announces.
    pub(crate) async fn start(
        subscriber: SubscriberClient,
        channel: String,
        capacity: usize,
        max_age: Duration,
        timeout: Duration,
    ) -> Result<Arc<Self>, StoreError> {
        tokio::time::timeout(timeout * 2, subscriber.init())
            .await
            .map_err(|_| StoreError::Unavailable("redis: connect timed out".into()))?
            .map_err(unavailable)?;
        let _resubscriber = subscriber.manage_subscriptions();
        subscriber.subscribe(channel).await.map_err(unavailable)?;
        let near = Arc::new(Self {
            cache: SessionCache::new(capacity, max_age),
            generation: AtomicU64::new(1),
            subscriber,
        });
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
                            Ok(_) | Err(RecvError::Lagged(_)) => near.new_view(),
                            Err(RecvError::Closed) => break,
                        }
                    }
                }
            }
        });
        Ok(near)
    }

    /// Announcements may have been missed: nothing read before counts.
    fn new_view(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.cache.clear();
    }

    /// The view to read the cache under: none while the subscription is down.
    pub(crate) fn view(&self) -> Option<u64> {
        self.subscriber
            .is_connected()
            .then(|| self.generation.load(Ordering::Acquire))
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
