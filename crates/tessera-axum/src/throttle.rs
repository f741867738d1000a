//! Login throttling: token buckets per client IP and per account.
//!
//! Every login attempt takes a token from both the client's IP bucket and the
//! account's bucket; a successful login gives them back, so only failures
//! count. An empty bucket answers 429 with `Retry-After` before any password
//! is hashed. Buckets refill continuously, so a lock-out lasts only until the
//! next token (at most one refill interval): an attacker can slow a real
//! user's logins down but never lock them out for good.
//!
//! Unknown accounts are throttled exactly like real ones (no enumeration).
//! Memory is bounded: full buckets carry no information and are pruned, and
//! past `max_tracked` keys the fullest buckets are evicted first.
//!
//! A cluster keeps the buckets in its shared store instead
//! ([`SharedBuckets`], e.g. Redis), so that spreading attempts over nodes
//! gains an attacker nothing. When that store is down, logins fail closed.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tessera_core::StoreError;

/// The shape of one kind of bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketRule {
    /// Failures allowed in a burst.
    pub burst: u32,
    /// Failures allowed per minute, sustained.
    pub per_minute: u32,
}

impl BucketRule {
    fn refill_interval(&self) -> Duration {
        Duration::from_secs_f64(60.0 / f64::from(self.per_minute.max(1)))
    }
}

/// Throttling settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThrottleSettings {
    /// Per client IP address.
    pub per_ip: BucketRule,
    /// Per account (the e-mail address as typed, normalised).
    pub per_account: BucketRule,
    /// Most keys tracked per kind before eviction.
    pub max_tracked: usize,
}

impl Default for ThrottleSettings {
    fn default() -> Self {
        Self {
            per_ip: BucketRule {
                burst: 20,
                per_minute: 20,
            },
            per_account: BucketRule {
                burst: 10,
                per_minute: 4,
            },
            max_tracked: 100_000,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

#[derive(Debug)]
struct Buckets<K> {
    rule: BucketRule,
    map: HashMap<K, Bucket>,
}

impl<K: Eq + Hash + Clone> Buckets<K> {
    fn new(rule: BucketRule) -> Self {
        Self {
            rule,
            map: HashMap::new(),
        }
    }

    fn refilled(&self, key: &K, now: Instant) -> f64 {
        let capacity = f64::from(self.rule.burst);
        self.map.get(key).map_or(capacity, |b| {
            let gained = now.duration_since(b.updated).as_secs_f64()
                / self.rule.refill_interval().as_secs_f64();
            (b.tokens + gained).min(capacity)
        })
    }

    /// Time until a token is available, or zero if one is.
    fn wait(&self, key: &K, now: Instant) -> Duration {
        let tokens = self.refilled(key, now);
        if tokens >= 1.0 {
            Duration::ZERO
        } else {
            self.rule.refill_interval().mul_f64(1.0 - tokens)
        }
    }

    fn add(&mut self, key: &K, delta: f64, now: Instant) {
        let tokens = (self.refilled(key, now) + delta).min(f64::from(self.rule.burst));
        self.map.insert(
            key.clone(),
            Bucket {
                tokens,
                updated: now,
            },
        );
    }

    fn prune(&mut self, now: Instant, max_tracked: usize) {
        let capacity = f64::from(self.rule.burst);
        let rule = self.rule;
        self.map.retain(|_, b| {
            let gained =
                now.duration_since(b.updated).as_secs_f64() / rule.refill_interval().as_secs_f64();
            b.tokens + gained < capacity
        });
        if self.map.len() > max_tracked {
            let mut entries: Vec<(K, f64)> = self
                .map
                .iter()
                .map(|(k, b)| (k.clone(), b.tokens))
                .collect();
            entries.sort_by(|a, b| b.1.total_cmp(&a.1));
            let excess = self.map.len() - max_tracked * 9 / 10;
            for (key, _) in entries.into_iter().take(excess) {
                self.map.remove(&key);
            }
        }
    }
}

#[derive(Debug)]
struct State {
    ips: Buckets<IpAddr>,
    accounts: Buckets<String>,
}

/// Token buckets kept outside the process, shared by every node.
#[async_trait]
pub trait SharedBuckets: Send + Sync + 'static {
    /// Takes a token from bucket `name` of `kind` (`delta` -1) or gives one
    /// back (`delta` 1); returns how long to wait if the bucket is empty.
    async fn update(
        &self,
        kind: &str,
        name: &str,
        rule: BucketRule,
        delta: i64,
    ) -> Result<Duration, StoreError>;
}

#[async_trait]
impl SharedBuckets for tessera_store::RedisThrottle {
    async fn update(
        &self,
        kind: &str,
        name: &str,
        rule: BucketRule,
        delta: i64,
    ) -> Result<Duration, StoreError> {
        tessera_store::RedisThrottle::update(
            self,
            kind,
            name,
            rule.burst,
            rule.refill_interval(),
            delta,
        )
        .await
    }
}

/// Why an attempt may not go ahead.
#[derive(Debug)]
pub enum Refusal {
    /// Too many failures: wait this long.
    Wait(Duration),
    /// The shared buckets cannot be reached (fail closed).
    Unavailable(StoreError),
}

/// Login throttle shared by all requests of a node (or, with
/// [`SharedBuckets`], of the cluster).
pub struct LoginThrottle {
    max_tracked: usize,
    per_ip: BucketRule,
    per_account: BucketRule,
    state: Mutex<State>,
    shared: Option<Arc<dyn SharedBuckets>>,
}

impl std::fmt::Debug for LoginThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginThrottle")
            .field("per_ip", &self.per_ip)
            .field("per_account", &self.per_account)
            .field("shared", &self.shared.is_some())
            .finish_non_exhaustive()
    }
}

