//! Redis: sessions, refresh families, revocations and login-throttling
//! counters shared by a cluster of stateless tessera nodes.
//!
//! One multiplexed connection per Redis node (fred pipelines concurrent
//! commands on it), automatic reconnects, and a timeout on every command, so
//! a stopped or frozen Redis turns into [`StoreError::Unavailable`] within
//! [`RedisOptions::timeout`] and never into "no such session".
//!
//! Layout (see `keys.rs` and `codec.rs`): a session is one string under
//! `<prefix>:{r<route>}:s:<id hash>`, indexed per user in a sorted set
//! `<prefix>:{r<route>}:us:<user>`; the `{r<route>}` hash tag puts a user's
//! records in one cluster slot, so the Lua scripts that change several of
//! them are atomic on a cluster too. Loading a session is one `GET`. A
//! rotation leaves the old id as an alias, `<prefix>:{r<route>}:a:<old
//! hash>` (same tag), naming the successor until the grace ends (`PXAT`);
//! only a `GET` that finds no session looks for one.
//! Records expire through Redis TTLs that follow the session and token
//! expiry; index entries of expired records are dropped lazily.
//!
//! Two server settings matter for correctness and are checked at connect:
//! Redis must not evict keys (`maxmemory-policy noeviction`): an evicted
//! per-user index would make "log out everywhere" miss sessions, an evicted
//! revocation would make a revoked token valid again. Durability is the
//! server's `appendonly` setting.
//!
//! On a Redis Cluster, scripts reach keys of their own hash tag that they
//! do not declare (a user's sessions, found through the user's index).
//! While a slot migrates, Redis refuses such a script part-way; the caller
//! sees a 503 and every script is safe to run again.

mod codec;
mod compact;
mod keys;
mod near;
mod scripts;
mod sessions;
mod throttle;
mod tls;
mod tokens;
mod url;

use std::time::Duration;

use fred::prelude::{
    Builder, ClientLike, Config, EventInterface, PubsubInterface, ReconnectPolicy,
};
use fred::types::config::UnresponsiveConfig;
use fred::types::{Key, Value};
use tessera_core::{Revocation, StoreError};
use tokio::sync::mpsc;

pub use throttle::RedisThrottle;
pub use tls::{RedisTls, TlsError};

use self::keys::Keys;
use self::scripts::Scripts;

/// How to reach Redis and how long to wait for it.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisOptions {
    /// `redis://[user:password@]host:port[/db]` for one server,
    /// `redis-cluster://host:port?node=host:port&node=...` for a cluster
    /// (any reachable seed nodes; the client discovers the rest), or
    /// `redis-sentinel://[user:password@]host:port,host:port[/db]?service=NAME`
    /// for the primary that sentinels watch (`&sentinel_username=`,
    /// `&sentinel_password=` if the sentinels want credentials of their
    /// own). `rediss…` for TLS, with [`RedisOptions::tls`].
    pub url: String,
    /// TLS for a `rediss…` URL (`None`: Mozilla's roots, no client
    /// certificate). Refused with a plain-text URL.
    pub tls: Option<RedisTls>,
    /// Replicas that must confirm (`WAIT`) a login, logout or revocation
    /// before it is acknowledged; fewer within half of `timeout` is
    /// [`StoreError::Unavailable`] (the write may or may not survive a
    /// failover). 0: acknowledged once the primary has it.
    pub wait_replicas: u32,
    /// Prefix of every key and channel, so that several deployments can
    /// share a Redis. Must not contain `{` or `}`.
    pub prefix: String,
    /// Limit on connecting and on every command.
    pub timeout: Duration,
    /// Sessions kept in this process's near-cache (0: none; every request
    /// reads Redis). See `near.rs` for how it stays correct.
    pub near_cache: usize,
    /// Longest a near-cached session is trusted without re-reading it.
    pub near_cache_max_age: Duration,
}

impl std::fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password.
        f.debug_struct("RedisOptions")
            .field("url", &"<redacted>")
            .field("tls", &self.tls)
            .field("wait_replicas", &self.wait_replicas)
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("near_cache", &self.near_cache)
            .field("near_cache_max_age", &self.near_cache_max_age)
            .finish()
    }
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".into(),
            tls: None,
            wait_replicas: 0,
            prefix: "tessera".into(),
            timeout: Duration::from_millis(1000),
            near_cache: 0,
            near_cache_max_age: Duration::from_secs(5),
        }
    }
}

