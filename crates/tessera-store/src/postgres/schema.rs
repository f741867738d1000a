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
    // 5: reserved for another branch
    "SELECT 1;",
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