/// Longest account key kept; longer input is cut (it cannot be a real address).
const MAX_ACCOUNT_KEY: usize = 320;

impl LoginThrottle {
    /// A throttle with the given settings.
    pub fn new(settings: ThrottleSettings) -> Self {
        Self {
            max_tracked: settings.max_tracked,
            per_ip: settings.per_ip,
            per_account: settings.per_account,
            state: Mutex::new(State {
                ips: Buckets::new(settings.per_ip),
                accounts: Buckets::new(settings.per_account),
            }),
            shared: None,
        }
    }

    /// Keeps the buckets in `shared` instead of process memory.
    #[must_use]
    pub fn with_shared(mut self, shared: Arc<dyn SharedBuckets>) -> Self {
        self.shared = Some(shared);
        self
    }

    /// Takes a token for an attempt, or says why not.
    ///
    /// # Errors
    ///
    /// [`Refusal::Wait`] with the time until both buckets have a token
    /// again; [`Refusal::Unavailable`] if the shared buckets are down.
    pub async fn begin(&self, ip: IpAddr, account: &str) -> Result<(), Refusal> {
        let Some(shared) = &self.shared else {
            return self.begin_attempt(ip, account).map_err(Refusal::Wait);
        };
        let key = Self::account_key(account);
        let ip = ip.to_string();
        let wait = shared
            .update("ip", &ip, self.per_ip, -1)
            .await
            .map_err(Refusal::Unavailable)?;
        if wait > Duration::ZERO {
            return Err(Refusal::Wait(wait));
        }
        let wait = match shared.update("account", &key, self.per_account, -1).await {
            Ok(wait) => wait,
            Err(e) => {
                let _ = shared.update("ip", &ip, self.per_ip, 1).await;
                return Err(Refusal::Unavailable(e));
            }
        };
        if wait > Duration::ZERO {
            // The attempt does not happen: the IP's token goes back.
            shared
                .update("ip", &ip, self.per_ip, 1)
                .await
                .map_err(Refusal::Unavailable)?;
            return Err(Refusal::Wait(wait));
        }
        Ok(())
    }

    /// Gives back the tokens of an attempt that succeeded.
    pub async fn finish_success(&self, ip: IpAddr, account: &str) {
        let Some(shared) = &self.shared else {
            self.succeeded(ip, account);
            return;
        };
        let key = Self::account_key(account);
        // Best effort: if the store is down, the tokens refill with time.
        let _ = shared.update("ip", &ip.to_string(), self.per_ip, 1).await;
        let _ = shared.update("account", &key, self.per_account, 1).await;
    }

