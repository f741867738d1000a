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

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, Row, params};

mod cache;
mod tokens;
use cache::{ChangeSignal, SessionCache};
use serde_json::{Map, Value};
use tessera_core::merge::merge_patch;
use tessera_core::store::data_size;
use tessera_core::{
    Email, PasswordHash, Role, Session, SessionHandle, SessionIdHash, SessionStore, StoreError,
    Timestamp, User, UserId, UserStore,
};
use uuid::Uuid;

/// How hard SQLite works to make a commit durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
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
    /// None (user writes, new sessions).
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

/// Each entry moves the schema one version forward; never edit a released one.
const MIGRATIONS: &[&str] = &[
    // 1: users and sessions.
    "CREATE TABLE users (
        id            TEXT PRIMARY KEY,
        email         TEXT NOT NULL UNIQUE,
        roles         TEXT NOT NULL,
        disabled      INTEGER NOT NULL DEFAULT 0,
        password_hash TEXT NOT NULL,
        created_at    INTEGER NOT NULL
    );
    CREATE TABLE sessions (
        id_hash             BLOB PRIMARY KEY,
        handle              TEXT NOT NULL,
        user_id             BLOB NOT NULL,
        email               TEXT NOT NULL,
        roles               TEXT NOT NULL,
        created_at          INTEGER NOT NULL,
        last_seen           INTEGER NOT NULL,
        expires_at          INTEGER NOT NULL,
        absolute_expires_at INTEGER NOT NULL,
        ip                  TEXT,
        user_agent          TEXT,
        data                TEXT NOT NULL DEFAULT '{}',
        rotate              INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    CREATE INDEX sessions_by_user ON sessions (user_id);
    CREATE INDEX sessions_by_expiry ON sessions (expires_at);",
    // 2: refresh-token families and the revocation list.
    "CREATE TABLE token_families (
        id            TEXT PRIMARY KEY,
        user_id       BLOB NOT NULL,
        email         TEXT NOT NULL,
        roles         TEXT NOT NULL,
        created_at    INTEGER NOT NULL,
        expires_at    INTEGER NOT NULL,
        generation    INTEGER NOT NULL,
        current_hash  BLOB NOT NULL,
        previous_hash BLOB,
        rotated_at    INTEGER NOT NULL
    );
    CREATE INDEX token_families_by_user ON token_families (user_id);
    CREATE TABLE revocations (
        kind    TEXT NOT NULL,
        subject TEXT NOT NULL,
        cutoff  INTEGER NOT NULL,
        until   INTEGER NOT NULL,
        saved   INTEGER NOT NULL,
        PRIMARY KEY (kind, subject)
    );
        CREATE INDEX revocations_by_saved ON revocations (saved);
    CREATE TABLE audit_events (
        at      INTEGER NOT NULL,
        kind    TEXT NOT NULL,
        user_id TEXT,
        detail  TEXT NOT NULL
    );
    CREATE INDEX audit_events_by_time ON audit_events (at);",
];

// Column lists as macros so that every statement is a `&'static str`
// (prepared-statement cache lookups without building the SQL each time).
macro_rules! session_columns {
    () => {
        "id_hash, handle, user_id, email, roles, created_at, last_seen, expires_at, \
         absolute_expires_at, ip, user_agent, data, rotate"
    };
}
macro_rules! user_columns {
    () => {
        "id, email, roles, disabled, password_hash, created_at"
    };
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and brings its
    /// schema up to date.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] if the file cannot be opened or migrated.
    pub fn open(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let mut writer = open_connection(&path, &options, true)?;
        migrate(&mut writer)?;
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
    /// be needlessly slow.
    ///
    /// # Errors
    ///
    /// Store errors; on error nothing is inserted.
    pub async fn insert_sessions(&self, sessions: Vec<Session>) -> Result<(), StoreError> {
        self.write(Affected::Nothing, move |tx| {
            sessions.iter().try_for_each(|s| insert_session(tx, s))
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
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let mut conn = lock(&inner.writer);
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(to_store_error)?;
            let value = f(&tx)?;
            tx.commit().map_err(to_store_error)?;
            inner.after_commit(&affected);
            Ok(value)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("sqlite writer task failed: {e}")))?
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
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

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)
        .map_err(to_store_error)?;
    let version: i64 = tx
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(to_store_error)?;
    let version = usize::try_from(version).unwrap_or(usize::MAX);
    if version > MIGRATIONS.len() {
        return Err(StoreError::Unavailable(format!(
            "database schema version {version} is newer than this tessera understands ({})",
            MIGRATIONS.len()
        )));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        tx.execute_batch(sql).map_err(to_store_error)?;
        tx.pragma_update(None, "user_version", (index + 1) as i64)
            .map_err(to_store_error)?;
    }
    tx.commit().map_err(to_store_error)
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

fn corrupt(what: &str) -> impl Fn(String) -> rusqlite::Error + '_ {
    move |detail| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("{what}: {detail}").into(),
        )
    }
}

