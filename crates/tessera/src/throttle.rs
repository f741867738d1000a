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

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

/// Login throttle shared by all requests of a node.
#[derive(Debug)]
pub struct LoginThrottle {
    max_tracked: usize,
    state: Mutex<State>,
}

/// Longest account key kept; longer input is cut (it cannot be a real address).
const MAX_ACCOUNT_KEY: usize = 320;

impl LoginThrottle {
    /// A throttle with the given settings.
    pub fn new(settings: ThrottleSettings) -> Self {
        Self {
            max_tracked: settings.max_tracked,
            state: Mutex::new(State {
                ips: Buckets::new(settings.per_ip),
                accounts: Buckets::new(settings.per_account),
            }),
        }
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
