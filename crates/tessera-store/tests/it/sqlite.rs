//! `SqliteStore`: every contract, without and with the read cache; the
//! cache across processes; durability.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tessera_core::{
    PerUserCap, Role, Session, SessionMeta, SessionStore, Timestamp, User, UserStore,
};
use tessera_store::{SqliteOptions, SqliteStore};

use crate::contract::{contract_tests, object, policy, start, user};

fn sqlite(session_cache: usize) -> (Arc<SqliteStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteOptions {
        session_cache,
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open(dir.path().join("tessera.db"), options).unwrap();
    (Arc::new(store), dir)
}

contract_tests!(sessions, sqlite(0));
contract_tests!(tokens, sqlite(0));
contract_tests!(users, sqlite(0));
contract_tests!(apikeys, sqlite(0));
contract_tests!(audit, sqlite(0));
contract_tests!(tickets, sqlite(0));
contract_tests!(outbox, sqlite(0));

/// The contracts again, with the read cache on.
mod with_cache {
    use super::*;
    contract_tests!(sessions, sqlite(1000));
    contract_tests!(tokens, sqlite(1000));
    contract_tests!(users, sqlite(1000));
    contract_tests!(audit, sqlite(1000));
}

/// The SQLite read cache stays correct when other processes write.
mod cache {
    use super::*;

    fn open(path: &std::path::Path, session_cache: usize, max_age: Duration) -> SqliteStore {
        let options = SqliteOptions {
            session_cache,
            session_cache_max_age: max_age,
            ..SqliteOptions::default()
        };
        SqliteStore::open(path, options).unwrap()
    }

    async fn cached_session(server: &SqliteStore) -> (User, Session) {
        let now = Timestamp::now();
        let u = user("alice@example.com");
        let s = start(&u, now);
        SessionStore::create(server, &s, PerUserCap::UNBOUNDED)
            .await
            .unwrap();
        assert!(server.load(&s.id_hash, now).await.unwrap().is_some());
        assert_eq!(server.cached_sessions(), 1, "the read was cached");
        assert!(server.load(&s.id_hash, now).await.unwrap().is_some());
        (u, s)
    }

    #[tokio::test]
    async fn a_logout_by_another_process_is_seen_on_the_next_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tessera.db");
        let server = open(&path, 100, Duration::from_secs(60));
        let cli = open(&path, 0, Duration::from_secs(60));
        let (u, s) = cached_session(&server).await;
        assert_eq!(cli.delete_all_for_user(u.id).await.unwrap(), 1);
        assert!(
            server
                .load(&s.id_hash, Timestamp::now())
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn a_role_change_by_another_process_is_seen_on_the_next_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tessera.db");
        let server = open(&path, 100, Duration::from_secs(60));
        let cli = open(&path, 0, Duration::from_secs(60));
        let (u, s) = cached_session(&server).await;
        let roles = vec![Role::parse("auditor").unwrap()];
        let copy = tessera_core::UserCopy {
            roles: roles.clone(),
            email_verified: !s.email_verified,
            ..s.user_copy()
        };
        cli.update_user_copy(u.id, &copy).await.unwrap();
        let loaded = server
            .load(&s.id_hash, Timestamp::now())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(loaded.roles, roles);
        assert_eq!(loaded.user_copy(), copy);
        assert!(loaded.rotate);
    }

    #[tokio::test]
    async fn two_caching_stores_see_each_others_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tessera.db");
        let a = open(&path, 100, Duration::from_secs(60));
        let b = open(&path, 100, Duration::from_secs(60));
        let (_, s) = cached_session(&a).await;
        let now = Timestamp::now();
        assert!(b.load(&s.id_hash, now).await.unwrap().is_some());
        // a writes (keeping its own cache), then b deletes: a must notice.
        a.merge_data(&s.id_hash, &object(json!({"k": 1})), 1024)
            .await
            .unwrap();
        assert!(b.delete(&s.id_hash).await.unwrap());
        assert!(a.load(&s.id_hash, now).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn own_writes_are_visible_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let server = open(&dir.path().join("tessera.db"), 100, Duration::from_secs(60));
        let (_, s) = cached_session(&server).await;
        let now = Timestamp::now();
        server
            .merge_data(&s.id_hash, &object(json!({"theme": "dark"})), 1024)
            .await
            .unwrap();
        let loaded = server.load(&s.id_hash, now).await.unwrap().unwrap();
        assert_eq!(Value::Object(loaded.data.clone()), json!({"theme": "dark"}));
        let later = now.plus(Duration::from_secs(100));
        server
            .touch(&s.id_hash, later, later.plus(Duration::from_secs(600)))
            .await
            .unwrap();
        assert_eq!(
            server
                .load(&s.id_hash, now)
                .await
                .unwrap()
                .unwrap()
                .last_seen,
            later
        );
        server.delete(&s.id_hash).await.unwrap();
        assert!(server.load(&s.id_hash, now).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn writes_that_bypass_tessera_are_seen_after_the_max_age() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tessera.db");
        let server = open(&path, 100, Duration::from_millis(200));
        let (_, s) = cached_session(&server).await;
        let raw = rusqlite::Connection::open(&path).unwrap();
        raw.execute("DELETE FROM sessions", []).unwrap();
        assert!(
            server
                .load(&s.id_hash, Timestamp::now())
                .await
                .unwrap()
                .is_some(),
            "still cached"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(
            server
                .load(&s.id_hash, Timestamp::now())
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn the_cache_stays_within_its_capacity() {
        let dir = tempfile::tempdir().unwrap();
        let server = open(&dir.path().join("tessera.db"), 3, Duration::from_secs(60));
        let u = user("alice@example.com");
        let now = Timestamp::now();
        for _ in 0..10 {
            let s = start(&u, now);
            SessionStore::create(&server, &s, PerUserCap::UNBOUNDED)
                .await
                .unwrap();
            assert!(server.load(&s.id_hash, now).await.unwrap().is_some());
        }
        assert_eq!(server.cached_sessions(), 3);
    }
}

/// Properties only a durable backend has.
mod durability {
    use super::*;
    use tessera_core::{
        PerUserCap, Revocation, SealedRevocation, SessionHandle, TokenStore, UserId,
    };

    #[tokio::test]
    async fn sessions_and_users_survive_reopening_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tessera.db");
        let now = Timestamp::now();
        let u = user("alice@example.com");
        let s = start(&u, now);
        {
            let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
            UserStore::create(&store, &u).await.unwrap();
            SessionStore::create(&store, &s, PerUserCap::UNBOUNDED)
                .await
                .unwrap();
        }
        let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
        assert_eq!(store.by_id(u.id).await.unwrap(), Some(u));
        assert_eq!(
            store.load(&s.id_hash, now).await.unwrap().as_deref(),
            Some(&s)
        );
    }

    #[tokio::test]
    async fn the_database_files_never_contain_the_session_secret() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            SqliteStore::open(dir.path().join("tessera.db"), SqliteOptions::default()).unwrap();
        let u = user("alice@example.com");
        let (secret, session) = policy().start(&u, SessionMeta::default(), Timestamp::now());
        SessionStore::create(&store, &session, PerUserCap::UNBOUNDED)
            .await
            .unwrap();
        let encoded = secret.expose();
        let hash = session.id_hash;
        let mut seen_hash = false;
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            assert!(
                !contains(&bytes, encoded.as_bytes()),
                "encoded secret found on disk"
            );
            seen_hash |= contains(&bytes, hash.as_bytes());
        }
        assert!(
            seen_hash,
            "the hash should be on disk, proving the scan reads the data"
        );
    }

    #[tokio::test]
    async fn a_newer_schema_is_refused_rather_than_misread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tessera.db");
        drop(SqliteStore::open(&path, SqliteOptions::default()).unwrap());
        let conn = rusqlite_conn(&path);
        conn.pragma_update(None, "user_version", 999).unwrap();
        drop(conn);
        let err = SqliteStore::open(&path, SqliteOptions::default()).unwrap_err();
        assert!(err.to_string().contains("newer"), "{err}");
    }

    #[tokio::test]
    async fn a_database_from_before_rotation_aliases_is_migrated_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tessera.db");
        let now = Timestamp::now();
        let u = user("alice@example.com");
        let (id, s) = crate::contract::start_with_id(&u, now);
        {
            let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
            SessionStore::create(&store, &s, PerUserCap::UNBOUNDED)
                .await
                .unwrap();
        }
        // Back to schema 2, as a release before the aliases left it.
        roll_back(&path, 2);
        let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
        let version: i64 = rusqlite_conn(&path)
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, DOWN.last().unwrap().0);
        assert!(store.load(&s.id_hash, now).await.unwrap().is_some());
        let (_, next) = policy().successor(&s, &id, &crate::contract::rotation_key(), now);
        let grace_until = now.plus(Duration::from_secs(60));
        assert!(store.rotate(&s.id_hash, &next, grace_until).await.unwrap());
        let through_old = store.load(&s.id_hash, now).await.unwrap().unwrap();
        assert_eq!(through_old.id_hash, next.id_hash);
    }

    /// What undoes each migration (by the version it brought the schema to),
    /// for tests that open a database an older release left behind. A new
    /// migration adds its line.
    const DOWN: &[(i64, &str)] = &[
        (3, "DROP TABLE session_aliases;"),
        (
            4,
            "DROP INDEX revocations_sealed_by_user;
            ALTER TABLE revocations DROP COLUMN user_id;",
        ),
        (5, "ALTER TABLE users DROP COLUMN email_verified;"),
        // 6 re-normalised stored addresses: nothing to undo.
        (7, "DROP TABLE mail_outbox;"),
        (
            8,
            "DROP TABLE audit_log;
            CREATE TABLE audit_events (
                at      INTEGER NOT NULL,
                kind    TEXT NOT NULL,
                user_id TEXT,
                detail  TEXT NOT NULL
            );
            CREATE INDEX audit_events_by_time ON audit_events (at);",
        ),
        (9, "DROP TABLE api_keys;"),
        (10, "DROP TABLE tickets;"),
        (11, "ALTER TABLE sessions DROP COLUMN email_verified;"),
        (12, "ALTER TABLE audit_log DROP COLUMN request_id;"),
    ];

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_stores_on_one_file_never_claim_the_same_message() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tessera.db");
        let a = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
        let b = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
        crate::contract::outbox::two_stores_never_claim_the_same_message(Arc::new(a), Arc::new(b))
            .await;
    }

    #[tokio::test]
    async fn a_corrupt_outbox_row_is_given_up_and_blocks_no_other_mail() {
        use tessera_core::{ClaimToken, MessageState, Outbox};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tessera.db");
        let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
        let now = Timestamp::now();
        let mail = crate::contract::outbox::reset_mail("a@example.com", "x");
        store.enqueue(&mail, now).await.unwrap();
        store.enqueue(&mail, now).await.unwrap();
        rusqlite_conn(&path)
            .execute(
                "UPDATE mail_outbox SET body = '{\"kind\":\"nope\"}' WHERE id = 1",
                [],
            )
            .unwrap();
        let claimed = store
            .claim(now, Duration::from_secs(60), 10, ClaimToken::random())
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1);
        assert_eq!(claimed[0].mail, mail);
        let corrupt = store
            .record(tessera_core::MessageId(1))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(corrupt.state, MessageState::Undeliverable);
        assert_eq!(store.stats().await.unwrap().undeliverable, 1);
    }

    /// Takes the database at `path` back to schema `version`, newest first.
    fn roll_back(path: &std::path::Path, version: i64) {
        let conn = rusqlite_conn(path);
        for (to, sql) in DOWN.iter().rev().filter(|(to, _)| *to > version) {
            conn.execute_batch(sql)
                .unwrap_or_else(|e| panic!("undoing migration {to}: {e}"));
        }
        conn.pragma_update(None, "user_version", version).unwrap();
    }

    #[tokio::test]
    async fn addresses_stored_by_the_old_rules_are_renormalised_and_collisions_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tessera.db");
        drop(SqliteStore::open(&path, SqliteOptions::default()).unwrap());
        // Schema 5 (migration 6 changes rows, not tables), written as the
        // old rules left it: one row per spelling.
        roll_back(&path, 5);
        let conn = rusqlite_conn(&path);
        let mut ids = Vec::new();
        for (n, email) in crate::contract::OLD_SPELLINGS.iter().enumerate() {
            let id = UserId::generate();
            conn.execute(
                "INSERT INTO users (id, email, roles, disabled, password_hash, created_at, \
                 email_verified) VALUES (?1, ?2, 'member', 0, '$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA', ?3, 1)",
                rusqlite::params![id.to_string(), email, 1_700_000_000_000_i64 + n as i64],
            )
            .unwrap();
            ids.push(id);
        }
        drop(conn);
        let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
        let version: i64 = rusqlite_conn(&path)
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, DOWN.last().unwrap().0);
        crate::contract::check_renormalised(&store, &ids).await;
        // Opening again changes nothing.
        drop(store);
        let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
        crate::contract::check_renormalised(&store, &ids).await;
    }

    #[tokio::test]
    async fn audit_events_from_before_the_audit_log_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tessera.db");
        drop(SqliteStore::open(&path, SqliteOptions::default()).unwrap());
        let user = UserId::generate();
        roll_back(&path, 7);
        let conn = rusqlite_conn(&path);
        conn.execute_batch(&format!(
            "INSERT INTO audit_events (at, kind, user_id, detail)
                VALUES (1000, 'refresh_token_reused', '{user}', 'family revoked');
            INSERT INTO audit_events (at, kind, user_id, detail)
                VALUES (2000, 'refresh_token_reused', NULL, 'again');"
        ))
        .unwrap();
        drop(conn);
        let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
        let page = store
            .audit_events(&tessera_core::AuditQuery::latest(10))
            .await
            .unwrap();
        let events: Vec<_> = page.events.iter().map(|r| &r.event).collect();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].detail, "again");
        assert_eq!(events[1].subject, Some(user));
        assert_eq!(events[1].actor, tessera_core::Actor::System);
        assert_eq!(events[1].kind, tessera_core::AuditKind::RefreshTokenReused);
        assert!(page.events[0].id > page.events[1].id);
    }

    #[tokio::test]
    async fn users_from_before_email_verification_count_as_verified() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tessera.db");
        let u = user("alice@example.com");
        {
            let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
            UserStore::create(&store, &u).await.unwrap();
        }
        roll_back(&path, 4);
        let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
        let loaded = store.by_id(u.id).await.unwrap().unwrap();
        assert!(
            loaded.email_verified,
            "an operator created it: the address counts as verified"
        );
        let later = user("bob@example.com");
        UserStore::create(&store, &later).await.unwrap();
        assert!(!store.by_id(later.id).await.unwrap().unwrap().email_verified);
    }

    #[tokio::test]
    async fn sessions_from_before_they_carried_email_verified_take_their_users_flag() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tessera.db");
        let now = Timestamp::now();
        let mut verified = user("alice@example.com");
        verified.email_verified = true;
        let unverified = user("bob@example.com");
        // Users kept elsewhere (PostgreSQL): no row here to read.
        let elsewhere = user("carol@example.com");
        let sessions: Vec<_> = [&verified, &unverified, &elsewhere]
            .into_iter()
            .map(|u| crate::contract::start(u, now))
            .collect();
        {
            let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
            for u in [&verified, &unverified] {
                UserStore::create(&store, u).await.unwrap();
            }
            for s in &sessions {
                SessionStore::create(&store, s, PerUserCap::UNBOUNDED)
                    .await
                    .unwrap();
            }
        }
        roll_back(&path, 10);
        let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
        let flags: Vec<bool> = loaded_flags(&store, &sessions, now).await;
        assert_eq!(flags, [true, false, true]);
    }

    async fn loaded_flags(
        store: &SqliteStore,
        sessions: &[tessera_core::Session],
        now: Timestamp,
    ) -> Vec<bool> {
        let mut flags = Vec::new();
        for s in sessions {
            let loaded = store.load(&s.id_hash, now).await.unwrap().unwrap();
            flags.push(loaded.email_verified);
        }
        flags
    }

    #[tokio::test]
    async fn a_database_from_before_sealed_caps_keeps_its_revocations() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tessera.db");
        let now = Timestamp::now();
        let hour = Duration::from_secs(3600);
        let cutoff = Revocation::UserBefore {
            user: UserId::generate(),
            before: now,
            until: now.plus(hour),
        };
        {
            let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
            store.save_revocation(&cutoff).await.unwrap();
        }
        roll_back(&path, 3);
        let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
        assert_eq!(
            store.load_revocations(now, None).await.unwrap(),
            vec![cutoff.clone()]
        );
        let ended = SealedRevocation {
            user: UserId::generate(),
            handle: SessionHandle::generate(),
            login: now,
            until: now.plus(hour),
        };
        let one = PerUserCap::new(1).unwrap();
        store
            .save_sealed_revocation(&ended, one, hour)
            .await
            .unwrap();
        let newer = SealedRevocation {
            handle: SessionHandle::generate(),
            login: now.plus(Duration::from_secs(1)),
            ..ended.clone()
        };
        let collapsed = store
            .save_sealed_revocation(&newer, one, hour)
            .await
            .unwrap()
            .expect("past the cap of one");
        // The collapsed cutoff is on disk: a restarted server loads it.
        drop(store);
        let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
        let mut loaded = store.load_revocations(now, None).await.unwrap();
        loaded.sort_by_key(|r| format!("{r:?}"));
        let mut expected = vec![cutoff, collapsed, Revocation::Sealed(newer)];
        expected.sort_by_key(|r| format!("{r:?}"));
        assert_eq!(loaded, expected);
    }

    fn rusqlite_conn(path: &std::path::Path) -> rusqlite::Connection {
        rusqlite::Connection::open(path).unwrap()
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }
}