fn encode_roles(roles: &[Role]) -> String {
    roles.iter().map(Role::as_str).collect::<Vec<_>>().join(" ")
}

fn decode_roles(text: &str) -> rusqlite::Result<Vec<Role>> {
    text.split_whitespace()
        .map(|r| Role::parse(r).map_err(|e| corrupt("role")(e.to_string())))
        .collect()
}

fn decode_uuid_blob(bytes: &[u8]) -> rusqlite::Result<UserId> {
    Uuid::from_slice(bytes)
        .map(UserId::from_uuid)
        .map_err(|e| corrupt("user id")(e.to_string()))
}

fn session_from_row(row: &Row<'_>) -> rusqlite::Result<Session> {
    let id_hash: [u8; 32] = row.get(0)?;
    let user_id: Vec<u8> = row.get(2)?;
    let email: String = row.get(3)?;
    let roles: String = row.get(4)?;
    let data: String = row.get(11)?;
    let data = match serde_json::from_str::<Value>(&data) {
        Ok(Value::Object(map)) => map,
        _ => return Err(corrupt("session data")("not a JSON object".into())),
    };
    Ok(Session {
        id_hash: SessionIdHash::from_bytes(id_hash),
        handle: SessionHandle::new(row.get::<_, String>(1)?),
        user_id: decode_uuid_blob(&user_id)?,
        email: Email::parse(&email).map_err(|e| corrupt("email")(e.to_string()))?,
        roles: decode_roles(&roles)?,
        created_at: Timestamp::from_unix_millis(row.get(5)?),
        last_seen: Timestamp::from_unix_millis(row.get(6)?),
        expires_at: Timestamp::from_unix_millis(row.get(7)?),
        absolute_expires_at: Timestamp::from_unix_millis(row.get(8)?),
        ip: row.get(9)?,
        user_agent: row.get(10)?,
        data,
        rotate: row.get(12)?,
    })
}

fn user_from_row(row: &Row<'_>) -> rusqlite::Result<User> {
    let id: String = row.get(0)?;
    let email: String = row.get(1)?;
    let roles: String = row.get(2)?;
    Ok(User {
        id: id
            .parse()
            .map_err(|e: uuid::Error| corrupt("user id")(e.to_string()))?,
        email: Email::parse(&email).map_err(|e| corrupt("email")(e.to_string()))?,
        roles: decode_roles(&roles)?,
        disabled: row.get(3)?,
        password_hash: PasswordHash::from_trusted(row.get(4)?),
        created_at: Timestamp::from_unix_millis(row.get(5)?),
    })
}

fn insert_session(tx: &rusqlite::Transaction<'_>, s: &Session) -> Result<(), StoreError> {
    let data = serde_json::to_string(&s.data).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    tx.prepare_cached(concat!(
        "INSERT INTO sessions (",
        session_columns!(),
        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
    ))
    .and_then(|mut stmt| {
        stmt.execute(params![
            s.id_hash.as_bytes(),
            s.handle.as_str(),
            s.user_id.as_uuid().as_bytes(),
            s.email.as_str(),
            encode_roles(&s.roles),
            s.created_at.unix_millis(),
            s.last_seen.unix_millis(),
            s.expires_at.unix_millis(),
            s.absolute_expires_at.unix_millis(),
            s.ip,
            s.user_agent,
            data,
            s.rotate,
        ])
    })
    .map_err(to_store_error)?;
    Ok(())
}

