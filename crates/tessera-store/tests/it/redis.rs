//! `RedisStore`: the session and token contracts, without and with the
//! near-cache and on a Redis Cluster; what only Redis does.
//!
//! The shared server on 127.0.0.1:6379 runs each test under its own key
//! prefix, deleted at the end; throwaway servers and the cluster come from
//! `tessera-testkit`.

use std::sync::Arc;
use std::time::Duration;

use tessera_core::{
    PerUserCap, Revocation, Role, SessionHandle, SessionMeta, SessionStore, StoreError, Timestamp,
    TokenStore,
};
use tessera_store::{RedisOptions, RedisStore};

use crate::contract::{contract_tests, policy, start, user};

/// Deletes a test's keys when it ends.
pub(crate) struct Prefix {
    prefix: String,
    port: u16,
}

impl Prefix {
    fn new(port: u16) -> Self {
        Self {
            // As long as the default prefix `tessera`, so that memory
            // figures measured under it hold for the default.
            prefix: format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..6]),
            port,
        }
    }
}

impl Drop for Prefix {
    fn drop(&mut self) {
        tessera_testkit::redis_cli(
            self.port,
            &[
                "EVAL",
                "for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', k) end",
                "0",
                &format!("{}:*", self.prefix),
            ],
        );
    }
}

pub(crate) async fn redis_at(url: String, port: u16) -> (Arc<RedisStore>, Prefix) {
    let guard = Prefix::new(port);
    let options = RedisOptions {
        url,
        prefix: guard.prefix.clone(),
        ..RedisOptions::default()
    };
    let store = RedisStore::connect(options)
        .await
        .expect("Redis on 127.0.0.1:6379 (see scripts/test)");
    (Arc::new(store), guard)
}

async fn redis() -> (Arc<RedisStore>, Prefix) {
    redis_at("redis://127.0.0.1:6379".into(), 6379).await
}

fn near_options(prefix: &str) -> RedisOptions {
    RedisOptions {
        prefix: prefix.to_owned(),
        near_cache: 1000,
        ..RedisOptions::default()
    }
}

/// A Redis store with a near-cache.
async fn redis_near() -> (Arc<RedisStore>, Prefix) {
    let guard = Prefix::new(6379);
    let store = RedisStore::connect(near_options(&guard.prefix))
        .await
        .expect("Redis on 127.0.0.1:6379 (see scripts/test)");
    (Arc::new(store), guard)
}

contract_tests!(sessions, redis().await);
contract_tests!(tokens, redis().await);

#[tokio::test]
async fn a_handle_too_long_to_store_names_no_session() {
    let (store, _guard) = redis().await;
    let u = user("a@example.com");
    let long = SessionHandle::new("h".repeat(300));
    assert!(!store.delete_by_handle(u.id, &long).await.unwrap());
}

#[tokio::test]
async fn tls_options_with_a_plain_text_url_are_refused_and_no_password_is_shown() {
    let err = RedisStore::connect(RedisOptions {
        url: "redis://user:secret@127.0.0.1:6379".into(),
        tls: Some(tessera_store::RedisTls::new()),
        ..RedisOptions::default()
    })
    .await
    .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(format!("{err}").contains("rediss://"), "{err}");
    assert!(!format!("{err:?}").contains("secret"));
    let options = RedisOptions {
        url: "redis://user:secret@127.0.0.1:6379".into(),
        ..RedisOptions::default()
    };
    assert!(!format!("{options:?}").contains("secret"));
}

