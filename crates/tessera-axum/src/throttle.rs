//! Login throttling: token buckets per client, per account and per device.
//!
//! Every login attempt takes a token from the client's bucket (an IPv4
//! address, or an IPv6 network: for IPv6 also its /48) and from one of two
//! buckets of the account: the budget of the device that proves an earlier
//! successful login to it (a device cookie, see [`tessera_core::DeviceKey`]),
//! or else the account-wide budget every unknown client shares. A
//! successful login gives the tokens back, so only failures count. An empty
//! bucket answers 429 with `Retry-After` before any password is hashed, and
//! a refused attempt still costs its client: polling a throttled account
//! drains the poller's own budget. Buckets refill continuously.
//!
//! So an attacker who empties an account's budget from elsewhere slows only
//! the clients that never logged in to it: its owner, on a device that did,
//! logs in at once (OWASP's device cookies against targeted lockout).
//!
//! Unknown accounts are throttled exactly like real ones (no enumeration).
//! The buckets live in a [`ThrottleStore`]: this process's [`LocalBuckets`]
//! (bounded: full buckets carry no information and are pruned, and past
//! `max_tracked` keys the fullest are evicted first), or a cluster's shared
//! store (Redis), so that spreading attempts over nodes gains an attacker
//! nothing. When that store is down, logins fail closed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tessera_core::{BucketRule, DeviceId, DeviceKey, Email, StoreError, ThrottleStore, Timestamp};

use crate::client_ip::client_network;

/// Throttling settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThrottleSettings {
    /// Per client: an IPv4 address, or an IPv6 network of `ipv6_prefix`.
    pub per_ip: BucketRule,
    /// Per account (the canonical address, see `Email::parse`), shared by
    /// every client without a device cookie for it; also the budget of each
    /// device that has one.
    pub per_account: BucketRule,
    /// The IPv6 prefix length counted as one client: a home line or a
    /// server gets a whole /64, so 64 by default (each of its addresses
    /// must not get a budget of its own).
    pub ipv6_prefix: u8,
    /// Per IPv6 /48 (a site's allocation, above the per-client network):
    /// by default four times `per_ip`, so one site cannot spread attempts
    /// over its many /64s either.
    pub per_ipv6_site: BucketRule,
    /// How long a device cookie vouches for an earlier login (each
    /// successful login issues a fresh one).
    pub device_lifetime: Duration,
    /// Mails one address may be sent on request (sign-up, recovery,
    /// verification), whoever asks: by default three at once, then one a
    /// minute.
    pub per_address_mail: BucketRule,
}

/// Default lifetime of a device cookie: half a year.
pub const DEFAULT_DEVICE_LIFETIME: Duration = Duration::from_secs(180 * 86_400);

/// The /48 of an IPv6 site allocation.
const IPV6_SITE_PREFIX: u8 = 48;

impl Default for ThrottleSettings {
    fn default() -> Self {
        let per_ip = BucketRule::new(20, 20).expect("valid");
        Self {
            per_ip,
            per_account: BucketRule::new(10, 4).expect("valid"),
            ipv6_prefix: 64,
            per_ipv6_site: site_rule(per_ip),
            device_lifetime: DEFAULT_DEVICE_LIFETIME,
            per_address_mail: BucketRule::new(3, 1).expect("valid"),
        }
    }
}

/// The default /48 rule for a per-client rule: four times its budget.
pub fn site_rule(per_ip: BucketRule) -> BucketRule {
    BucketRule::new(
        per_ip.burst().saturating_mul(4),
        per_ip.per_minute().saturating_mul(4),
    )
    .expect("a multiple of a valid rule is valid")
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
    rule: BucketRule,
}

impl Bucket {
    fn refilled(&self, now: Instant) -> f64 {
        let gained = now.duration_since(self.updated).as_secs_f64()
            / self.rule.refill_interval().as_secs_f64();
        (self.tokens + gained).min(f64::from(self.rule.burst()))
    }
}

/// Token buckets in this process's memory: one node's throttling.
#[derive(Debug)]
pub struct LocalBuckets {
    max_tracked: usize,
    buckets: Mutex<HashMap<(String, String), Bucket>>,
}

