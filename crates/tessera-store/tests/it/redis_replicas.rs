//! `RedisStore` with `wait_replicas`: the contracts on a primary with one
//! replica, every login, logout and revocation confirmed by `WAIT`; too
//! few replicas is `Unavailable`, never a silent acknowledgement.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tessera_core::{PerUserCap, SessionStore, StoreError, Timestamp};
use tessera_store::{RedisOptions, RedisStore};
use tessera_testkit::{RedisServer, redis_cli};

use crate::contract::{contract_tests, start, user};

/// A primary and a replica in sync with it.
fn primary_and_replica() -> (RedisServer, RedisServer) {
    let primary = RedisServer::start_with(&["--repl-diskless-sync-delay", "0"]);
    let replica =
        RedisServer::start_with(&["--replicaof", "127.0.0.1", &primary.port().to_string()]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !redis_cli(replica.port(), &["INFO", "replication"]).contains("master_link_status:up") {
        assert!(Instant::now() < deadline, "the replica did not sync");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The replica reports its link up before the primary counts it for
    // `WAIT` (it must have acknowledged an offset): wait until a `WAIT`
    // on the primary sees it, or the first write of a test races that.
    while redis_cli(primary.port(), &["WAIT", "1", "200"]).trim() != "1" {
        assert!(
            Instant::now() < deadline,
            "the primary does not count the replica"
        );
    }
    (primary, replica)
}

async fn store(url: String, wait_replicas: u32) -> Result<RedisStore, StoreError> {
    RedisStore::connect(RedisOptions {
        url,
        wait_replicas,
        // WAIT gets half of it: room for a loaded CI machine.
        timeout: Duration::from_secs(4),
        prefix: format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..6]),
        ..RedisOptions::default()
    })
    .await
}

/// Every write goes through the `EVALSHA` + `WAIT` pipeline here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_waiting_for_a_replica_meets_the_contracts() {
    let (primary, replica) = primary_and_replica();
    let make = || {
        let url = primary.url();
        async move { Arc::new(store(url, 1).await.expect("connect")) }
    };
    contract_tests!(sessions, in_sequence: make().await);
    contract_tests!(tokens, in_sequence: make().await);
    // What was acknowledged is on the replica.
    let keys: u64 = redis_cli(replica.port(), &["DBSIZE"])
        .trim()
        .parse()
        .unwrap();
    assert!(keys > 0, "nothing reached the replica");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_login_and_logout_are_on_the_replica() {
    let (primary, replica) = primary_and_replica();
    let store = store(primary.url(), 1).await.unwrap();
    let u = user("acked@example.com");
    let session = start(&u, Timestamp::now());
    SessionStore::create(&store, &session, PerUserCap::UNBOUNDED)
        .await
        .unwrap();
    // Counted by the server: the keys end in raw hash bytes, which
    // `redis-cli KEYS` would print as they are (a newline among them split
    // one key into two lines).
    let on_replica = || -> usize {
        redis_cli(
            replica.port(),
            &[
                "EVAL",
                "return #redis.call('KEYS', ARGV[1])",
                "0",
                &format!("{}:*:s:*", store.prefix()),
            ],
        )
        .trim()
        .parse()
        .unwrap()
    };
    // No waiting here: the acknowledgement came after the replica had it.
    assert_eq!(on_replica(), 1, "the login is not on the replica");
    assert!(store.delete(&session.id_hash).await.unwrap());
    assert_eq!(on_replica(), 0, "the logout is not on the replica");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_few_replicas_fail_the_write_within_the_timeout() {
    let (primary, _replica) = primary_and_replica();
    let store = store(primary.url(), 2).await.unwrap();
    let u = user("unacked@example.com");
    let started = Instant::now();
    let err = SessionStore::create(&store, &start(&u, Timestamp::now()), PerUserCap::UNBOUNDED)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(err.to_string().contains("1 of 2 replicas"), "{err}");
    // Each WAIT is given half of the 4 s command timeout: refused in
    // bounded time, never hanging on the missing replica.
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_secs(2) && elapsed < Duration::from_secs(8),
        "{elapsed:?}"
    );
    // Reads do not wait.
    let plain = Arc::new(store);
    assert!(SessionStore::ping(plain.as_ref()).await.is_ok());
}

/// In a cluster, `WAIT` must reach the primary that took the write (the
/// script's slot), not any node: with one shard's replica frozen, exactly
/// the writes that land on that shard are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_cluster_wait_asks_the_primary_that_took_the_write() {
    let cluster = tessera_testkit::RedisCluster::start_with_replicas();
    let store = store(cluster.url(), 1).await.unwrap();
    let frozen = cluster.ports()[0];
    let keys_on_frozen = || -> u64 { redis_cli(frozen, &["DBSIZE"]).trim().parse().unwrap() };
    // Every replica up: a write anywhere is acknowledged.
    for i in 0..6 {
        let u = user(&format!("all-up-{i}@example.com"));
        SessionStore::create(&store, &start(&u, Timestamp::now()), PerUserCap::UNBOUNDED)
            .await
            .unwrap();
    }
    cluster.pause(cluster.replica_of(frozen));
    let (mut acked, mut refused) = (0, 0);
    for i in 0..60 {
        if acked >= 2 && refused >= 2 {
            break;
        }
        let u = user(&format!("one-frozen-{i}@example.com"));
        let before = keys_on_frozen();
        let result =
            SessionStore::create(&store, &start(&u, Timestamp::now()), PerUserCap::UNBOUNDED).await;
        let landed_on_frozen = keys_on_frozen() > before;
        match result {
            Ok(_) => {
                assert!(!landed_on_frozen, "acknowledged without its replica");
                acked += 1;
            }
            Err(StoreError::Unavailable(message)) => {
                assert!(
                    landed_on_frozen,
                    "refused although its shard's replica is up: {message}"
                );
                refused += 1;
            }
            Err(other) => panic!("{other:?}"),
        }
    }
    cluster.resume(cluster.replica_of(frozen));
    assert!(
        acked >= 2 && refused >= 2,
        "acked {acked}, refused {refused}"
    );
}