/// Sessions, refresh families and revocations in Redis (single server or
/// cluster).
#[derive(Clone)]
pub struct RedisStore {
    client: fred::clients::Client,
    config: Config,
    options: RedisOptions,
    keys: Keys,
    scripts: Scripts,
    near: Option<std::sync::Arc<near::Near>>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password.
        f.debug_struct("RedisStore")
            .field("prefix", &self.options.prefix)
            .field("timeout", &self.options.timeout)
            .finish_non_exhaustive()
    }
}

/// What a node learns from the revocation channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevocationEvent {
    /// Some node saved this revocation.
    Revoked(Revocation),
    /// The subscription was re-established: messages may have been missed
    /// while it was down, so the listener should reload the list.
    Resubscribed,
}

fn integer(value: Value) -> Result<i64, StoreError> {
    match value {
        Value::Integer(n) => Ok(n),
        other => Err(StoreError::Corrupt(format!(
            "redis script answered {:?}",
            other.kind()
        ))),
    }
}

fn unavailable(error: fred::error::Error) -> StoreError {
    StoreError::Unavailable(format!("redis: {error}"))
}

impl RedisStore {
    /// Connects (within the timeout) and loads the scripts.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] if Redis cannot be reached in time or the
    /// URL is malformed.
    pub async fn connect(options: RedisOptions) -> Result<Self, StoreError> {
        if options.prefix.contains(['{', '}']) || options.prefix.is_empty() {
            return Err(StoreError::Unavailable(
                "redis key prefix must be non-empty and free of braces".into(),
            ));
        }
        let config = url::config(&options.url, options.tls.as_ref())
            .map_err(|e| StoreError::Unavailable(format!("redis url: {e}")))?;
        let client = builder(&config, options.timeout)
            .build()
            .map_err(unavailable)?;
        connect_within(&client, options.timeout).await?;
        check_eviction_policy(&client).await?;
        let keys = Keys::new(&options.prefix);
        let near = if options.near_cache > 0 {
            let channel = keys.session_channel();
            let subscriber = subscribed(&config, options.timeout, &channel).await?;
            Some(near::Near::start(
                subscriber,
                channel,
                options.near_cache,
                options.near_cache_max_age,
                options.timeout,
            ))
        } else {
            None
        };
        Ok(Self {
            keys,
            client,
            config,
            options,
            scripts: Scripts::new(),
            near,
        })
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.options.prefix
    }

    async fn eval(
        &self,
        script: &fred::types::scripts::Script,
        keys: Vec<Key>,
        args: Vec<Value>,
    ) -> Result<Value, StoreError> {
        script
            .evalsha_with_reload::<Value, _, _>(&self.client, keys, args)
            .await
            .map_err(unavailable)
    }

    async fn eval_int(
        &self,
        script: &fred::types::scripts::Script,
        keys: Vec<Key>,
        args: Vec<Value>,
    ) -> Result<i64, StoreError> {
        integer(self.eval(script, keys, args).await?)
    }

    /// [`RedisStore::eval_acked`] of a script that answers an integer.
    async fn eval_int_acked(
        &self,
        script: &fred::types::scripts::Script,
        keys: Vec<Key>,
        args: Vec<Value>,
    ) -> Result<i64, StoreError> {
        integer(self.eval_acked(script, keys, args).await?)
    }

    /// Runs a script that logs in, logs out or revokes: with
    /// `wait_replicas`, in one pipeline with `WAIT` (on the same connection,
    /// so `WAIT` covers this write; a connection that breaks in between
    /// fails both), and answers only once enough replicas confirm it.
    async fn eval_acked(
        &self,
        script: &fred::types::scripts::Script,
        keys: Vec<Key>,
        args: Vec<Value>,
    ) -> Result<Value, StoreError> {
        if self.options.wait_replicas == 0 {
            return self.eval(script, keys, args).await;
        }
        use fred::types::{ClusterHash, CustomCommand};
        let slot = keys.first().map(Key::cluster_hash);
        for _ in 0..2 {
            let pipeline = self.client.pipeline();
            // A pipeline has no `evalsha`: the command by hand, routed
            // by its first key.
            let mut command = Vec::with_capacity(2 + keys.len() + args.len());
            command.push(Value::from(script.sha1().clone()));
            command.push(Value::from(keys.len() as i64));
            command.extend(keys.iter().map(|k| Value::from(k.clone())));
            command.extend(args.iter().cloned());
            let hash = slot.map_or(ClusterHash::FirstKey, ClusterHash::Custom);
            let queued: Result<(), _> = pipeline
                .custom(CustomCommand::new_static("EVALSHA", hash, false), command)
                .await;
            queued.map_err(unavailable)?;
            self.queue_wait(&pipeline, slot).await?;
            let mut results = pipeline.try_all::<Value>().await.into_iter();
            let written = results.next();
            let waited = results.next();
            match written {
                Some(Err(e)) if e.details().starts_with("NOSCRIPT") => {
                    script.load(&self.client).await.map_err(unavailable)?;
                }
                Some(written) => {
                    let written = written.map_err(unavailable)?;
                    self.confirmed(waited)?;
                    return Ok(written);
                }
                None => break,
            }
        }
        Err(StoreError::Unavailable(
            "redis: the script could not be loaded".into(),
        ))
    }