impl Default for LocalBuckets {
    fn default() -> Self {
        Self::new(100_000)
    }
}

impl LocalBuckets {
    /// Buckets for at most about `max_tracked` keys (past that, the fullest
    /// are evicted first: they carry the least information).
    pub fn new(max_tracked: usize) -> Self {
        Self {
            max_tracked: max_tracked.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Keys tracked, for reporting memory use.
    pub fn tracked(&self) -> usize {
        lock(&self.buckets).len()
    }

    fn take_or_give(&self, kind: &str, name: &str, rule: BucketRule, delta: i64) -> Duration {
        let now = Instant::now();
        let mut buckets = lock(&self.buckets);
        let key = (kind.to_owned(), name.to_owned());
        let tokens = buckets
            .get(&key)
            .map_or(f64::from(rule.burst()), |b| b.refilled(now));
        if delta < 0 && tokens < 1.0 {
            return rule.refill_interval().mul_f64(1.0 - tokens);
        }
        let tokens = (tokens + delta as f64).min(f64::from(rule.burst()));
        buckets.insert(
            key,
            Bucket {
                tokens,
                updated: now,
                rule,
            },
        );
        if buckets.len() > self.max_tracked {
            prune(&mut buckets, now, self.max_tracked);
        }
        Duration::ZERO
    }
}

fn prune(buckets: &mut HashMap<(String, String), Bucket>, now: Instant, max_tracked: usize) {
    buckets.retain(|_, b| b.refilled(now) < f64::from(b.rule.burst()));
    if buckets.len() > max_tracked {
        let mut entries: Vec<((String, String), f64)> =
            buckets.iter().map(|(k, b)| (k.clone(), b.tokens)).collect();
        entries.sort_by(|a, b| b.1.total_cmp(&a.1));
        let excess = buckets.len() - max_tracked * 9 / 10;
        for (key, _) in entries.into_iter().take(excess) {
            buckets.remove(&key);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[async_trait]
impl ThrottleStore for LocalBuckets {
    async fn update(
        &self,
        kind: &str,
        name: &str,
        rule: BucketRule,
        delta: i64,
    ) -> Result<Duration, StoreError> {
        Ok(self.take_or_give(kind, name, rule, delta))
    }

    fn prune(&self) {
        prune(&mut lock(&self.buckets), Instant::now(), self.max_tracked);
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

/// One login attempt as the throttle sees it: who makes it, on which
/// account, and whether the client proved an earlier login to that account.
#[derive(Debug, Clone)]
pub struct Attempt {
    ip: IpAddr,
    client: String,
    account: String,
    device: Option<DeviceId>,
}

impl Attempt {
    /// The client's throttling key: an IPv4 address, or an IPv6 network.
    /// The hashing queue shares its places out by it.
    pub fn client(&self) -> &str {
        &self.client
    }

    /// Whether the attempt comes with a valid device cookie for its account.
    pub fn from_known_device(&self) -> bool {
        self.device.is_some()
    }
}

/// Login throttle shared by all requests of a node (or, with a shared
/// [`ThrottleStore`], of the cluster).
pub struct LoginThrottle {
    settings: ThrottleSettings,
    store: Arc<dyn ThrottleStore>,
    devices: DeviceKey,
}

impl std::fmt::Debug for LoginThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginThrottle")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Longest account key kept; longer input is cut (it cannot be a real address).
const MAX_ACCOUNT_KEY: usize = 320;

impl LoginThrottle {
    /// A throttle with the given settings, its buckets in `store`, device
    /// cookies signed with `devices`.
    pub fn new(
        settings: ThrottleSettings,
        store: Arc<dyn ThrottleStore>,
        devices: DeviceKey,
    ) -> Self {
        Self {
            settings,
            store,
            devices,
        }
    }

    /// The attempt of `ip` on `account`, with the device cookie the client
    /// sent (if any; one that is not valid for this account counts as none).
    pub fn attempt(&self, ip: IpAddr, account: &str, device_cookie: Option<&str>) -> Attempt {
        let account = account_key(account);
        let device = device_cookie.and_then(|token| {
            self.devices.verify(
                token,
                &account,
                Timestamp::now(),
                self.settings.device_lifetime,
            )
        });
        Attempt {
            ip,
            client: self.client_key(ip),
            account,
            device,
        }
    }

    /// A client's throttling key (and its share of the hashing queue): an
    /// IPv4 address, or the IPv6 network of `ipv6_prefix` around it.
    pub fn client_key(&self, ip: IpAddr) -> String {
        network_text(ip, self.settings.ipv6_prefix)
    }

    /// The buckets an attempt draws from: the client, for IPv6 also its
    /// /48, and the device's budget or else the account's.
    fn buckets(&self, attempt: &Attempt) -> Vec<(&'static str, String, BucketRule)> {
        let s = &self.settings;
        let mut buckets = Vec::with_capacity(3);
        buckets.push(("ip", attempt.client.clone(), s.per_ip));
        if attempt.ip.is_ipv6() && s.ipv6_prefix > IPV6_SITE_PREFIX {
            let site = network_text(attempt.ip, IPV6_SITE_PREFIX);
            buckets.push(("ip48", site, s.per_ipv6_site));
        }
        match attempt.device {
            Some(device) => buckets.push(("device", device.to_hex(), s.per_account)),
            None => buckets.push(("account", attempt.account.clone(), s.per_account)),
        }
        buckets
    }

    /// Takes a token for the attempt from every bucket it draws from, in
    /// order (client first), or says why not. A refused attempt keeps the
    /// tokens it took before the empty bucket: it costs its client.
    ///
    /// # Errors
    ///
    /// [`Refusal::Wait`] with the time until the empty bucket has a token
    /// again; [`Refusal::Unavailable`] if the buckets' store is down.
    pub async fn begin(&self, attempt: &Attempt) -> Result<(), Refusal> {
        for (kind, name, rule) in self.buckets(attempt) {
            match self.store.update(kind, &name, rule, -1).await {
                Ok(wait) if wait == Duration::ZERO => {}
                Ok(wait) => return Err(Refusal::Wait(wait)),
                Err(e) => return Err(Refusal::Unavailable(e)),
            }
        }
        Ok(())
    }

    /// Gives back the tokens of an attempt that succeeded and returns a
    /// fresh device cookie value for its account.
    pub async fn finish_success(&self, attempt: &Attempt) -> String {
        // Best effort: if the store is down, the tokens refill with time.
        for (kind, name, rule) in self.buckets(attempt) {
            let _ = self.store.update(kind, &name, rule, 1).await;
        }
        self.devices.issue(&attempt.account, Timestamp::now())
    }

    /// Takes a token for a request that mails `address` (sign-up, a
    /// recovery or verification mail): from the client's bucket (the
    /// per-IP rule) and from the address's ([`MAIL_PER_ADDRESS`]), alike
    /// for addresses with and without an account. Never given back: each
    /// such request costs, so nobody can flood a mailbox or the outbox.
    ///
    /// # Errors
    ///
    /// As [`LoginThrottle::begin`].
    pub async fn mail_attempt(&self, ip: IpAddr, address: &str) -> Result<(), Refusal> {
        let buckets = [
            ("mail_ip", self.client_key(ip), self.settings.per_ip),
            (
                "mail_to",
                account_key(address),
                self.settings.per_address_mail,
            ),
        ];
        for (kind, name, rule) in buckets {
            match self.store.update(kind, &name, rule, -1).await {
                Ok(wait) if wait == Duration::ZERO => {}
                Ok(wait) => return Err(Refusal::Wait(wait)),
                Err(e) => return Err(Refusal::Unavailable(e)),
            }
        }
        Ok(())
    }

    /// How long a device cookie is good for.
    pub fn device_lifetime(&self) -> Duration {
        self.settings.device_lifetime
    }

    /// Drops buckets that have refilled. Run periodically.
    pub fn prune(&self) {
        self.store.prune();
    }
}

/// A bucket's name for the client `ip` belongs to (see [`client_network`]):
/// the IPv4 address, or the IPv6 network as `address/prefix`.
fn network_text(ip: IpAddr, ipv6_prefix: u8) -> String {
    match client_network(ip, ipv6_prefix) {
        IpAddr::V6(network) => format!("{network}/{}", ipv6_prefix.min(128)),
        v4 => v4.to_string(),
    }
}

/// The account as throttled: the canonical address (`Email::parse`), so
/// that every spelling of one address draws from one budget; input that is
/// no address, trimmed, lower-cased and cut to a length no real address
/// exceeds.
fn account_key(account: &str) -> String {
    match Email::parse(account) {
        Ok(email) => email.into(),
        Err(_) => account
            .trim()
            .to_lowercase()
            .chars()
            .take(MAX_ACCOUNT_KEY)
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(burst: u32, per_minute: u32) -> BucketRule {
        BucketRule::new(burst, per_minute).unwrap()
    }

    fn throttle(ip_burst: u32, account_burst: u32) -> LoginThrottle {
        LoginThrottle::new(
            ThrottleSettings {
                per_ip: rule(ip_burst, 60),
                per_account: rule(account_burst, 60),
                ..ThrottleSettings::default()
            },
            Arc::new(LocalBuckets::new(1000)),
            device_key(),
        )
    }

    fn device_key() -> DeviceKey {
        DeviceKey::derive(&tessera_core::ChainKey::generate())
    }

    async fn begin(t: &LoginThrottle, ip: IpAddr, account: &str) -> Result<(), Refusal> {
        t.begin(&t.attempt(ip, account, None)).await
    }

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));

    fn wait(refusal: Refusal) -> Duration {
        match refusal {
            Refusal::Wait(wait) => wait,
            Refusal::Unavailable(e) => panic!("{e}"),
        }
    }

    #[tokio::test]
    async fn failures_beyond_the_burst_are_refused_with_a_wait() {
        let t = throttle(100, 3);
        for _ in 0..3 {
            begin(&t, IP, "a@example.com").await.unwrap();
        }
        let wait = wait(begin(&t, IP, "A@example.com ").await.unwrap_err());
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
    }

    #[tokio::test]
    async fn every_spelling_of_an_address_draws_from_one_budget() {
        let t = throttle(100, 3);
        let other: IpAddr = "198.51.100.1".parse().unwrap();
        for spelling in [
            "jos\u{e9}@b\u{fc}cher.example",
            "JOSE\u{301}@xn--bcher-kva.example.",
            "\u{ff4a}\u{ff4f}\u{ff53}\u{e9}@B\u{dc}CHER.example",
        ] {
            begin(&t, IP, spelling).await.unwrap();
        }
        assert!(
            begin(&t, other, "jos\u{e9}@xn--bcher-kva.example")
                .await
                .is_err(),
            "three spellings emptied one account's budget"
        );
    }

    #[tokio::test]
    async fn successes_do_not_count() {
        let t = throttle(2, 2);
        for _ in 0..10 {
            begin(&t, IP, "a@example.com").await.unwrap();
            t.finish_success(&t.attempt(IP, "a@example.com", None))
                .await;
        }
    }

    #[tokio::test]
    async fn one_ip_cannot_spray_many_accounts() {
        let t = throttle(3, 100);
        for i in 0..3 {
            begin(&t, IP, &format!("user{i}@example.com"))
                .await
                .unwrap();
        }
        assert!(begin(&t, IP, "fresh@example.com").await.is_err());
        let other_ip: IpAddr = "198.51.100.1".parse().unwrap();
        assert!(begin(&t, other_ip, "fresh@example.com").await.is_ok());
    }

    #[tokio::test]
    async fn a_refused_attempt_costs_its_client() {
        let t = throttle(3, 1);
        begin(&t, IP, "a@example.com").await.unwrap();
        // The account is empty; polling it still takes the client's tokens.
        assert!(begin(&t, IP, "a@example.com").await.is_err());
        assert!(begin(&t, IP, "a@example.com").await.is_err());
        assert!(
            begin(&t, IP, "b@example.com").await.is_err(),
            "the poller spent its own budget"
        );
        let other: IpAddr = "198.51.100.1".parse().unwrap();
        begin(&t, other, "b@example.com").await.unwrap();
    }

    #[tokio::test]
    async fn a_known_device_keeps_its_own_budget_when_the_account_is_emptied() {
        let t = throttle(100, 2);
        let owner: IpAddr = "198.51.100.7".parse().unwrap();
        let first = t.attempt(owner, "alice@example.com", None);
        t.begin(&first).await.unwrap();
        let cookie = t.finish_success(&first).await;
        // Another client empties the account's shared budget.
        for _ in 0..2 {
            begin(&t, IP, "alice@example.com").await.unwrap();
        }
        assert!(begin(&t, IP, "alice@example.com").await.is_err());
        assert!(
            begin(&t, owner, "alice@example.com").await.is_err(),
            "without its cookie the owner shares the empty budget"
        );
        let known = t.attempt(owner, " Alice@Example.com", Some(&cookie));
        assert!(known.from_known_device());
        t.begin(&known).await.unwrap();
        // The device's budget is its own, and as small as the account's.
        t.begin(&known).await.unwrap();
        assert!(t.begin(&known).await.is_err());
        // The cookie is worth nothing for another account.
        assert!(
            !t.attempt(owner, "bob@example.com", Some(&cookie))
                .from_known_device()
        );
        assert!(
            !t.attempt(owner, "alice@example.com", Some("forged"))
                .from_known_device()
        );
    }

    #[tokio::test]
    async fn buckets_refill_so_no_lockout_is_permanent() {
        let t = LoginThrottle::new(
            ThrottleSettings {
                per_ip: rule(100, 6000),
                per_account: rule(1, 6000),
                ..ThrottleSettings::default()
            },
            Arc::new(LocalBuckets::new(10)),
            device_key(),
        );
        begin(&t, IP, "a@example.com").await.unwrap();
        assert!(begin(&t, IP, "a@example.com").await.is_err());
        tokio::time::sleep(Duration::from_millis(15)).await;
        assert!(begin(&t, IP, "a@example.com").await.is_ok());
    }

    #[tokio::test]
    async fn tracked_keys_stay_bounded() {
        let buckets = Arc::new(LocalBuckets::new(10));
        let big = LoginThrottle::new(
            ThrottleSettings::default(),
            Arc::clone(&buckets) as _,
            device_key(),
        );
        for i in 0..50u8 {
            let ip = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, i));
            let _ = begin(&big, ip, &format!("u{i}@example.com")).await;
        }
        assert!(buckets.tracked() <= 11, "{}", buckets.tracked());
    }

    fn v6(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[tokio::test]
    async fn the_addresses_of_one_ipv6_64_share_one_budget() {
        let t = throttle(3, 100);
        for i in 1..=3 {
            begin(
                &t,
                v6(&format!("2001:db8:1:2::{i:x}")),
                &format!("u{i}@example.com"),
            )
            .await
            .unwrap();
        }
        // A fourth address of the same /64, a fifth account: refused.
        assert!(
            begin(&t, v6("2001:db8:1:2:ffff::9"), "u5@example.com")
                .await
                .is_err()
        );
        // Another /64 has its own budget.
        assert!(
            begin(&t, v6("2001:db8:1:3::1"), "u6@example.com")
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn the_64s_of_one_ipv6_48_share_a_larger_budget() {
        let t = LoginThrottle::new(
            ThrottleSettings {
                per_ip: rule(2, 60),
                per_account: rule(100, 60),
                ipv6_prefix: 64,
                per_ipv6_site: rule(5, 60),
                ..ThrottleSettings::default()
            },
            Arc::new(LocalBuckets::new(1000)),
            device_key(),
        );
        for i in 0..5u16 {
            begin(
                &t,
                v6(&format!("2001:db8:1:{i:x}::1")),
                &format!("u{i}@example.com"),
            )
            .await
            .unwrap();
        }
        assert!(
            begin(&t, v6("2001:db8:1:ff::1"), "x@example.com")
                .await
                .is_err()
        );
        assert!(
            begin(&t, v6("2001:db8:2::1"), "y@example.com")
                .await
                .is_ok(),
            "another /48"
        );
    }

    #[test]
    fn rules_that_never_allow_an_attempt_are_refused() {
        assert!(BucketRule::new(0, 5).is_err());
        assert!(BucketRule::new(5, 0).is_err());
    }
}
