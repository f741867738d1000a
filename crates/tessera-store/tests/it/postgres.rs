//! `PostgresUserStore`: the user contract, migrations, time-outs. Each
//! test gets a fresh database on the server at 127.0.0.1:5432.

use std::sync::Arc;
use std::time::Duration;

use tessera_core::{StoreError, UserStore};
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
contract_tests!(apikeys, postgres().await);
contract_tests!(audit, postgres().await);

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
    client
        .batch_execute(&format!(
            "DROP INDEX audit_events_by_user; DROP INDEX audit_events_by_kind;
            ALTER TABLE audit_events DROP COLUMN actor_kind, DROP COLUMN actor_id,
                DROP COLUMN ip, DROP COLUMN user_agent, DROP COLUMN session;
            UPDATE tessera_schema SET version = 4;
            INSERT INTO audit_events (at, kind, user_id, detail)
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
