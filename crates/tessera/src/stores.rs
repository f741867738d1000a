//! Opening the session and token stores the settings name.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tessera_core::{SessionStore, TokenStore};
use tessera_store::{MemoryStore, RedisOptions, RedisStore, SqliteStore};

use crate::settings::{Settings, StoreKind};

/// Where sessions and tokens live.
pub struct Stores {
    /// Sessions.
    pub sessions: Arc<dyn SessionStore>,
    /// Refresh families and revocations.
    pub tokens: Arc<dyn TokenStore>,
    /// The Redis store, when that is the backend (for its extras:
    /// revocation announcements and shared throttling).
    pub redis: Option<RedisStore>,
}

/// Opens the stores for a server (`server`) or an administrative command.
/// A command run against a memory-store server works on the data directory:
/// it cannot reach the server's memory.
pub async fn open(settings: &Settings, db: &SqliteStore, server: bool) -> anyhow::Result<Stores> {
    Ok(match settings.store {
        StoreKind::Sqlite => Stores {
            sessions: Arc::new(db.clone()),
            tokens: Arc::new(db.clone()),
            redis: None,
        },
        StoreKind::Memory if server => Stores {
            sessions: Arc::new(MemoryStore::new()),
            tokens: Arc::new(MemoryStore::new()),
            redis: None,
        },
        StoreKind::Memory => Stores {
            sessions: Arc::new(db.clone()),
            tokens: Arc::new(db.clone()),
            redis: None,
        },
        StoreKind::Redis => {
            let redis = RedisStore::connect(RedisOptions {
                url: settings.redis_url.clone(),
                prefix: settings.redis_prefix.clone(),
                timeout: Duration::from_millis(settings.redis_timeout.max(1)),
                near_cache: if server { settings.redis_near_cache } else { 0 },
                ..RedisOptions::default()
            })
            .await
            .context("cannot use the Redis store (redis_url, TESSERA_REDIS_URL)")?;
            Stores {
                sessions: Arc::new(redis.clone()),
                tokens: Arc::new(redis.clone()),
                redis: Some(redis),
            }
        }
    })
}