    fn account_key(account: &str) -> String {
        account
            .trim()
            .to_lowercase()
            .chars()
            .take(MAX_ACCOUNT_KEY)
            .collect()
    }

    /// Takes a token for an attempt, or says how long to wait.
    ///
    /// # Errors
    ///
    /// The time until both buckets have a token again.
    pub fn begin_attempt(&self, ip: IpAddr, account: &str) -> Result<(), Duration> {
        let key = Self::account_key(account);
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let wait = state.ips.wait(&ip, now).max(state.accounts.wait(&key, now));
        if wait > Duration::ZERO {
            return Err(wait);
        }
        state.ips.add(&ip, -1.0, now);
        state.accounts.add(&key, -1.0, now);
        if state.ips.map.len() > self.max_tracked || state.accounts.map.len() > self.max_tracked {
            state.ips.prune(now, self.max_tracked);
            state.accounts.prune(now, self.max_tracked);
        }
        Ok(())
    }

    /// Gives back the token of an attempt that succeeded.
    pub fn succeeded(&self, ip: IpAddr, account: &str) {
        let key = Self::account_key(account);
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.ips.add(&ip, 1.0, now);
        state.accounts.add(&key, 1.0, now);
    }

    /// Drops buckets that have refilled. Run periodically.
    pub fn prune(&self) {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.ips.prune(now, self.max_tracked);
        state.accounts.prune(now, self.max_tracked);
    }

    /// How many keys are tracked (IPs, accounts), for reporting memory use.
    pub fn tracked(&self) -> (usize, usize) {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        (state.ips.map.len(), state.accounts.map.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle(ip_burst: u32, account_burst: u32) -> LoginThrottle {
        LoginThrottle::new(ThrottleSettings {
            per_ip: BucketRule {
                burst: ip_burst,
                per_minute: 60,
            },
            per_account: BucketRule {
                burst: account_burst,
                per_minute: 60,
            },
            max_tracked: 1000,
        })
    }

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));

    #[test]
    fn failures_beyond_the_burst_are_refused_with_a_wait() {
        let t = throttle(100, 3);
        for _ in 0..3 {
            t.begin_attempt(IP, "a@example.com").unwrap();
        }
        let wait = t.begin_attempt(IP, "A@example.com ").unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
    }

    #[test]
    fn successes_do_not_count() {
        let t = throttle(2, 2);
        for _ in 0..10 {
            t.begin_attempt(IP, "a@example.com").unwrap();
            t.succeeded(IP, "a@example.com");
        }
    }

    #[test]
    fn one_ip_cannot_spray_many_accounts() {
        let t = throttle(3, 100);
        for i in 0..3 {
            t.begin_attempt(IP, &format!("user{i}@example.com"))
                .unwrap();
        }
        assert!(t.begin_attempt(IP, "fresh@example.com").is_err());
        let other_ip: IpAddr = "198.51.100.1".parse().unwrap();
        assert!(t.begin_attempt(other_ip, "fresh@example.com").is_ok());
    }

    #[test]
    fn buckets_refill_so_no_lockout_is_permanent() {
        let t = LoginThrottle::new(ThrottleSettings {
            per_ip: BucketRule {
                burst: 100,
                per_minute: 6000,
            },
            per_account: BucketRule {
                burst: 1,
                per_minute: 6000,
            },
            max_tracked: 10,
        });
        t.begin_attempt(IP, "a@example.com").unwrap();
        assert!(t.begin_attempt(IP, "a@example.com").is_err());
        std::thread::sleep(Duration::from_millis(15));
        assert!(t.begin_attempt(IP, "a@example.com").is_ok());
    }

    #[test]
    fn tracked_keys_stay_bounded() {
        let t = throttle(1000, 5);
        for i in 0..50 {
            let _ = t.begin_attempt(IP, &format!("u{i}@example.com"));
        }
        let big = LoginThrottle::new(ThrottleSettings {
            max_tracked: 10,
            ..ThrottleSettings::default()
        });
        for i in 0..50u8 {
            let ip = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, i));
            let _ = big.begin_attempt(ip, &format!("u{i}@example.com"));
        }
        let (ips, accounts) = big.tracked();
        assert!(ips <= 11 && accounts <= 11, "{ips} {accounts}");
    }
}
