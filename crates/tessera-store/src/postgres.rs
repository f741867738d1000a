//! Users and the audit log in PostgreSQL, for clusters of tessera nodes.
//!
//! Migrations run at start-up (or alone, `tessera migrate`) under a
//! transaction-scoped advisory lock, so nodes starting together migrate once.
//! Every call has a timeout (pool wait, connect, statement): a database that
//! does not answer is [`StoreError::Unavailable`], which the server turns
//! into a 503.

use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Config, Pool, PoolConfig, Runtime, Timeouts};
use tessera_core::{
    AuditEvent, Email, PasswordHash, Role, StoreError, Timestamp, User, UserId, UserStore,
};
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

/// Settings for [`PostgresUserStore::connect`].
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// Most connections held open.
    pub max_connections: usize,
    /// Longest wait for a connection, and for a statement.
    pub timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            max_connections: 8,
            timeout: Duration::from_secs(2),
        }
    }
}

/// Each entry moves the schema one version forward; never edit a released one.
const MIGRATIONS: &[&str] = &[
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
];

/// An arbitrary constant naming tessera's migration lock.
const MIGRATION_LOCK: i64 = 0x7465_7373_6572_6101;

/// Users and audit events in PostgreSQL.
#[derive(Clone)]
pub struct PostgresUserStore {
    pool: Pool,
    timeout: Duration,
}

impl std::fmt::Debug for PostgresUserStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password: never print it.
        f.debug_struct("PostgresUserStore").finish_non_exhaustive()
    }
}

fn unavailable(error: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("postgres: {error}"))
}

fn to_store_error(error: tokio_postgres::Error) -> StoreError {
    if error.code() == Some(&SqlState::UNIQUE_VIOLATION) {
        StoreError::Conflict
    } else {
        unavailable(error)
    }
}

impl PostgresUserStore {
    /// Connects to `url` and brings the schema up to date.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] if the database cannot be reached or migrated.
    pub async fn connect(url: &str, options: PostgresOptions) -> Result<Self, StoreError> {
        let mut config = Config::new();
        config.url = Some(url.to_owned());
        config.pool = Some(PoolConfig {
            max_size: options.max_connections,
            timeouts: Timeouts {
                wait: Some(options.timeout),
                create: Some(options.timeout),
                recycle: Some(options.timeout),
            },
            ..PoolConfig::default()
        });
        let pool = config
            .create_pool(Some(Runtime::Tokio1), NoTls)
            .map_err(unavailable)?;
        let store = Self {
            pool,
            timeout: options.timeout,
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Applies pending migrations; returns how many.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] on failure, or if the database's schema is
    /// newer than this tessera understands.
    pub async fn migrate(&self) -> Result<usize, StoreError> {
        let mut client = self.pool.get().await.map_err(unavailable)?;
        let tx = client.transaction().await.map_err(to_store_error)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(to_store_error)?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS tessera_schema (version INTEGER NOT NULL)")
            .await
            .map_err(to_store_error)?;
        let version: i32 = tx
            .query_opt("SELECT version FROM tessera_schema", &[])
            .await
            .map_err(to_store_error)?
            .map_or(0, |row| row.get(0));
        let version = usize::try_from(version).unwrap_or(usize::MAX);
        if version > MIGRATIONS.len() {
            return Err(StoreError::Unavailable(format!(
                "database schema version {version} is newer than this tessera understands ({})",
                MIGRATIONS.len()
            )));
        }
        for sql in &MIGRATIONS[version..] {
            tx.batch_execute(sql).await.map_err(to_store_error)?;
        }
        let latest = i32::try_from(MIGRATIONS.len()).unwrap_or(i32::MAX);
        tx.execute("DELETE FROM tessera_schema", &[])
            .await
            .map_err(to_store_error)?;
        tx.execute(
            "INSERT INTO tessera_schema (version) VALUES ($1)",
            &[&latest],
        )
        .await
        .map_err(to_store_error)?;
        tx.commit().await.map_err(to_store_error)?;
        Ok(MIGRATIONS.len() - version)
    }

    /// Runs `f` with a pooled connection, bounded by the statement timeout.
    async fn with<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(deadpool_postgres::Object) -> Fut,
        Fut: std::future::Future<Output = Result<T, tokio_postgres::Error>>,
    {
        let client = self.pool.get().await.map_err(unavailable)?;
        tokio::time::timeout(self.timeout, f(client))
            .await
            .map_err(|_| unavailable("statement timed out"))?
            .map_err(to_store_error)
    }
}

const USER_COLUMNS: &str = "id, email, roles, disabled, password_hash, created_at";

fn user_from_row(row: &tokio_postgres::Row) -> Result<User, StoreError> {
    let email: String = row.get(1);
    let roles: String = row.get(2);
    Ok(User {
        id: UserId::from_uuid(row.get(0)),
        email: Email::parse(&email).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        roles: roles
            .split_whitespace()
            .map(|r| Role::parse(r).map_err(|e| StoreError::Corrupt(e.to_string())))
            .collect::<Result<_, _>>()?,
        disabled: row.get(3),
        password_hash: PasswordHash::from_trusted(row.get(4)),
        created_at: Timestamp::from_unix_millis(row.get(5)),
    })
}

fn encode_roles(roles: &[Role]) -> String {
    roles.iter().map(Role::as_str).collect::<Vec<_>>().join(" ")
}

#[async_trait]
impl UserStore for PostgresUserStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn create(&self, user: &User) -> Result<(), StoreError> {
        let user = user.clone();
        self.with(|c| async move {
            c.execute(
                &format!("INSERT INTO users ({USER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"),
                &[
                    user.id.as_uuid(),
                    &user.email.as_str(),
                    &encode_roles(&user.roles),
                    &user.disabled,
                    &user.password_hash.as_str(),
                    &user.created_at.unix_millis(),
                ],
            )
            .await
            .map(|_| ())
        })
        .await
    }

