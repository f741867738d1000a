//! Places shared out per key under a cap: how the hashing queue
//! ([`crate::hashing`]) and the connection cap ([`crate::connections`])
//! keep one client from taking everything.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// At most `cap` places held per key at once.
#[derive(Debug)]
pub(crate) struct Shares<K: Hash + Eq> {
    cap: usize,
    held: Arc<Mutex<HashMap<K, usize>>>,
}

impl<K: Hash + Eq + Clone> Shares<K> {
    /// At most `cap` (at least 1) places per key.
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            held: Arc::default(),
        }
    }

    /// A place for `key`, or `None` when it holds `cap` already.
    pub(crate) fn claim(&self, key: K) -> Option<Share<K>> {
        let mut held = lock(&self.held);
        let count = held.entry(key.clone()).or_insert(0);
        if *count >= self.cap {
            return None;
        }
        *count += 1;
        Some(Share {
            key,
            held: Arc::clone(&self.held),
        })
    }

    /// Whether `key` holds a place now.
    #[cfg(test)]
    pub(crate) fn holds(&self, key: &K) -> bool {
        lock(&self.held).contains_key(key)
    }

    /// Keys holding a place now.
    #[cfg(test)]
    pub(crate) fn holders(&self) -> usize {
        lock(&self.held).len()
    }
}

/// One place held by a key; given back on drop (a key holding none is
/// forgotten).
#[derive(Debug)]
pub(crate) struct Share<K: Hash + Eq> {
    key: K,
    held: Arc<Mutex<HashMap<K, usize>>>,
}

impl<K: Hash + Eq> Drop for Share<K> {
    fn drop(&mut self) {
        let mut held = lock(&self.held);
        if let Some(count) = held.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.key);
            }
        }
    }
}

/// The map holds plain counts: a panic elsewhere cannot leave it torn.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