    /// Deletes a key and, with `wait_replicas`, waits for replicas as
    /// [`RedisStore::eval_acked`] does.
    async fn del_acked(&self, key: Key) -> Result<i64, StoreError> {
        use fred::prelude::KeysInterface;
        if self.options.wait_replicas == 0 {
            return self.client.del(key).await.map_err(unavailable);
        }
        let slot = Some(key.cluster_hash());
        let pipeline = self.client.pipeline();
        let queued: Result<(), _> = pipeline.del(key).await;
        queued.map_err(unavailable)?;
        self.queue_wait(&pipeline, slot).await?;
        let mut results = pipeline.try_all::<Value>().await.into_iter();
        let deleted = results
            .next()
            .ok_or_else(|| StoreError::Unavailable("redis: no answer".into()))?
            .map_err(unavailable)?;
        self.confirmed(results.next())?;
        match deleted {
            Value::Integer(n) => Ok(n),
            other => Err(StoreError::Corrupt(format!(
                "redis DEL answered {:?}",
                other.kind()
            ))),
        }
    }

    /// Queues `WAIT wait_replicas ms` routed to `slot`'s node. It waits at
    /// most half the command timeout, so that its answer (not the client's
    /// timeout) says how many replicas confirmed.
    async fn queue_wait(
        &self,
        pipeline: &fred::clients::Pipeline<fred::clients::Client>,
        slot: Option<u16>,
    ) -> Result<(), StoreError> {
        use fred::types::{ClusterHash, CustomCommand};
        let hash = slot.map_or(ClusterHash::FirstKey, ClusterHash::Custom);
        let wait_ms = u64::try_from((self.options.timeout / 2).as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let queued: Result<(), _> = pipeline
            .custom(
                CustomCommand::new_static("WAIT", hash, false),
                vec![
                    Value::from(i64::from(self.options.wait_replicas)),
                    Value::from(wait_ms as i64),
                ],
            )
            .await;
        queued.map_err(unavailable)
    }

    /// Whether `WAIT`'s answer confirms enough replicas.
    fn confirmed(
        &self,
        waited: Option<Result<Value, fred::error::Error>>,
    ) -> Result<(), StoreError> {
        let wanted = i64::from(self.options.wait_replicas);
        match waited {
            Some(Ok(Value::Integer(n))) if n >= wanted => Ok(()),
            Some(Ok(Value::Integer(n))) => Err(StoreError::Unavailable(format!(
                "redis: {n} of {wanted} replicas confirmed the write in time (redis_wait_replicas); it may or may not survive a failover"
            ))),
            Some(Ok(other)) => Err(StoreError::Corrupt(format!(
                "redis WAIT answered {:?}",
                other.kind()
            ))),
            Some(Err(e)) => Err(unavailable(e)),
            None => Err(StoreError::Unavailable(
                "redis: WAIT was not answered".into(),
            )),
        }
    }

    async fn ping_redis(&self) -> Result<(), StoreError> {
        self.client
            .ping::<Value>(None)
            .await
            .map(drop)
            .map_err(unavailable)
    }

    /// Subscribes to the revocation channel. Every revocation saved through
    /// any `RedisStore` with the same prefix arrives as
    /// [`RevocationEvent::Revoked`]; after a lost connection is re-established
    /// a [`RevocationEvent::Resubscribed`] says that some may have been
    /// missed. The subscription ends when the receiver is dropped.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] if the subscription cannot be set up.
    pub async fn watch_revocations(
        &self,
    ) -> Result<mpsc::UnboundedReceiver<RevocationEvent>, StoreError> {
        let channel = self.keys.revocation_channel();
        let subscriber = subscribed(&self.config, self.options.timeout, &channel).await?;
        let mut messages = subscriber.message_rx();
        let mut reconnects = subscriber.reconnect_rx();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let event = tokio::select! {
                    message = messages.recv() => match message {
                        Ok(message) => match message.value.as_bytes().map(codec::decode_revocation) {
                            Some(Ok(revocation)) => RevocationEvent::Revoked(revocation),
                            _ => {
                                // Reload rather than lose what it announced.
                                tracing::warn!("unreadable message on the revocation channel");
                                RevocationEvent::Resubscribed
                            }
                        },
                        // Lagged: messages were dropped, so reload.
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => RevocationEvent::Resubscribed,
                        Err(_) => break,
                    },
                    reconnect = reconnects.recv() => match reconnect {
                        Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                            // Subscribe again before asking for a reload, so
                            // that nothing saved after the reload is missed.
                            if !resubscribe(&subscriber, &channel, || !tx.is_closed()).await {
                                break;
                            }
                            RevocationEvent::Resubscribed
                        }
                        Err(_) => break,
                    },
                    () = tx.closed() => break,
                };
                if tx.send(event).is_err() {
                    break;
                }
            }
            let _ = subscriber.quit().await;
        });
        Ok(rx)
    }

    /// Bytes of memory Redis reports in use (`INFO memory`, `used_memory`),
    /// summed over the cluster's primaries. For measurements.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`].
    pub async fn used_memory(&self) -> Result<u64, StoreError> {
        let info: String = self
            .client
            .info(Some(fred::types::InfoKind::Memory))
            .await
            .map_err(unavailable)?;
        Ok(info
            .lines()
            .filter_map(|l| l.strip_prefix("used_memory:"))
            .filter_map(|v| v.trim().parse::<u64>().ok())
            .sum())
    }
}