    async fn by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
        let email = email.as_str().to_owned();
        let row = self
            .with(|c| async move {
                c.query_opt(
                    &format!("SELECT {USER_COLUMNS} FROM users WHERE email = $1"),
                    &[&email],
                )
                .await
            })
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn by_id(&self, id: UserId) -> Result<Option<User>, StoreError> {
        let row = self
            .with(|c| async move {
                c.query_opt(
                    &format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"),
                    &[id.as_uuid()],
                )
                .await
            })
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn list(&self) -> Result<Vec<User>, StoreError> {
        let rows = self
            .with(|c| async move {
                c.query(
                    &format!("SELECT {USER_COLUMNS} FROM users ORDER BY email"),
                    &[],
                )
                .await
            })
            .await?;
        rows.iter().map(user_from_row).collect()
    }

    async fn set_roles(&self, id: UserId, roles: &[Role]) -> Result<bool, StoreError> {
        let roles = encode_roles(&tessera_core::user::normalise_roles(roles.to_vec()));
        self.with(|c| async move {
            c.execute(
                "UPDATE users SET roles = $2 WHERE id = $1",
                &[id.as_uuid(), &roles],
            )
            .await
            .map(|n| n > 0)
        })
        .await
    }

    async fn set_disabled(&self, id: UserId, disabled: bool) -> Result<bool, StoreError> {
        self.with(|c| async move {
            c.execute(
                "UPDATE users SET disabled = $2 WHERE id = $1",
                &[id.as_uuid(), &disabled],
            )
            .await
            .map(|n| n > 0)
        })
        .await
    }

    async fn set_password_hash(&self, id: UserId, hash: &PasswordHash) -> Result<bool, StoreError> {
        let hash = hash.as_str().to_owned();
        self.with(|c| async move {
            c.execute(
                "UPDATE users SET password_hash = $2 WHERE id = $1",
                &[id.as_uuid(), &hash],
            )
            .await
            .map(|n| n > 0)
        })
        .await
    }

    async fn record_audit(&self, event: &AuditEvent) -> Result<(), StoreError> {
        let event = event.clone();
        self.with(|c| async move {
            let user = event.user.map(|u| *u.as_uuid());
            c.execute(
                "INSERT INTO audit_events (at, kind, user_id, detail) VALUES ($1, $2, $3, $4)",
                &[&event.at.unix_millis(), &event.kind, &user, &event.detail],
            )
            .await
            .map(|_| ())
        })
        .await
    }

    async fn audit_events(&self, limit: usize) -> Result<Vec<AuditEvent>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .with(|c| async move {
                c.query(
                    "SELECT at, kind, user_id, detail FROM audit_events ORDER BY at DESC, id DESC LIMIT $1",
                    &[&limit],
                )
                .await
            })
            .await?;
        Ok(rows
            .iter()
            .map(|row| AuditEvent {
                at: Timestamp::from_unix_millis(row.get(0)),
                kind: row.get(1),
                user: row.get::<_, Option<uuid::Uuid>>(2).map(UserId::from_uuid),
                detail: row.get(3),
            })
            .collect())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.with(|c| async move { c.execute("SELECT 1", &[]).await.map(|_| ()) })
            .await
    }
}
