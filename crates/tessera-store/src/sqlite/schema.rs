//! The schema: migrations, tracked with `PRAGMA user_version`.

use rusqlite::Connection;
use tessera_core::{StoreError, StoredAddress, Timestamp, renormalise};

use super::to_store_error;

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
    // 3: rotated-away session ids, valid for the rotation grace: an alias
    // names its successor until `until` (and only while the successor lives).
    "CREATE TABLE session_aliases (
        id_hash   BLOB PRIMARY KEY,
        successor BLOB NOT NULL,
        until     INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX session_aliases_by_until ON session_aliases (until);",
    // 4: the user of a `sealed` revocation (an ended sealed cookie session,
    // `cutoff` its login time), so that the per-user cap can find and
    // collapse a user's oldest into their `sealed_user` cutoff.
    "ALTER TABLE revocations ADD COLUMN user_id TEXT;
    CREATE INDEX revocations_sealed_by_user ON revocations (user_id, cutoff)
        WHERE user_id IS NOT NULL;",
    // 5: whether a user's address is verified. Accounts from before were
    // created by an operator, who vouched for the address.
    "ALTER TABLE users ADD COLUMN email_verified INTEGER NOT NULL DEFAULT 0;
    UPDATE users SET email_verified = 1;",
    // 6: addresses in their one canonical spelling (PRECIS local part, IDNA
    // A-label domain): the Rust step `renormalise_emails` below does it.
    "SELECT 1;",
    // 7: the mail outbox. `body` (the notice as JSON, with any link) and
    // `recipient` are erased once a message is sent or given up; `token` is
    // the current claim, valid until `lease_until`.
    "CREATE TABLE mail_outbox (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        kind            TEXT NOT NULL,
        recipient       TEXT,
        body            TEXT,
        state           TEXT NOT NULL,
        attempts        INTEGER NOT NULL DEFAULT 0,
        enqueued_at     INTEGER NOT NULL,
        next_attempt_at INTEGER NOT NULL,
        lease_until     INTEGER,
        token           INTEGER,
        finished_at     INTEGER,
        last_error      TEXT
    );
    CREATE INDEX mail_outbox_due ON mail_outbox (next_attempt_at) WHERE state = 'pending';
    CREATE INDEX mail_outbox_finished ON mail_outbox (finished_at) WHERE state <> 'pending';",
    // 8: the audit log people read: who did it (actor), from where (ip,
    // user agent), with which session (its handle), and an id that is never
    // reused (AUTOINCREMENT, even after retention empties the table), the
    // cursor of its pages. Events from before were written by tessera itself.
    "CREATE TABLE audit_log (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        at         INTEGER NOT NULL,
        kind       TEXT NOT NULL,
        actor_kind TEXT NOT NULL,
        actor_id   TEXT,
        user_id    TEXT,
        ip         TEXT,
        user_agent TEXT,
        session    TEXT,
        detail     TEXT NOT NULL
    );
    INSERT INTO audit_log (at, kind, actor_kind, user_id, detail)
        SELECT at, kind, 'system', user_id, detail FROM audit_events ORDER BY rowid;
    DROP TABLE audit_events;
    CREATE INDEX audit_log_by_user ON audit_log (user_id, id) WHERE user_id IS NOT NULL;
    CREATE INDEX audit_log_by_kind ON audit_log (kind, id);
    CREATE INDEX audit_log_by_time ON audit_log (at);",
    // 9: API keys for machines: the SHA-256 of the secret, never the secret.
    "CREATE TABLE api_keys (
        id          TEXT PRIMARY KEY,
        name        TEXT NOT NULL,
        roles       TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        expires_at  INTEGER,
        last_used   INTEGER,
        secret_hash BLOB NOT NULL
    );",
    // 10: tickets, the single-use secrets mailed as links (only their
    // SHA-256 is kept).
    "CREATE TABLE tickets (
        hash       BLOB PRIMARY KEY,
        purpose    TEXT NOT NULL,
        user_id    TEXT,
        email      TEXT NOT NULL,
        roles      TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX tickets_by_user ON tickets (user_id, purpose) WHERE user_id IS NOT NULL;
    CREATE INDEX tickets_by_expiry ON tickets (expires_at);",
    // 11: the session's copy of the user's `email_verified`. A session from
    // before takes its user's flag (found by its indexed e-mail, checked
    // against the id); without a user here (users in PostgreSQL) it counts
    // as verified: only operators created accounts then, and migration 5
    // marked all of those verified.
    "ALTER TABLE sessions ADD COLUMN email_verified INTEGER NOT NULL DEFAULT 1;
    UPDATE sessions SET email_verified = COALESCE(
        (SELECT u.email_verified FROM users u
          WHERE u.email = sessions.email
            AND lower(replace(u.id, '-', '')) = lower(hex(sessions.user_id))),
        1);",
    // 12: the request an audit event came from (its `X-Request-Id`).
    "ALTER TABLE audit_log ADD COLUMN request_id TEXT;",
];

/// A migration step written in Rust, run in the migration's transaction
/// right after the SQL of the version it names (for what SQL cannot do).
type RustStep = fn(&rusqlite::Transaction<'_>) -> Result<(), StoreError>;

/// `(version, step)`, by version.
const RUST_STEPS: &[(usize, RustStep)] = &[(6, renormalise_emails)];

/// Migration 6: every stored address re-normalised by `Email::parse`;
/// collisions (two rows, one address) are left as they were and logged
/// with their user ids only.
fn renormalise_emails(tx: &rusqlite::Transaction<'_>) -> Result<(), StoreError> {
    let rows = {
        let mut stmt = tx
            .prepare("SELECT id, email, created_at FROM users")
            .map_err(to_store_error)?;
        stmt.query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, i64>(2)?,
            ))
        })
        .map_err(to_store_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(to_store_error)?
    };
    let rows = rows
        .into_iter()
        .map(|(id, email, created_at)| {
            Ok(StoredAddress {
                id: id
                    .parse()
                    .map_err(|e| StoreError::Corrupt(format!("user id {id:?}: {e}")))?,
                email,
                created_at: Timestamp::from_unix_millis(created_at),
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let plan = renormalise(&rows);
    for (id, email) in &plan.updates {
        tx.execute(
            "UPDATE users SET email = ?1 WHERE id = ?2",
            rusqlite::params![email.as_str(), id.to_string()],
        )
        .map_err(to_store_error)?;
    }
    crate::addresses::report(plan.updates.len(), &plan.collisions);
    Ok(())
}

/// How many migrations `migrate` would apply to `conn`'s database.
pub(super) fn pending(conn: &Connection) -> Result<usize, StoreError> {
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(to_store_error)?;
    let version = usize::try_from(version).unwrap_or(usize::MAX);
    if version > MIGRATIONS.len() {
        return Err(StoreError::Unavailable(format!(
            "database schema version {version} is newer than this tessera understands ({})",
            MIGRATIONS.len()
        )));
    }
    Ok(MIGRATIONS.len() - version)
}

pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
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
        for (_, step) in RUST_STEPS.iter().filter(|(v, _)| *v == index + 1) {
            step(&tx)?;
        }
        tx.pragma_update(None, "user_version", (index + 1) as i64)
            .map_err(to_store_error)?;
    }
    tx.commit().map_err(to_store_error)
}
