//! Storage backends for tessera, one cargo feature each (all on by default):
//!
//! - [`MemoryStore`] (`memory`): sessions, users and tokens in process
//!   memory. Fast, and gone when the process ends: the "stateful server" of
//!   the cluster comparison.
//! - [`SqliteStore`] (`sqlite`): the embedded default. One SQLite file in WAL
//!   mode; every acknowledged write is committed before the call returns.
//! - [`PostgresUserStore`] (`postgres`): users and the audit log for clusters.
//! - [`RedisStore`] (`redis`): sessions, refresh families, revocations and
//!   login counters shared by a cluster of stateless nodes (Redis or Redis
//!   Cluster).
//!
//! Every backend passes the same conformance suite (`tests/it/`) for each
//! contract it implements: memory and SQLite for
//! [`tessera_core::SessionStore`], [`tessera_core::UserStore`] and
//! [`tessera_core::TokenStore`]; Redis for `SessionStore` and `TokenStore`;
//! PostgreSQL for `UserStore`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod addresses;
#[cfg(any(feature = "memory", feature = "sqlite", feature = "redis"))]
mod lock;
#[cfg(feature = "memory")]
mod memory;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod outbox_rows;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;
#[cfg(any(feature = "sqlite", feature = "redis"))]
mod session_cache;
#[cfg(feature = "sqlite")]
mod sqlite;

#[cfg(feature = "memory")]
pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use postgres::{PostgresOptions, PostgresUserStore};
#[cfg(feature = "redis")]
pub use redis::{
    RedisOptions, RedisStore, RedisThrottle, RedisTls, RevocationEvent, TlsError as RedisTlsError,
};
#[cfg(feature = "sqlite")]
pub use sqlite::{SqliteOptions, SqliteStore, Synchronous};
