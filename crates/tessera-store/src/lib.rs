//! Storage backends for tessera.
//!
//! - [`MemoryStore`]: sessions and users in process memory. Fast, and gone
//!   when the process ends: the "stateful server" of the cluster comparison.
//! - [`SqliteStore`]: the embedded default. One SQLite file in WAL mode;
//!   every acknowledged write is committed before the call returns.
//!
//! - [`PostgresUserStore`]: users and the audit log for clusters.
//! - [`RedisStore`]: sessions, refresh families, revocations and login
//!   counters shared by a cluster of stateless nodes (Redis or Redis Cluster).
//!
//! Memory and SQLite implement [`tessera_core::SessionStore`] and [`tessera_core::UserStore`]
//! and pass the same conformance suite (`tests/it/`).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod lock;
mod memory;
mod postgres;
mod redis;
mod session_cache;
mod sqlite;

pub use memory::MemoryStore;
pub use postgres::{PostgresOptions, PostgresUserStore};
pub use redis::{RedisOptions, RedisStore, RedisThrottle, RevocationEvent};
pub use sqlite::{SqliteOptions, SqliteStore, Synchronous};
