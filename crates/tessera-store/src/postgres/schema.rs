//! The PostgreSQL schema: migrations, tracked in `tessera_schema`.

use tessera_core::{StoreError, StoredAddress, Timestamp, UserId, renormalise};

use super::to_store_error;

/// Each entry moves the schema one version forward; never edit a released one.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: users and the audit log.
    "CREATE TABLE users (
        id            UUID PRIMARY KEY,
        email         TEXT NOT NULL UNIQUE,
        roles         TEXT NOT NULL,
        disabled      BOOLEAN NOT NULL DEFAULT FALSE,
        password_hash TEXT NOT NULL,
        created_at    BIGINT NOT NULL
    );
    CREATE TABLE audit_events (
        id      BIGSERIAL PRIMARY KEY,
        at      BIGINT NOT NULL,
        kind    TEXT NOT NULL,
        user_id UUID,
        detail  TEXT NOT NULL
    );
    CREATE INDEX audit_events_by_time ON audit_events (at);",
    // 2: whether a user's address is verified. Accounts from before were
    // created by an operator, who vouched for the address.
    "ALTER TABLE users ADD COLUMN email_verified BOOLEAN NOT NULL DEFAULT FALSE;
    UPDATE users SET email_verified = TRUE;",
    // 3: addresses in their one canonical spelling (PRECIS local part, IDNA
    // A-label domain): the Rust step in `rust_step` does it.
    "SELECT 1;",
    // 4: the mail outbox. `body` (the notice as JSON, with any link) and
    // `recipient` are erased once a message is sent or given up; `token` is
    // the current claim, valid until `lease_until`.
    "CREATE TABLE mail_outbox (
        id              BIGSERIAL PRIMARY KEY,
        kind            TEXT NOT NULL,
        recipient       TEXT,
        body            TEXT,
        state           TEXT NOT NULL,
        attempts        INTEGER NOT NULL DEFAULT 0,
        enqueued_at     BIGINT NOT NULL,
        next_attempt_at BIGINT NOT NULL,
        lease_until     BIGINT,
        token           BIGINT,
        finished_at     BIGINT,
        last_error      TEXT
    );
    CREATE INDEX mail_outbox_due ON mail_outbox (next_attempt_at) WHERE state = 'pending';
    CREATE INDEX mail_outbox_finished ON mail_outbox (finished_at) WHERE state <> 'pending';",
    // 5: the audit log people read: who did it (actor), from where (ip,
    // user agent), with which session (its handle); `id` is the cursor of
    // its pages. Events from before were written by tessera itself.
    "ALTER TABLE audit_events
        ADD COLUMN actor_kind TEXT NOT NULL DEFAULT 'system',
        ADD COLUMN actor_id   TEXT,
        ADD COLUMN ip         TEXT,
        ADD COLUMN user_agent TEXT,
        ADD COLUMN session    TEXT;
    ALTER TABLE audit_events ALTER COLUMN actor_kind DROP DEFAULT;
    CREATE INDEX audit_events_by_user ON audit_events (user_id, id) WHERE user_id IS NOT NULL;
    CREATE INDEX audit_events_by_kind ON audit_events (kind, id);",
    // 6: API keys for machines: the SHA-256 of the secret, never the secret.
    "CREATE TABLE api_keys (
        id          TEXT PRIMARY KEY,
        name        TEXT NOT NULL,
        roles       TEXT NOT NULL,
        created_at  BIGINT NOT NULL,
        expires_at  BIGINT,
        last_used   BIGINT,
        secret_hash BYTEA NOT NULL
    );",
    // 7: tickets, the single-use secrets mailed as links (only their
    // SHA-256 is kept).
    "CREATE TABLE tickets (
        hash       BYTEA PRIMARY KEY,
        purpose    TEXT NOT NULL,
        user_id    UUID,
        email      TEXT NOT NULL,
        roles      TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL
    );
    CREATE INDEX tickets_by_user ON tickets (user_id, purpose) WHERE user_id IS NOT NULL;
    CREATE INDEX tickets_by_expiry ON tickets (expires_at);",
    // 8: the request an audit event came from (its `X-Request-Id`).
    "ALTER TABLE audit_events ADD COLUMN request_id TEXT;",
];

/// The steps written in Rust, run in the migration's transaction (under
/// its advisory lock) right after the SQL of the version they belong to.
pub(super) async fn rust_step(
    tx: &tokio_postgres::Transaction<'_>,
    version: usize,
) -> Result<(), StoreError> {
    match version {
        3 => renormalise_emails(tx).await,
        _ => Ok(()),
    }
}

/// Migration 3: every stored address re-normalised by `Email::parse`;
/// collisions (two rows, one address) are left as they were and logged
/// with their user ids only.
async fn renormalise_emails(tx: &tokio_postgres::Transaction<'_>) -> Result<(), StoreError> {
    let rows = tx
        .query("SELECT id, email, created_at FROM users FOR UPDATE", &[])
        .await
        .map_err(to_store_error)?
        .iter()
        .map(|row| StoredAddress {
            id: UserId::from_uuid(row.get(0)),
            email: row.get(1),
            created_at: Timestamp::from_unix_millis(row.get(2)),
        })
        .collect::<Vec<_>>();
    let plan = renormalise(&rows);
    for (id, email) in &plan.updates {
        tx.execute(
            "UPDATE users SET email = $1 WHERE id = $2",
            &[&email.as_str(), id.as_uuid()],
        )
        .await
        .map_err(to_store_error)?;
    }
    crate::addresses::report(plan.updates.len(), &plan.collisions);
    Ok(())
}
