//! `RedisStore` over TLS: `redis-server --tls-port` with a CA the test
//! makes. The contracts once over TLS (one server, checks in sequence);
//! an untrusted CA, a wrong server name and a missing client certificate
//! are refused with an error that says so. Sentinels over TLS
//! (`rediss-sentinel://`): the primary found and followed through a
//! failover, every hop in TLS.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tessera_core::{PerUserCap, SessionStore, StoreError, Timestamp};
use tessera_store::{RedisOptions, RedisStore, RedisTls};
use tessera_testkit::{RedisSentinels, RedisServer, ServerTls, TestCa};

use crate::contract::{contract_tests, start, user};

fn ca_pem(ca: &TestCa) -> Vec<u8> {
    std::fs::read(ca.cert()).unwrap()
}

/// Trusts `ca` and presents a client certificate it issued.
fn mutual_tls(ca: &TestCa) -> RedisTls {
    let client = ca.leaf(&["tessera"]);
    RedisTls::new()
        .with_ca_pem(&ca_pem(ca))
        .unwrap()
        .with_client_pem(
            &std::fs::read(&client.cert).unwrap(),
            &std::fs::read(&client.key).unwrap(),
        )
        .unwrap()
}

/// A TLS server whose certificate names `names`.
fn server(ca: &TestCa, names: &[&str], require_client_cert: bool) -> RedisServer {
    RedisServer::start_tls(ServerTls {
        server: ca.leaf(names),
        ca: ca.cert(),
        require_client_cert,
    })
}

async fn connect(url: String, tls: RedisTls) -> Result<RedisStore, StoreError> {
    RedisStore::connect(RedisOptions {
        url,
        tls: Some(tls),
        prefix: format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..6]),
        timeout: Duration::from_millis(1000),
        ..RedisOptions::default()
    })
    .await
}

/// The same contracts, every command over TLS (and mTLS: the server
/// requires a client certificate).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_store_meets_the_contracts() {
    let ca = TestCa::new("tessera test CA");
    let server = server(&ca, &["localhost", "127.0.0.1"], true);
    let tls = mutual_tls(&ca);
    let make = || {
        let (url, tls) = (server.url(), tls.clone());
        async move { Arc::new(connect(url, tls).await.expect("TLS connect")) }
    };
    assert!(server.url().starts_with("rediss://"));
    contract_tests!(sessions, in_sequence: make().await);
    contract_tests!(tokens, in_sequence: make().await);
    // Something really went over that server.
    let keys: u64 = server.cli(&["DBSIZE"]).trim().parse().unwrap();
    assert!(keys > 0, "no keys on the TLS server");
}

