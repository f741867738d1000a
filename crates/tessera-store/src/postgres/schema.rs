//! The PostgreSQL schema: migrations, tracked in `tessera_schema`.

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
    // 3: reserved for another branch
    "SELECT 1;",
    // 4: reserved for another branch
    "SELECT 1;",
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
];
