//! The change signal that keeps SQLite session caches in separate
//! processes honest.
//!
//! Why a cache: a SQLite point read costs a read transaction (file locks,
//! WAL-index checks) that dominates `GET /profile`. Sessions are read on
//! every request and written rarely, so the server keeps the ones it has
//! read, in a `SessionCache` (see `session_cache.rs` for its rules).
//!
//! Writes from other processes (the `tessera user` commands, another server
//! on the same data directory) are announced through the change file beside
//! the database: after each session-affecting commit, every store writes a
//! fresh random nonce there, under an exclusive file lock. A caching store
//! reads the nonce (one 8-byte `pread`) before trusting its cache and drops
//! everything when it is not the one it last saw. Writers that bypass
//! tessera (e.g. a manual `sqlite3` session) announce nothing; the cache's
//! maximum age is the backstop for them.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

use tessera_core::secret::fill_random;

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