#[async_trait]
impl SessionStore for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn is_durable(&self) -> bool {
        true
    }

    async fn create(&self, session: &Session) -> Result<(), StoreError> {
        let session = session.clone();
        self.write(Affected::Nothing, move |tx| insert_session(tx, &session))
            .await
    }

    async fn load(
        &self,
        id: &SessionIdHash,
        now: Timestamp,
    ) -> Result<Option<Arc<Session>>, StoreError> {
        let ticket = match &self.inner.cache {
            Some(cache) => match cache.get(id, self.inner.changes.current()) {
                Ok(hit) => return Ok(Some(hit).filter(|s| now < s.expires_at)),
                Err(ticket) => Some((cache, ticket)),
            },
            None => None,
        };
        let found = self
            .read(|conn| {
                conn.prepare_cached(concat!(
                    "SELECT ",
                    session_columns!(),
                    " FROM sessions WHERE id_hash = ?1 AND expires_at > ?2"
                ))?
                .query_row(params![id.as_bytes(), now.unix_millis()], session_from_row)
                .optional()
            })?
            .map(Arc::new);
        if let (Some((cache, ticket)), Some(session)) = (ticket, &found) {
            cache.insert(ticket, session);
        }
        Ok(found)
    }

    async fn touch(
        &self,
        id: &SessionIdHash,
        last_seen: Timestamp,
        expires_at: Timestamp,
    ) -> Result<bool, StoreError> {
        let id = *id;
        self.write(Affected::Sessions(vec![id]), move |tx| {
            let changed = tx
                .prepare_cached(
                    "UPDATE sessions SET last_seen = ?2, expires_at = ?3 WHERE id_hash = ?1",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        id.as_bytes(),
                        last_seen.unix_millis(),
                        expires_at.unix_millis()
                    ])
                })
                .map_err(to_store_error)?;
            Ok(changed > 0)
        })
        .await
    }

    async fn merge_data(
        &self,
        id: &SessionIdHash,
        patch: &Map<String, Value>,
        limit: usize,
    ) -> Result<Option<Map<String, Value>>, StoreError> {
        let id = *id;
        let patch = patch.clone();
        self.write(Affected::Sessions(vec![id]), move |tx| {
            let current: Option<String> = tx
                .query_row(
                    "SELECT data FROM sessions WHERE id_hash = ?1",
                    [id.as_bytes()],
                    |r| r.get(0),
                )
                .optional()
                .map_err(to_store_error)?;
            let Some(current) = current else {
                return Ok(None);
            };
            let mut data = match serde_json::from_str::<Value>(&current) {
                Ok(Value::Object(map)) => map,
                _ => {
                    return Err(StoreError::Corrupt(
                        "session data is not a JSON object".into(),
                    ));
                }
            };
            merge_patch(&mut data, &patch);
            if data_size(&data) > limit {
                return Err(StoreError::DataTooLarge { limit });
            }
            let text =
                serde_json::to_string(&data).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            tx.execute(
                "UPDATE sessions SET data = ?2 WHERE id_hash = ?1",
                params![id.as_bytes(), text],
            )
            .map_err(to_store_error)?;
            Ok(Some(data))
        })
        .await
    }

    async fn rotate(&self, old: &SessionIdHash, successor: &Session) -> Result<bool, StoreError> {
        let old = *old;
        let successor = successor.clone();
        self.write(Affected::Sessions(vec![old]), move |tx| {
            // The row keeps what is stored now (roles, data): a role change
            // or merge since the caller read the session is not undone.
            // Only the id and the activity come from the successor.
            let moved = tx
                .execute(
                    "UPDATE sessions SET id_hash = ?1, last_seen = ?2, expires_at = ?3, rotate = 0 \
                     WHERE id_hash = ?4",
                    params![
                        successor.id_hash.as_bytes(),
                        successor.last_seen.unix_millis(),
                        successor.expires_at.unix_millis(),
                        old.as_bytes()
                    ],
                )
                .map_err(to_store_error)?;
            Ok(moved > 0)
        })
        .await
    }

    async fn delete(&self, id: &SessionIdHash) -> Result<bool, StoreError> {
        let id = *id;
        self.write(Affected::Sessions(vec![id]), move |tx| {
            let removed = tx
                .execute("DELETE FROM sessions WHERE id_hash = ?1", [id.as_bytes()])
                .map_err(to_store_error)?;
            Ok(removed > 0)
        })
        .await
    }

    async fn list_for_user(
        &self,
        user: UserId,
        now: Timestamp,
    ) -> Result<Vec<Session>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(concat!(
                "SELECT ",
                session_columns!(),
                " FROM sessions WHERE user_id = ?1 AND expires_at > ?2 ORDER BY created_at"
            ))?
            .query_map(
                params![user.as_uuid().as_bytes(), now.unix_millis()],
                session_from_row,
            )?
            .collect()
        })
    }

    async fn delete_by_handle(
        &self,
        user: UserId,
        handle: &SessionHandle,
    ) -> Result<bool, StoreError> {
        let handle = handle.clone();
        self.write(Affected::All, move |tx| {
            let removed = tx
                .execute(
                    "DELETE FROM sessions WHERE user_id = ?1 AND handle = ?2",
                    params![user.as_uuid().as_bytes(), handle.as_str()],
                )
                .map_err(to_store_error)?;
            Ok(removed > 0)
        })
        .await
    }

    async fn delete_all_for_user(&self, user: UserId) -> Result<u64, StoreError> {
        self.write(Affected::All, move |tx| {
            let removed = tx
                .execute(
                    "DELETE FROM sessions WHERE user_id = ?1",
                    [user.as_uuid().as_bytes()],
                )
                .map_err(to_store_error)?;
            Ok(removed as u64)
        })
        .await
    }

    async fn set_roles_for_user(&self, user: UserId, roles: &[Role]) -> Result<u64, StoreError> {
        let roles = encode_roles(roles);
        self.write(Affected::All, move |tx| {
            let changed = tx
                .execute(
                    "UPDATE sessions SET roles = ?2, rotate = 1 WHERE user_id = ?1",
                    params![user.as_uuid().as_bytes(), roles],
                )
                .map_err(to_store_error)?;
            Ok(changed as u64)
        })
        .await
    }

    async fn purge_expired(&self, now: Timestamp) -> Result<u64, StoreError> {
        self.write(Affected::Nothing, move |tx| {
            let removed = tx
                .execute(
                    "DELETE FROM sessions WHERE expires_at <= ?1",
                    [now.unix_millis()],
                )
                .map_err(to_store_error)?;
            Ok(removed as u64)
        })
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.read(|conn| conn.query_row("SELECT 1", [], |_| Ok(())))
    }
}