/// Connects within twice the timeout (connecting may take a few round trips).
async fn connect_within(client: &impl ClientLike, timeout: Duration) -> Result<(), StoreError> {
    tokio::time::timeout(timeout * 2, client.init())
        .await
        .map_err(|_| StoreError::Unavailable("redis: connect timed out".into()))?
        .map(drop)
        .map_err(unavailable)
}

/// A connection of its own, subscribed to `channel`.
async fn subscribed(
    config: &Config,
    timeout: Duration,
    channel: &str,
) -> Result<fred::clients::SubscriberClient, StoreError> {
    let subscriber = builder(config, timeout)
        .build_subscriber_client()
        .map_err(unavailable)?;
    connect_within(&subscriber, timeout).await?;
    subscriber
        .subscribe(channel.to_owned())
        .await
        .map_err(unavailable)?;
    Ok(subscriber)
}

/// Subscribes `subscriber` to `channel` again after a reconnect, retrying
/// until it works; `false` if `wanted` says the subscription is no longer
/// needed.
pub(crate) async fn resubscribe(
    subscriber: &fred::clients::SubscriberClient,
    channel: &str,
    wanted: impl Fn() -> bool,
) -> bool {
    loop {
        if !wanted() {
            return false;
        }
        match subscriber.subscribe(channel.to_owned()).await {
            Ok(()) => return true,
            Err(e) => {
                tracing::warn!(error = %e, channel, "resubscribing failed; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Refuses a Redis that may evict keys; warns when it cannot tell (managed
/// services often disable `CONFIG`).
async fn check_eviction_policy(client: &fred::clients::Client) -> Result<(), StoreError> {
    use fred::prelude::ConfigInterface;
    match client
        .config_get::<Vec<String>, _>("maxmemory-policy")
        .await
    {
        Ok(pair) => match pair.get(1).map(String::as_str) {
            Some("noeviction") | None => Ok(()),
            Some(policy) => Err(StoreError::Unavailable(format!(
                "redis: maxmemory-policy is {policy}; tessera needs noeviction (an evicted index or revocation would undo a logout)"
            ))),
        },
        Err(e) => {
            tracing::warn!(error = %e, "cannot read redis maxmemory-policy; make sure it is noeviction");
            Ok(())
        }
    }
}

fn builder(config: &Config, timeout: Duration) -> Builder {
    let mut builder = Builder::from_config(config.clone());
    builder
        .with_performance_config(|p| {
            p.default_command_timeout = timeout;
        })
        .with_connection_config(|c| {
            c.connection_timeout = timeout;
            c.internal_command_timeout = timeout;
            // A command whose connection broke is failed, not re-sent: a
            // rotation or revocation must not run twice unnoticed.
            c.max_command_attempts = 1;
            c.unresponsive = UnresponsiveConfig {
                max_timeout: Some(timeout * 2),
                interval: (timeout / 4).max(Duration::from_millis(50)),
            };
        })
        .set_policy(ReconnectPolicy::new_exponential(0, 50, 1000, 2));
    builder
}