#[tokio::test]
async fn a_redis_that_may_evict_keys_is_refused() {
    let server = tessera_testkit::RedisServer::start();
    tessera_testkit::redis_cli(
        server.port(),
        &["CONFIG", "SET", "maxmemory-policy", "volatile-lru"],
    );
    let err = RedisStore::connect(RedisOptions {
        url: server.url(),
        ..RedisOptions::default()
    })
    .await
    .unwrap_err();
    assert!(format!("{err}").contains("noeviction"), "{err}");
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable_within_the_timeout() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let started = std::time::Instant::now();
    let err = RedisStore::connect(RedisOptions {
        url: format!("redis://127.0.0.1:{port}"),
        timeout: Duration::from_millis(300),
        ..RedisOptions::default()
    })
    .await
    .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn revocations_are_announced_to_every_watcher() {
    let (a, _guard) = redis().await;
    let b = RedisStore::connect(RedisOptions {
        prefix: a.prefix().to_owned(),
        ..RedisOptions::default()
    })
    .await
    .unwrap();
    let mut events = b.watch_revocations().await.unwrap();
    let revocation = Revocation::Token {
        jti: "announced".into(),
        until: Timestamp::now().plus(Duration::from_secs(60)),
    };
    a.save_revocation(&revocation).await.unwrap();
    let event = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .expect("announced within 5 s")
        .unwrap();
    assert_eq!(event, tessera_store::RevocationEvent::Revoked(revocation));
}

/// Rewrites every session record under `prefix` the way layout 1 kept
/// it (no verified flag in the roles section), in place, keeping its TTL.
/// Returns how many.
fn downgrade_to_layout_1(prefix: &str) -> String {
    tessera_testkit::redis_cli(
        6379,
        &[
            "EVAL",
            "local n = 0
             for _, k in ipairs(redis.call('KEYS', ARGV[1])) do
               if redis.call('TYPE', k).ok == 'string' then
                 local v = redis.call('GET', k)
                 local len = string.byte(v, 18) * 256 + string.byte(v, 19) - 1
                 redis.call('SET', k, string.char(1) .. string.sub(v, 2, 17)
                   .. string.char(math.floor(len / 256), len % 256)
                   .. string.sub(v, 20, 20) .. string.sub(v, 22), 'KEEPTTL')
                 n = n + 1
               end
             end
             return n",
            "0",
            &format!("{prefix}:*:s:*"),
        ],
    )
}

/// The layout byte of every session record under `prefix`.
fn layouts(prefix: &str) -> String {
    tessera_testkit::redis_cli(
        6379,
        &[
            "EVAL",
            "local out = {}
             for _, k in ipairs(redis.call('KEYS', ARGV[1])) do
               if redis.call('TYPE', k).ok == 'string' then
                 table.insert(out, string.byte(redis.call('GET', k), 1))
               end
             end
             return out",
            "0",
            &format!("{prefix}:*:s:*"),
        ],
    )
}

#[tokio::test]
async fn layout_1_sessions_load_as_verified_and_a_user_copy_update_rewrites_them() {
    let (store, guard) = redis().await;
    let now = Timestamp::now();
    let u = user("alice@example.com");
    let mut s = start(&u, now);
    s.data = crate::contract::object(serde_json::json!({"theme": "dark"}));
    SessionStore::create(store.as_ref(), &s, PerUserCap::UNBOUNDED)
        .await
        .unwrap();
    assert!(!s.email_verified);
    assert_eq!(layouts(&guard.prefix).trim(), "2");
    assert_eq!(downgrade_to_layout_1(&guard.prefix).trim(), "1");
    assert_eq!(layouts(&guard.prefix).trim(), "1");
    let old = store.load(&s.id_hash, now).await.unwrap().unwrap();
    let mut expected = s.clone();
    expected.email_verified = true;
    assert_eq!(*old, expected, "a layout 1 record counts as verified");
    let copy = tessera_core::UserCopy {
        email: tessera_core::Email::parse("alice.new@example.org").unwrap(),
        roles: vec![Role::parse("admin").unwrap()],
        email_verified: false,
    };
    assert_eq!(store.update_user_copy(u.id, &copy).await.unwrap(), 1);
    assert_eq!(layouts(&guard.prefix).trim(), "2", "rewritten as layout 2");
    let updated = store.load(&s.id_hash, now).await.unwrap().unwrap();
    expected.set_user_copy(&copy);
    assert_eq!(*updated, expected);
}

/// Redis memory per session (`used_memory` difference over 2,000
/// sessions, realistic browser user agent), under the default-length
/// prefix. A user's first session also pays for the user's index.
async fn bytes_per_session(sessions_per_user: usize, user_agent: &str) -> u64 {
    // A server of its own: nothing else allocates while it measures.
    let server = tessera_testkit::RedisServer::start();
    let (store, _guard) = redis_at(server.url(), server.port()).await;
    let now = Timestamp::now();
    let meta = SessionMeta {
        ip: Some("203.0.113.42".into()),
        user_agent: Some(user_agent.into()),
    };
    let before = server.used_memory();
    const N: usize = 20_000;
    for i in 0..N / sessions_per_user {
        let u = user(&format!("user{i}@example.com"));
        for _ in 0..sessions_per_user {
            let (_, s) = policy().start(&u, meta.clone(), now);
            SessionStore::create(store.as_ref(), &s, PerUserCap::UNBOUNDED)
                .await
                .unwrap();
        }
    }
    let after = server.used_memory();
    let per_session = after.saturating_sub(before) / N as u64;
    eprintln!(
        "{sessions_per_user} session(s) per user, {}-byte user agent: {per_session} bytes per session",
        user_agent.len()
    );
    per_session
}

#[tokio::test]
async fn redis_memory_per_session_stays_within_bounds() {
    // The target is 400 bytes per session, met for users with a few
    // sessions, with a short or a full browser user agent (compacted,
    // see redis/compact.rs). A user's only session also carries the
    // per-user index, an extra key, and costs more.
    const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";
    assert!(bytes_per_session(4, "curl/8.5.0").await <= 400);
    assert!(bytes_per_session(4, BROWSER).await <= 400);
    assert!(bytes_per_session(1, BROWSER).await <= 560);
}

/// The session contract and what the near-cache must get right.
mod near_cache {
    use super::*;
    contract_tests!(sessions, redis_near().await);

    async fn eventually_gone(store: &RedisStore, id: &tessera_core::SessionIdHash) -> Duration {
        let started = std::time::Instant::now();
        while store.load(id, Timestamp::now()).await.unwrap().is_some() {
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "still served from the near-cache"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        started.elapsed()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn another_nodes_logout_reaches_the_near_cache_at_once() {
        let (a, guard) = redis_near().await;
        let b = RedisStore::connect(near_options(&guard.prefix))
            .await
            .unwrap();
        let now = Timestamp::now();
        let u = user("a@example.com");
        let (s1, s2) = (start(&u, now), start(&u, now));
        for s in [&s1, &s2] {
            SessionStore::create(a.as_ref(), s, PerUserCap::UNBOUNDED)
                .await
                .unwrap();
            assert!(a.load(&s.id_hash, now).await.unwrap().is_some());
            assert!(a.load(&s.id_hash, now).await.unwrap().is_some());
        }
        assert_eq!(a.near_cached_sessions(), 2, "both reads were cached");
        assert!(b.delete(&s1.id_hash).await.unwrap());
        let took = eventually_gone(&a, &s1.id_hash).await;
        assert!(took < Duration::from_millis(100), "{took:?}");
        assert_eq!(b.delete_all_for_user(u.id).await.unwrap(), 1);
        let took = eventually_gone(&a, &s2.id_hash).await;
        assert!(took < Duration::from_millis(100), "{took:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn after_redis_restarts_the_near_cache_hears_of_changes_again() {
        let mut server = tessera_testkit::RedisServer::start_persistent();
        let options = RedisOptions {
            url: server.url(),
            near_cache: 1000,
            timeout: Duration::from_millis(300),
            ..RedisOptions::default()
        };
        let a = RedisStore::connect(options.clone()).await.unwrap();
        let b = RedisStore::connect(options).await.unwrap();
        let now = Timestamp::now();
        let s = start(&user("a@example.com"), now);
        SessionStore::create(&a, &s, PerUserCap::UNBOUNDED)
            .await
            .unwrap();
        server.restart();
        // Give the clients time to notice and reconnect.
        tokio::time::sleep(Duration::from_secs(1)).await;
        // Until both are back, loads fail or read Redis; then a caches it.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let cached = matches!(a.load(&s.id_hash, now).await, Ok(Some(_)))
                && matches!(a.load(&s.id_hash, now).await, Ok(Some(_)))
                && a.near_cached_sessions() == 1;
            if cached && b.ping().await.is_ok() {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "did not recover");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(b.delete(&s.id_hash).await.unwrap());
        let took = eventually_gone(&a, &s.id_hash).await;
        assert!(took < Duration::from_millis(100), "{took:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn another_nodes_role_change_reaches_the_near_cache() {
        let (a, guard) = redis_near().await;
        let b = RedisStore::connect(near_options(&guard.prefix))
            .await
            .unwrap();
        let now = Timestamp::now();
        let u = user("a@example.com");
        let s = start(&u, now);
        SessionStore::create(a.as_ref(), &s, PerUserCap::UNBOUNDED)
            .await
            .unwrap();
        assert!(!a.load(&s.id_hash, now).await.unwrap().unwrap().rotate);
        let admin = vec![Role::parse("admin").unwrap()];
        let copy = tessera_core::UserCopy {
            roles: admin.clone(),
            email_verified: true,
            ..s.user_copy()
        };
        assert_eq!(b.update_user_copy(u.id, &copy).await.unwrap(), 1);
        let started = std::time::Instant::now();
        loop {
            let loaded = a.load(&s.id_hash, now).await.unwrap().unwrap();
            if loaded.rotate && loaded.user_copy() == copy {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_millis(500),
                "stale roles"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

/// The same contracts on a real three-primary Redis Cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_store_meets_the_contracts() {
    let cluster = tessera_testkit::RedisCluster::start();
    let make = || {
        let url = cluster.url();
        let port = cluster.ports()[0];
        async move { redis_at(url, port).await }
    };
    // Keep each check's guard alive until the end (cleanup is by process).
    let mut guards = Vec::new();
    macro_rules! fresh {
        () => {{
            let (store, guard) = make().await;
            guards.push(guard);
            store
        }};
    }
    contract_tests!(sessions, in_sequence: fresh!());
    contract_tests!(tokens, in_sequence: fresh!());
    // Many users' records spread over all three primaries.
    let (store, _guard) = make().await;
    let now = Timestamp::now();
    for i in 0..60 {
        let u = user(&format!("spread{i}@example.com"));
        SessionStore::create(store.as_ref(), &start(&u, now), PerUserCap::UNBOUNDED)
            .await
            .unwrap();
    }
    let counts = cluster.key_counts();
    assert!(
        counts.iter().all(|&n| n > 0),
        "keys per primary: {counts:?}"
    );
}