#[async_trait]
impl UserStore for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn create(&self, user: &User) -> Result<(), StoreError> {
        let user = user.clone();
        self.write(Affected::Nothing, move |tx| {
            tx.execute(
                concat!(
                    "INSERT INTO users (",
                    user_columns!(),
                    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
                ),
                params![
                    user.id.to_string(),
                    user.email.as_str(),
                    encode_roles(&user.roles),
                    user.disabled,
                    user.password_hash.as_str(),
                    user.created_at.unix_millis(),
                ],
            )
            .map_err(to_store_error)?;
            Ok(())
        })
        .await
    }

    async fn by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(concat!(
                "SELECT ",
                user_columns!(),
                " FROM users WHERE email = ?1"
            ))?
            .query_row([email.as_str()], user_from_row)
            .optional()
        })
    }

    async fn by_id(&self, id: UserId) -> Result<Option<User>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(concat!(
                "SELECT ",
                user_columns!(),
                " FROM users WHERE id = ?1"
            ))?
            .query_row([id.to_string()], user_from_row)
            .optional()
        })
    }

    async fn list(&self) -> Result<Vec<User>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(concat!(
                "SELECT ",
                user_columns!(),
                " FROM users ORDER BY email"
            ))?
            .query_map([], user_from_row)?
            .collect()
        })
    }

    async fn set_roles(&self, id: UserId, roles: &[Role]) -> Result<bool, StoreError> {
        let roles = encode_roles(&tessera_core::user::normalise_roles(roles.to_vec()));
        self.update_user(id, "roles", rusqlite::types::Value::Text(roles))
            .await
    }

    async fn set_disabled(&self, id: UserId, disabled: bool) -> Result<bool, StoreError> {
        self.update_user(
            id,
            "disabled",
            rusqlite::types::Value::Integer(disabled.into()),
        )
        .await
    }

    async fn set_password_hash(&self, id: UserId, hash: &PasswordHash) -> Result<bool, StoreError> {
        self.update_user(
            id,
            "password_hash",
            rusqlite::types::Value::Text(hash.as_str().to_owned()),
        )
        .await
    }

    async fn record_audit(&self, event: &tessera_core::AuditEvent) -> Result<(), StoreError> {
        let event = event.clone();
        self.write(Affected::Nothing, move |tx| {
            tx.execute(
                "INSERT INTO audit_events (at, kind, user_id, detail) VALUES (?1, ?2, ?3, ?4)",
                params![
                    event.at.unix_millis(),
                    event.kind,
                    event.user.map(|u| u.to_string()),
                    event.detail
                ],
            )
            .map_err(to_store_error)?;
            Ok(())
        })
        .await
    }

    async fn audit_events(
        &self,
        limit: usize,
    ) -> Result<Vec<tessera_core::AuditEvent>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(|conn| {
            conn.prepare_cached("SELECT at, kind, user_id, detail FROM audit_events ORDER BY at DESC, rowid DESC LIMIT ?1")?
                .query_map([limit], |row| {
                    let user: Option<String> = row.get(2)?;
                    Ok(tessera_core::AuditEvent {
                        at: Timestamp::from_unix_millis(row.get(0)?),
                        kind: row.get(1)?,
                        user: user.and_then(|u| u.parse().ok()),
                        detail: row.get(3)?,
                    })
                })?
                .collect()
        })
    }

    async fn ping(&self) -> Result<(), StoreError> {
        SessionStore::ping(self).await
    }
}

impl SqliteStore {
    async fn update_user(
        &self,
        id: UserId,
        column: &'static str,
        value: rusqlite::types::Value,
    ) -> Result<bool, StoreError> {
        self.write(Affected::Nothing, move |tx| {
            let changed = tx
                .execute(
                    &format!("UPDATE users SET {column} = ?2 WHERE id = ?1"),
                    params![id.to_string(), value],
                )
                .map_err(to_store_error)?;
            Ok(changed > 0)
        })
        .await
    }
}
