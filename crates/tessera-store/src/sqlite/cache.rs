//! A bounded in-process cache of sessions read from SQLite, and the change
//! signal that keeps caches in separate processes honest.
//!
//! Why: a SQLite point read costs a read transaction (file locks, WAL-index
//! checks) that dominates `GET /profile`. Sessions are read on every request
//! and written rarely, so the server keeps the ones it has read.
//!
//! Correctness rules:
//! - Every write this store makes invalidates the affected entries (or all of
//!   them) *after* it commits and *before* it returns.
//! - A read that missed inserts its result only if no invalidation happened
//!   while it was reading (the `epoch` check), so a racing logout can never
//!   be undone by a slow read.
//! - Writes from other processes (the `tessera user` commands, another
//!   server on the same data directory) are announced through the change
//!   file beside the database: after each session-affecting commit, every
//!   store writes a fresh random nonce there, under an exclusive file lock.
//!   A caching store reads the nonce (one 8-byte `pread`) before trusting its
//!   cache and drops everything when it is not the one it last saw.
//! - Entries older than `max_age` are re-read regardless: a backstop for
//!   writers that bypass tessera (e.g. a manual `sqlite3` session).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tessera_core::secret::fill_random;
use tessera_core::{Session, SessionIdHash};

/// The shared change signal: a file holding the nonce of the last
/// session-affecting write by any process.
#[derive(Debug)]
pub(super) struct ChangeSignal {
    file: File,
}

impl ChangeSignal {
    pub(super) fn open(database: &Path) -> std::io::Result<Self> {
        let mut name = database.as_os_str().to_owned();
        name.push("-changes");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(name)?;
        Ok(Self { file })
    }

    /// The current nonce; `None` if it cannot be read (callers then trust nothing).
    pub(super) fn current(&self) -> Option<u64> {
        let mut buf = [0u8; 8];
        match self.file.read_at(&mut buf, 0) {
            Ok(8) => Some(u64::from_le_bytes(buf)),
            Ok(_) => Some(0),
            Err(_) => None,
        }
    }

    /// Announces a write: under an exclusive lock, returns the nonce found
    /// (to detect writes by others) and stores a fresh one, which it returns.
    pub(super) fn announce(&self) -> std::io::Result<(Option<u64>, u64)> {
        self.file.lock()?;
        let found = self.current();
        let mut bytes = [0u8; 8];
        fill_random(&mut bytes);
        let result = self
            .file
            .write_all_at(&bytes, 0)
            .map(|()| (found, u64::from_le_bytes(bytes)));
        let _ = self.file.unlock();
        result
    }
}

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
    /// The change nonce the entries are valid for.
    nonce: Option<u64>,
}

/// Bounded session cache. See the module documentation for the rules.
#[derive(Debug)]
pub(super) struct SessionCache {
    state: RwLock<State>,
    capacity: usize,
    max_age: Duration,
}

/// What a miss must remember to insert its result safely.
#[derive(Debug, Clone, Copy)]
pub(super) struct MissTicket {
    epoch: u64,
    nonce: Option<u64>,
}

impl SessionCache {
    pub(super) fn new(capacity: usize, max_age: Duration) -> Self {
        Self {
            state: RwLock::new(State::default()),
            capacity,
            max_age,
        }
    }

    /// The cached session, if the cache is valid for `nonce`; otherwise a
    /// ticket for inserting what the caller is about to read.
    pub(super) fn get(
        &self,
        id: &SessionIdHash,
        nonce: Option<u64>,
    ) -> Result<Arc<Session>, MissTicket> {
        {
            let state = self.state.read().unwrap_or_else(|e| e.into_inner());
            if nonce.is_some() && state.nonce == nonce {
                if let Some(entry) = state
                    .entries
                    .get(id)
                    .filter(|e| e.read_at.elapsed() < self.max_age)
                {
                    return Ok(Arc::clone(&entry.session));
                }
                return Err(MissTicket {
                    epoch: state.epoch,
                    nonce,
                });
            }
        }
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
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
    pub(super) fn insert(&self, ticket: MissTicket, session: &Arc<Session>) {
        if ticket.nonce.is_none() {
            return;
        }
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
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
    pub(super) fn invalidate(&self, ids: &[SessionIdHash]) {
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        for id in ids {
            state.entries.remove(id);
        }
        state.epoch += 1;
    }

    /// Drops everything (after a write whose rows are not known one by one).
    pub(super) fn clear(&self) {
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        state.entries.clear();
        state.epoch += 1;
    }

    /// Records this process's own announcement. If the nonce found under the
    /// lock is not the one the cache is valid for, another process wrote in
    /// between: drop everything.
    pub(super) fn adopt_own_nonce(&self, found: Option<u64>, written: u64) {
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        if found.is_none() || state.nonce != found {
            state.entries.clear();
        }
        state.epoch += 1;
        state.nonce = Some(written);
    }

    /// Number of cached sessions.
    pub(super) fn len(&self) -> usize {
        self.state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .entries
            .len()
    }
}
