//! A bounded in-process cache of sessions read from a shared store, valid
//! for one "view" of the store's change announcements.
//!
//! Used in front of SQLite (the view is the cross-process change nonce, see
//! `sqlite/change_signal.rs`) and in front of Redis (the view is the
//! generation of the invalidation subscription, see `redis/near.rs`).
//!
//! Correctness rules:
//! - Every write the owning store makes invalidates the affected entries (or
//!   all of them) *after* it is durable and *before* it returns.
//! - A read that missed inserts its result only if no invalidation happened
//!   while it was reading (the `epoch` check), so a racing logout can never
//!   be undone by a slow read.
//! - Entries are valid only for the view they were read under; a different
//!   view (another process wrote, the subscription was re-established) drops
//!   them all, and no view (`None`: announcements cannot be trusted right
//!   now) bypasses the cache.
//! - Entries older than `max_age` are re-read regardless (a backstop).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tessera_core::{CacheStats, Session, SessionIdHash};

use crate::lock;

#[derive(Debug)]
struct Entry {
    session: Arc<Session>,
    read_at: Instant,
}

#[derive(Debug, Default)]
struct State {
    entries: HashMap<SessionIdHash, Entry>,
    /// Bumped by every invalidation; a miss inserts only if it is unchanged.
    epoch: u64,
    /// The view the entries are valid for.
    nonce: Option<u64>,
}

/// Bounded session cache. See the module documentation for the rules.
#[derive(Debug)]
pub(crate) struct SessionCache {
    state: RwLock<State>,
    capacity: usize,
    max_age: Duration,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// What a miss must remember to insert its result safely.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MissTicket {
    epoch: u64,
    nonce: Option<u64>,
}

impl SessionCache {
    pub(crate) fn new(capacity: usize, max_age: Duration) -> Self {
        Self {
            state: RwLock::new(State::default()),
            capacity,
            max_age,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// Lookups that found a valid entry, and those that did not, so far.
    pub(crate) fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }

    /// The cached session, if the cache is valid for `nonce`; otherwise a
    /// ticket for inserting what the caller is about to read.
    pub(crate) fn get(
        &self,
        id: &SessionIdHash,
        nonce: Option<u64>,
    ) -> Result<Arc<Session>, MissTicket> {
        {
            let state = lock::read(&self.state);
            if nonce.is_some() && state.nonce == nonce {
                if let Some(entry) = state
                    .entries
                    .get(id)
                    .filter(|e| e.read_at.elapsed() < self.max_age)
                {
                    self.hits.fetch_add(1, Ordering::Relaxed);
                    return Ok(Arc::clone(&entry.session));
                }
                self.misses.fetch_add(1, Ordering::Relaxed);
                return Err(MissTicket {
                    epoch: state.epoch,
                    nonce,
                });
            }
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let mut state = lock::write(&self.state);
        if state.nonce != nonce {
            // Someone else wrote (or the signal is unreadable): trust nothing.
            state.entries.clear();
            state.epoch += 1;
            state.nonce = nonce;
        }
        Err(MissTicket {
            epoch: state.epoch,
            nonce,
        })
    }

    /// Caches what a miss read, unless anything was invalidated meanwhile.
    pub(crate) fn insert(&self, ticket: MissTicket, session: &Arc<Session>) {
        if ticket.nonce.is_none() {
            return;
        }
        let mut state = lock::write(&self.state);
        if state.epoch != ticket.epoch || state.nonce != ticket.nonce {
            return;
        }
        if state.entries.len() >= self.capacity
            && let Some(victim) = state.entries.keys().next().copied()
        {
            state.entries.remove(&victim);
        }
        state.entries.insert(
            session.id_hash,
            Entry {
                session: Arc::clone(session),
                read_at: Instant::now(),
            },
        );
    }

    /// Drops the given entries (after this process wrote them).
    pub(crate) fn invalidate(&self, ids: &[SessionIdHash]) {
        let mut state = lock::write(&self.state);
        for id in ids {
            state.entries.remove(id);
        }
        state.epoch += 1;
    }

    /// Drops everything (after a write whose rows are not known one by one).
    pub(crate) fn clear(&self) {
        let mut state = lock::write(&self.state);
        state.entries.clear();
        state.epoch += 1;
    }

    /// Records this process's own announcement. If the nonce found under the
    /// lock is not the one the cache is valid for, another process wrote in
    /// between: drop everything. (Only SQLite announces its own writes.)
    #[cfg(feature = "sqlite")]
    pub(crate) fn adopt_own_nonce(&self, found: Option<u64>, written: u64) {
        let mut state = lock::write(&self.state);
        if found.is_none() || state.nonce != found {
            state.entries.clear();
        }
        state.epoch += 1;
        state.nonce = Some(written);
    }

    /// Number of cached sessions.
    pub(crate) fn len(&self) -> usize {
        lock::read(&self.state).entries.len()
    }
}