/// `rediss-sentinel://`: three sentinels, a primary and two replicas that
/// speak TLS only (client certificates required, replication and the
/// sentinels' own links in TLS too). The store finds the primary through
/// the sentinels, meets the session contracts, and after the primary's
/// SIGKILL follows the promotion by itself, still over TLS; what was
/// acknowledged before (`redis_wait_replicas = 1`) is on the new primary,
/// and writes are confirmed again once the other replica follows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_sentinel_set_is_followed_through_a_failover() {
    let ca = TestCa::new("tessera test CA");
    let server_tls = ServerTls {
        server: ca.leaf(&["localhost", "127.0.0.1"]),
        ca: ca.cert(),
        require_client_cert: true,
    };
    let mut set = tokio::task::spawn_blocking(move || {
        RedisSentinels::start_tls(2, Duration::from_millis(1000), server_tls)
    })
    .await
    .unwrap();
    assert!(set.url().starts_with("rediss-sentinel://"), "{}", set.url());
    let tls = mutual_tls(&ca);
    let options = |url: String| RedisOptions {
        url,
        tls: Some(tls.clone()),
        wait_replicas: 1,
        prefix: format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..6]),
        timeout: Duration::from_secs(2),
        ..RedisOptions::default()
    };
    let make = || {
        let options = options(set.url());
        async move { Arc::new(RedisStore::connect(options).await.expect("connect")) }
    };
    contract_tests!(sessions, in_sequence: make().await);

    let store = RedisStore::connect(options(set.url())).await.unwrap();
    let alice = user("alice@example.com");
    let before = start(&alice, Timestamp::now());
    store
        .create(&before, PerUserCap::UNBOUNDED)
        .await
        .expect("a login acknowledged by the replica");
    let old = set.kill_primary();
    let set = Arc::new(set);
    let promoted = tokio::task::spawn_blocking({
        let set = Arc::clone(&set);
        move || set.wait_for_failover(old, Duration::from_secs(30))
    })
    .await
    .unwrap();
    let (new, _) = promoted.expect("the sentinels promoted the replica");
    assert_ne!(new, old);
    // The same store, without reconnecting by hand: it learns the new
    // primary from the sentinels and talks TLS to it.
    let deadline = Instant::now() + Duration::from_secs(30);
    let after = start(&alice, Timestamp::now());
    loop {
        match store.create(&after, PerUserCap::UNBOUNDED).await {
            Ok(_) => break,
            Err(e) => assert!(Instant::now() < deadline, "no write after failover: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for session in [&before, &after] {
        let loaded = store
            .load(&session.id_hash, Timestamp::now())
            .await
            .unwrap();
        assert_eq!(
            loaded.map(|s| s.user_id),
            Some(alice.id),
            "lost across the failover"
        );
    }
}

#[tokio::test]
async fn the_test_ca_is_trusted_when_given_and_other_cas_are_refused() {
    let ca = TestCa::new("tessera test CA");
    let server = server(&ca, &["127.0.0.1"], false);
    let store = connect(
        server.url(),
        RedisTls::new().with_ca_pem(&ca_pem(&ca)).unwrap(),
    )
    .await
    .expect("the server's own CA");
    tessera_core::SessionStore::ping(&store).await.unwrap();

    let other = TestCa::new("someone else's CA");
    for (what, tls) in [
        (
            "another CA",
            RedisTls::new().with_ca_pem(&ca_pem(&other)).unwrap(),
        ),
        ("Mozilla's roots", RedisTls::new()),
    ] {
        let err = connect(server.url(), tls).await.unwrap_err().to_string();
        assert!(
            err.contains("UnknownIssuer") || err.contains("unknown issuer"),
            "{what}: {err}"
        );
    }
}

#[tokio::test]
async fn a_certificate_for_another_name_is_refused_unless_that_name_is_expected() {
    let ca = TestCa::new("tessera test CA");
    let server = server(&ca, &["redis.internal"], false);
    let trusted = || RedisTls::new().with_ca_pem(&ca_pem(&ca)).unwrap();
    let err = connect(server.url(), trusted())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("NotValidForName") || err.contains("not valid for name"),
        "{err}"
    );
    let store = connect(
        server.url(),
        trusted().with_server_name("redis.internal").unwrap(),
    )
    .await
    .expect("the name the certificate carries");
    tessera_core::SessionStore::ping(&store).await.unwrap();
}

#[tokio::test]
async fn a_server_that_requires_a_client_certificate_refuses_a_client_without_one() {
    let ca = TestCa::new("tessera test CA");
    let server = server(&ca, &["127.0.0.1"], true);
    let trusted = || RedisTls::new().with_ca_pem(&ca_pem(&ca)).unwrap();
    let err = connect(server.url(), trusted())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.to_lowercase().contains("certificate"),
        "no word of a certificate: {err}"
    );
    let client = ca.leaf(&["tessera"]);
    let store = connect(
        server.url(),
        trusted()
            .with_client_pem(
                &std::fs::read(&client.cert).unwrap(),
                &std::fs::read(&client.key).unwrap(),
            )
            .unwrap(),
    )
    .await
    .expect("with a client certificate");
    tessera_core::SessionStore::ping(&store).await.unwrap();
}

#[test]
fn pem_files_without_what_they_should_hold_are_refused() {
    let ca = TestCa::new("tessera test CA");
    let issued = ca.leaf(&["tessera"]);
    let key = std::fs::read(&issued.key).unwrap();
    let cert = std::fs::read(&issued.cert).unwrap();
    assert!(RedisTls::new().with_ca_pem(&key).is_err(), "a key as CA");
    assert!(RedisTls::new().with_ca_pem(b"").is_err());
    assert!(
        RedisTls::new().with_client_pem(&cert, &cert).is_err(),
        "no key"
    );
    assert!(
        RedisTls::new().with_client_pem(&key, &key).is_err(),
        "no cert"
    );
    assert!(RedisTls::new().with_server_name("not a name!").is_err());
    let debug = format!(
        "{:?}",
        RedisTls::new().with_client_pem(&cert, &key).unwrap()
    );
    assert!(!debug.contains("PRIVATE"), "{debug}");
}
