//! A bounded memo of credentials whose cryptography already checked out,
//! keyed by their exact text: access tokens (signature, claims) and sealed
//! cookies (decryption). A hit skips base64, crypto and parsing; callers still
//! check expiry and the revocation list on every request.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// The memo's hasher: foldhash, seeded per process. Every request with a
/// token or sealed cookie hashes its whole text (hundreds of bytes) here,
/// where the standard SipHash cost a bearer `/profile` a tenth of its own
/// instructions. Only verified credentials become keys, so nobody chooses
/// them; the per-process seed keeps them unpredictable all the same.
type Hasher = foldhash::fast::RandomState;

/// Entries kept at most; past that an arbitrary one makes room.
pub const CAPACITY: usize = 10_000;

/// The memo. See the module documentation.
#[derive(Debug)]
pub struct VerifiedCache<V> {
    entries: RwLock<HashMap<Box<str>, Arc<V>, Hasher>>,
}

impl<V> Default for VerifiedCache<V> {
    fn default() -> Self {
        Self {
            entries: RwLock::new(HashMap::default()),
        }
    }
}

impl<V> VerifiedCache<V> {
    /// What `text` verified to before, if remembered.
    pub fn get(&self, text: &str) -> Option<Arc<V>> {
        self.entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(text)
            .cloned()
    }

    /// Remembers what `text` verified to.
    pub fn insert(&self, text: &str, value: Arc<V>) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= CAPACITY
            && let Some(victim) = entries.keys().next().cloned()
        {
            entries.remove(&victim);
        }
        entries.insert(text.into(), value);
    }

    /// Forgets everything (the keys changed).
    pub fn clear(&self) {
        self.entries
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_within_capacity() {
        let cache = VerifiedCache::default();
        for i in 0..CAPACITY + 50 {
            cache.insert(&i.to_string(), Arc::new(i));
        }
        assert_eq!(cache.len(), CAPACITY);
        assert_eq!(
            cache.get(&(CAPACITY + 49).to_string()).as_deref(),
            Some(&(CAPACITY + 49))
        );
    }
}
