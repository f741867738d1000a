//! The embedded default: sessions and users in one SQLite file.
//!
//! Design:
//! - WAL journal, so readers never wait for the writer and a crash (even
//!   `kill -9`) loses no committed transaction. `synchronous` defaults to
//!   `FULL`: a commit is on disk before the call returns, power loss included.
//! - One writer connection behind a mutex, used from the blocking thread pool.
//! - A small pool of reader connections used inline: reads are point lookups
//!   by primary key (microseconds) that WAL never blocks, so they do not need
//!   the round trip through the blocking pool.
//! - Schema versions tracked with `PRAGMA user_version`.
//!
//! Layout: this file holds the options, the store and its connections (the
//! reader pool, and the writer that runs every write transaction and then
//! `after_commit`). `schema.rs` the migrations, `rows.rs` the column lists
//! and row decoding, `sessions.rs`/`users.rs`/`tokens.rs` the three
//! contracts, `change_signal.rs` the cross-process change announcements.

mod apikeys;
mod audit;
mod change_signal;
mod outbox;
mod rows;
mod schema;
mod sessions;
mod tickets;
mod tokens;
mod users;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags};
use tessera_core::{Session, SessionIdHash, StoreError};

use self::change_signal::ChangeSignal;
use crate::lock::lock;
use crate::session_cache::SessionCache;

/// How hard SQLite works to make a commit durable (setting
/// `sqlite_synchronous`: `full` or `normal`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// Survives process crashes; the last commits may be lost on power loss.
    Normal,
    /// Survives power loss too: every commit is fsynced. The default.
    #[default]
    Full,
}

/// Settings for [`SqliteStore::open`].
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// Durability of commits.
    pub synchronous: Synchronous,
    /// How long a statement waits for another process's write lock.
    pub busy_timeout: Duration,
    /// Reader connections kept open for reuse.
    pub max_idle_readers: usize,
    /// Sessions kept in the in-process read cache; 0 turns it off.
    pub session_cache: usize,
    /// Longest a cached session is trusted before it is read again (a
    /// backstop for writers that bypass tessera).
    pub session_cache_max_age: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            synchronous: Synchronous::Full,
            busy_timeout: Duration::from_secs(5),
            max_idle_readers: 8,
            session_cache: 0,
            session_cache_max_age: Duration::from_secs(5),
        }
    }
}

/// Sessions and users in one SQLite database file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    options: SqliteOptions,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    cache: Option<SessionCache>,
    changes: ChangeSignal,
}

/// Which cached sessions a write changed.
#[derive(Debug)]
enum Affected {
    /// None (user writes, new sessions that ended no other).
    Nothing,
    /// These sessions.
    Sessions(Vec<SessionIdHash>),
    /// Rows not known one by one (per-user operations).
    All,
}

impl Inner {
    /// Runs after every commit, on the writer's blocking thread (so that a
    /// cancelled request cannot skip it): drops what this write changed from
    /// our cache and tells other processes' caches that something changed.
    fn after_commit(&self, affected: &Affected) {
        let ids = match affected {
            Affected::Nothing => return,
            Affected::Sessions(ids) => Some(ids),
            Affected::All => None,
        };
        if let Some(cache) = &self.cache {
            match ids {
                Some(ids) => cache.invalidate(ids),
                None => cache.clear(),
            }
        }
        match self.changes.announce() {
            Ok((found, written)) => {
                if let Some(cache) = &self.cache {
                    cache.adopt_own_nonce(found, written);
                }
            }
            Err(error) => {
                tracing::warn!(%error, "could not signal a session change to other processes");
                if let Some(cache) = &self.cache {
                    cache.clear();
                }
            }
        }
    }
}

