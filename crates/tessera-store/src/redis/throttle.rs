//! Login-throttling buckets shared by every node.

use std::time::Duration;

use async_trait::async_trait;
use fred::types::Value;
use sha2::{Digest, Sha256};
use tessera_core::{BucketRule, StoreError, ThrottleStore};

use super::RedisStore;

/// Token buckets kept in Redis, so that a cluster throttles a client or an
/// account as one server would. Account names are hashed into the key (they
/// are user input of any length).
#[derive(Debug, Clone)]
pub struct RedisThrottle {
    store: RedisStore,
}

impl RedisThrottle {
    /// Buckets in the store's Redis, under its prefix.
    pub fn new(store: RedisStore) -> Self {
        Self { store }
    }

    fn key(&self, kind: &str, name: &str) -> String {
        let digest = Sha256::digest(name.as_bytes());
        let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        self.store.keys.throttle(kind, &hex)
    }

    /// Takes a token from bucket `name` of `kind` (`delta` -1), or gives one
    /// back (`delta` 1). Returns how long to wait when the bucket is empty.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`].
    pub async fn update(
        &self,
        kind: &str,
        name: &str,
        burst: u32,
        refill: Duration,
        delta: i64,
    ) -> Result<Duration, StoreError> {
        let wait = self
            .store
            .eval_int(
                &self.store.scripts.throttle,
                vec![self.key(kind, name).into()],
                vec![
                    Value::Integer(i64::from(burst)),
                    Value::Integer(i64::try_from(refill.as_millis().max(1)).unwrap_or(i64::MAX)),
                    Value::Integer(delta),
                ],
            )
            .await?;
        Ok(Duration::from_millis(u64::try_from(wait).unwrap_or(0)))
    }
}

#[async_trait]
impl ThrottleStore for RedisThrottle {
    async fn update(
        &self,
        kind: &str,
        name: &str,
        rule: BucketRule,
        delta: i64,
    ) -> Result<Duration, StoreError> {
        RedisThrottle::update(
            self,
            kind,
            name,
            rule.burst(),
            rule.refill_interval(),
            delta,
        )
        .await
    }
}
