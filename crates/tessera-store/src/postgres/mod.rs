//! Users and the audit log in PostgreSQL, for clusters of tessera nodes.
//!
//! Migrations run at start-up (or alone, `tessera migrate`) under a
//! transaction-scoped advisory lock, so nodes starting together migrate once.
//! Every call has a timeout (pool wait, connect, statement): a database that
//! does not answer is [`StoreError::Unavailable`], which the server turns
//! into a 503.

use std::time::Duration;

use deadpool_postgres::{Config, Pool, PoolConfig, Runtime, Timeouts};
use tessera_core::StoreError;
use tokio_postgres::error::SqlState;

use schema::MIGRATIONS;

mod apikeys;
mod audit;
mod outbox;
mod schema;
mod tickets;
mod tls;

use tls::TlsUrl;
mod users;

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

/// `error` and what caused it (tokio-postgres says only "db error" or
/// "error performing TLS handshake" and keeps the why in its source).
fn with_causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(cause) = next {
        let said = cause.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        next = cause.source();
    }
    text
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
        let (store, tls) = Self::unmigrated(url, options)?;
        // The first connection says what is wrong with the URL's TLS
        // parameters, in their words.
        let first = store
            .pool
            .get()
            .await
            .map_err(|e| unavailable(tls.explain(&with_causes(&e))))?;
        tracing::info!(
            sslmode = %tls.mode().name(),
            "PostgreSQL connected (see sslmode in database_url)"
        );
        drop(first);
        store.migrate().await?;
        Ok(store)
    }

    /// Connects to `url` without changing anything and returns how many
    /// migrations this tessera would apply (`tessera config check`).
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] if the database cannot be reached, or its
    /// schema is newer than this tessera understands.
    pub async fn pending_migrations(
        url: &str,
        options: PostgresOptions,
    ) -> Result<usize, StoreError> {
        let (store, tls) = Self::unmigrated(url, options)?;
        let client = store
            .pool
            .get()
            .await
            .map_err(|e| unavailable(tls.explain(&with_causes(&e))))?;
        let exists: bool = client
            .query_one("SELECT to_regclass('tessera_schema') IS NOT NULL", &[])
            .await
            .map_err(to_store_error)?
            .get(0);
        let version = if exists {
            client
                .query_opt("SELECT version FROM tessera_schema", &[])
                .await
                .map_err(to_store_error)?
                .map_or(0, |row| row.get::<_, i32>(0))
        } else {
            0
        };
        let version = usize::try_from(version).unwrap_or(usize::MAX);
        if version > MIGRATIONS.len() {
            return Err(StoreError::Unavailable(format!(
                "database schema version {version} is newer than this tessera understands ({})",
                MIGRATIONS.len()
            )));
        }
        Ok(MIGRATIONS.len() - version)
    }

    /// The pool, not yet connected.
    fn unmigrated(url: &str, options: PostgresOptions) -> Result<(Self, TlsUrl), StoreError> {
        let tls = TlsUrl::parse(url).map_err(unavailable)?;
        let connector = tls.connector().map_err(unavailable)?;
        let mut config = Config::new();
        config.url = Some(tls.url().to_owned());
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
            .create_pool(Some(Runtime::Tokio1), connector)
            .map_err(unavailable)?;
        Ok((
            Self {
                pool,
                timeout: options.timeout,
            },
            tls,
        ))
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
        for (index, sql) in MIGRATIONS.iter().enumerate().skip(version) {
            tx.batch_execute(sql).await.map_err(to_store_error)?;
            schema::rust_step(&tx, index + 1).await?;
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
    pub(super) async fn with<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
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