impl SqliteStore {
    /// Opens the existing database at `path` read-only, checks that the
    /// file could be opened for writing, and returns how many migrations
    /// [`SqliteStore::open`] would apply. Changes nothing (`tessera config
    /// check`).
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] if the file cannot be opened (for
    /// reading or writing) or is not a database, or if its schema is newer
    /// than this tessera understands.
    pub fn pending_migrations(
        path: impl AsRef<Path>,
        options: &SqliteOptions,
    ) -> Result<usize, StoreError> {
        let path = path.as_ref();
        std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| {
                StoreError::Unavailable(format!("cannot open {} for writing: {e}", path.display()))
            })?;
        let reader = open_connection(path, options, false)?;
        schema::pending(&reader)
    }

    /// Opens (creating if needed) the database at `path` and brings its
    /// schema up to date.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] if the file cannot be opened or migrated.
    pub fn open(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let mut writer = open_connection(&path, &options, true)?;
        schema::migrate(&mut writer)?;
        let changes = ChangeSignal::open(&path).map_err(|e| {
            StoreError::Unavailable(format!(
                "cannot open the change signal beside {}: {e}",
                path.display()
            ))
        })?;
        let cache = (options.session_cache > 0)
            .then(|| SessionCache::new(options.session_cache, options.session_cache_max_age));
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                options,
                writer: Mutex::new(writer),
                readers: Mutex::new(Vec::new()),
                cache,
                changes,
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Inserts many sessions in one transaction: for imports from another
    /// system and for seeding benchmarks, where one commit per session would
    /// be needlessly slow. No per-user cap applies (the next login's
    /// `create` applies its own).
    ///
    /// # Errors
    ///
    /// Store errors; on error nothing is inserted.
    pub async fn insert_sessions(&self, sessions: Vec<Session>) -> Result<(), StoreError> {
        self.write(Affected::Nothing, move |tx| {
            sessions
                .iter()
                .try_for_each(|s| rows::insert_session(tx, s))
        })
        .await
    }

    /// Sessions in the read cache (0 when the cache is off).
    pub fn cached_sessions(&self) -> usize {
        self.inner.cache.as_ref().map_or(0, SessionCache::len)
    }

    /// Runs a read on a pooled reader connection, on the calling thread.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let conn = match lock(&self.inner.readers).pop() {
            Some(conn) => conn,
            None => open_connection(&self.inner.path, &self.inner.options, false)?,
        };
        let result = f(&conn).map_err(to_store_error);
        let mut idle = lock(&self.inner.readers);
        if idle.len() < self.inner.options.max_idle_readers {
            idle.push(conn);
        }
        result
    }

    /// Runs a write transaction on the writer connection, on a blocking
    /// thread, then invalidates what it `affected` (see `Inner::after_commit`).
    async fn write<T, F>(&self, affected: Affected, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        self.write_affecting(move |tx| Ok((f(tx)?, affected))).await
    }

    /// As [`SqliteStore::write`], for a write that learns what it affected
    /// as it runs (a create that ends a user's oldest sessions).
    async fn write_affecting<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Transaction<'_>) -> Result<(T, Affected), StoreError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let mut conn = lock(&inner.writer);
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(to_store_error)?;
            let (value, affected) = f(&tx)?;
            tx.commit().map_err(to_store_error)?;
            inner.after_commit(&affected);
            Ok(value)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("sqlite writer task failed: {e}")))?
    }
}

fn open_connection(
    path: &Path,
    options: &SqliteOptions,
    writer: bool,
) -> Result<Connection, StoreError> {
    let flags = if writer {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags)
        .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", path.display())))?;
    conn.busy_timeout(options.busy_timeout)
        .map_err(to_store_error)?;
    if writer {
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(to_store_error)?;
    }
    let synchronous = match options.synchronous {
        Synchronous::Normal => "NORMAL",
        Synchronous::Full => "FULL",
    };
    conn.pragma_update(None, "synchronous", synchronous)
        .map_err(to_store_error)?;
    Ok(conn)
}

fn to_store_error(error: rusqlite::Error) -> StoreError {
    match &error {
        rusqlite::Error::SqliteFailure(e, _) if e.code == ErrorCode::ConstraintViolation => {
            StoreError::Conflict
        }
        rusqlite::Error::FromSqlConversionFailure(..) | rusqlite::Error::InvalidColumnType(..) => {
            StoreError::Corrupt(error.to_string())
        }
        _ => StoreError::Unavailable(format!("sqlite: {error}")),
    }
}
