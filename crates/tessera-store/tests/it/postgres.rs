//! `PostgresUserStore`: the user contract, migrations, time-outs. Each
//! test gets a fresh database on the server at 127.0.0.1:5432.

use std::sync::Arc;
use std::time::Duration;

use tessera_core::{StoreError, UserId, UserStore};
use tessera_store::{PostgresOptions, PostgresUserStore};

use crate::contract::{contract_tests, user};

/// A fresh PostgreSQL database for one test, dropped afterwards.
struct PgDatabase {
    name: String,
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let _ = std::process::Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qc"])
            .arg(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .output();
    }
}

const PG_ADMIN: &str = "host=127.0.0.1 port=5432 user=postgres dbname=postgres";

async fn fresh_database() -> PgDatabase {
    let name = format!("tessera_test_{}", uuid::Uuid::new_v4().simple());
    let (client, connection) = tokio_postgres::connect(PG_ADMIN, tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL on 127.0.0.1:5432 (see scripts/test)");
    tokio::spawn(connection);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    PgDatabase { name }
}

fn database_url(db: &PgDatabase) -> String {
    format!("postgres://postgres@127.0.0.1:5432/{}", db.name)
}

async fn postgres() -> (Arc<PostgresUserStore>, PgDatabase) {
    let db = fresh_database().await;
    let store = PostgresUserStore::connect(&database_url(&db), PostgresOptions::default())
        .await
        .unwrap();
    (Arc::new(store), db)
}

contract_tests!(users, postgres().await);
contract_tests!(tickets, postgres().await);
contract_tests!(outbox, postgres().await);
contract_tests!(apikeys, postgres().await);
contract_tests!(audit, postgres().await);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_database_never_claim_the_same_message() {
    let (a, db) = postgres().await;
    let b = PostgresUserStore::connect(&database_url(&db), PostgresOptions::default())
        .await
        .unwrap();
    crate::contract::outbox::two_stores_never_claim_the_same_message(a, Arc::new(b)).await;
}

#[tokio::test]
async fn nodes_starting_together_migrate_once() {
    let db = fresh_database().await;
    let url = database_url(&db);
    let (a, b) = tokio::join!(
        PostgresUserStore::connect(&url, PostgresOptions::default()),
        PostgresUserStore::connect(&url, PostgresOptions::default()),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.migrate().await.unwrap(), 0, "already current");
    UserStore::create(&a, &user("a@example.com")).await.unwrap();
    assert_eq!(b.list().await.unwrap().len(), 1);
}

/// What undoes each migration (by the version it brought the schema to),
/// for tests that open a database an older release left behind. A new
/// migration adds its line.
const DOWN: &[(i32, &str)] = &[
    // 3 re-normalised stored addresses: nothing to undo.
    (4, "DROP TABLE mail_outbox;"),
    (
        5,
        "DROP INDEX audit_events_by_user; DROP INDEX audit_events_by_kind;
        ALTER TABLE audit_events DROP COLUMN actor_kind, DROP COLUMN actor_id,
            DROP COLUMN ip, DROP COLUMN user_agent, DROP COLUMN session;",
    ),
    (6, "DROP TABLE api_keys;"),
    (7, "DROP TABLE tickets;"),
    (8, "ALTER TABLE audit_events DROP COLUMN request_id;"),
];

/// Takes the database back to schema `version`, newest first.
async fn roll_back(client: &tokio_postgres::Client, version: i32) {
    for (to, sql) in DOWN.iter().rev().filter(|(to, _)| *to > version) {
        client
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("undoing migration {to}: {e}"));
    }
    client
        .execute("UPDATE tessera_schema SET version = $1", &[&version])
        .await
        .unwrap();
}

#[tokio::test]
async fn addresses_stored_by_the_old_rules_are_renormalised_and_collisions_kept() {
    let (store, db) = postgres().await;
    // Back to schema 2 (migration 3 changes rows, not tables), with rows
    // as the old rules stored them.
    let (client, connection) = tokio_postgres::connect(&database_url(&db), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    roll_back(&client, 2).await;
    let mut ids = Vec::new();
    for (n, email) in crate::contract::OLD_SPELLINGS.iter().enumerate() {
        let id = UserId::generate();
        client
            .execute(
                "INSERT INTO users (id, email, roles, disabled, password_hash, created_at, \
                 email_verified) VALUES ($1, $2, 'member', FALSE, \
                 '$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA', $3, TRUE)",
                &[id.as_uuid(), email, &(1_700_000_000_000_i64 + n as i64)],
            )
            .await
            .unwrap();
        ids.push(id);
    }
    assert_eq!(store.migrate().await.unwrap(), DOWN.len() + 1);
    crate::contract::check_renormalised(store.as_ref(), &ids).await;
    assert_eq!(store.migrate().await.unwrap(), 0);
    crate::contract::check_renormalised(store.as_ref(), &ids).await;
}

#[tokio::test]
async fn an_unreachable_database_is_unavailable_within_the_timeout() {
    // A port nothing listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let options = PostgresOptions {
        timeout: Duration::from_millis(500),
        ..PostgresOptions::default()
    };
    let started = std::time::Instant::now();
    let err =
        PostgresUserStore::connect(&format!("postgres://postgres@127.0.0.1:{port}/x"), options)
            .await
            .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

/// Migration 5 keeps the events of a database from before the audit log
/// had actors: written by tessera itself.
#[tokio::test]
async fn audit_events_from_before_actors_are_kept() {
    let db = fresh_database().await;
    let url = database_url(&db);
    drop(
        PostgresUserStore::connect(&url, PostgresOptions::default())
            .await
            .unwrap(),
    );
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let user = tessera_core::UserId::generate();
    // Back to schema 4, as a release before actors left it, with one event.
    roll_back(&client, 4).await;
    client
        .batch_execute(&format!(
            "INSERT INTO audit_events (at, kind, user_id, detail)
                VALUES (1000, 'refresh_token_reused', '{user}', 'family revoked');"
        ))
        .await
        .unwrap();
    let store = PostgresUserStore::connect(&url, PostgresOptions::default())
        .await
        .unwrap();
    let page = store
        .audit_events(&tessera_core::AuditQuery::latest(10))
        .await
        .unwrap();
    assert_eq!(page.events.len(), 1);
    let event = &page.events[0].event;
    assert_eq!(event.actor, tessera_core::Actor::System);
    assert_eq!(event.subject, Some(user));
    assert_eq!(event.kind, tessera_core::AuditKind::RefreshTokenReused);
    assert_eq!(event.detail, "family revoked");
}
