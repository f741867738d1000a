//! One conformance suite that every store backend runs.
//!
//! `session_store_suite!` and `user_store_suite!` expand to one test per
//! contract clause for a backend, so a failure names both.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};
use tessera_core::{
    Email, FamilyId, NewUser, PasswordHash, RefreshToken, Revocation, Role, Session, SessionHandle,
    SessionMeta, SessionPolicy, SessionStore, StoreError, Timestamp, TokenFamily, TokenStore, User,
    UserStore,
};
use tessera_store::{
    MemoryStore, PostgresOptions, PostgresUserStore, RedisOptions, RedisStore, SqliteOptions,
    SqliteStore,
};

fn user(email: &str) -> User {
    NewUser {
        email: Email::parse(email).unwrap(),
        roles: vec![Role::parse("member").unwrap()],
        password_hash: PasswordHash::from_trusted(
            "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA".into(),
        ),
    }
    .into_user(Timestamp::now())
}

fn policy() -> SessionPolicy {
    SessionPolicy::new(Duration::from_secs(600), Duration::from_secs(3600)).unwrap()
}

fn start(user: &User, now: Timestamp) -> Session {
    let meta = SessionMeta {
        ip: Some("192.0.2.7".into()),
        user_agent: Some("conformance/1.0".into()),
    };
    policy().start(user, meta, now).1
}

fn object(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap()
}

/// Checks of the `SessionStore` contract.
mod sessions {
    use super::*;

    pub async fn load_returns_what_create_stored(store: Arc<dyn SessionStore>) {
        let now = Timestamp::now();
        let s = start(&user("a@example.com"), now);
        store.create(&s).await.unwrap();
        assert_eq!(
            store.load(&s.id_hash, now).await.unwrap().as_deref(),
            Some(&s)
        );
    }

    pub async fn unknown_ids_load_as_none(store: Arc<dyn SessionStore>) {
        let now = Timestamp::now();
        let s = start(&user("a@example.com"), now);
        assert_eq!(store.load(&s.id_hash, now).await.unwrap(), None);
    }

    pub async fn expired_sessions_load_as_none_before_any_purge(store: Arc<dyn SessionStore>) {
        let now = Timestamp::now();
        let s = start(&user("a@example.com"), now);
        store.create(&s).await.unwrap();
        assert!(
            store
                .load(&s.id_hash, s.expires_at)
                .await
                .unwrap()
                .is_none()
        );
        let just_before = Timestamp::from_unix_millis(s.expires_at.unix_millis() - 1);
        assert!(store.load(&s.id_hash, just_before).await.unwrap().is_some());
    }

    pub async fn touch_moves_expiry_and_reports_missing_sessions(store: Arc<dyn SessionStore>) {
        let now = Timestamp::now();
        let s = start(&user("a@example.com"), now);
        store.create(&s).await.unwrap();
        let later = now.plus(Duration::from_secs(300));
        let expiry = later.plus(Duration::from_secs(600));
        assert!(store.touch(&s.id_hash, later, expiry).await.unwrap());
        let loaded = store
            .load(&s.id_hash, s.expires_at)
            .await
            .unwrap()
            .expect("touched session is live");
        assert_eq!((loaded.last_seen, loaded.expires_at), (later, expiry));
        store.delete(&s.id_hash).await.unwrap();
        assert!(!store.touch(&s.id_hash, later, expiry).await.unwrap());
    }

    pub async fn merge_data_follows_json_merge_patch(store: Arc<dyn SessionStore>) {
        let now = Timestamp::now();
        let s = start(&user("a@example.com"), now);
        store.create(&s).await.unwrap();
        let first = store
            .merge_data(
                &s.id_hash,
                &object(json!({"theme": "dark", "lang": "en"})),
                1024,
            )
            .await
            .unwrap();
        assert_eq!(first, Some(object(json!({"theme": "dark", "lang": "en"}))));
        store
            .merge_data(
                &s.id_hash,
                &object(json!({"lang": null, "tz": "UTC"})),
                1024,
            )
            .await
            .unwrap();
        let loaded = store.load(&s.id_hash, now).await.unwrap().unwrap();
        assert_eq!(
            Value::Object(loaded.data.clone()),
            json!({"theme": "dark", "tz": "UTC"})
        );
    }

    pub async fn merge_data_refuses_to_grow_past_the_limit(store: Arc<dyn SessionStore>) {
        let now = Timestamp::now();
        let s = start(&user("a@example.com"), now);
        store.create(&s).await.unwrap();
        store
            .merge_data(&s.id_hash, &object(json!({"a": 1})), 64)
            .await
            .unwrap();
        let big = object(json!({"b": "x".repeat(100)}));
        let err = store.merge_data(&s.id_hash, &big, 64).await.unwrap_err();
        assert!(
            matches!(err, StoreError::DataTooLarge { limit: 64 }),
            "{err:?}"
        );
        let loaded = store.load(&s.id_hash, now).await.unwrap().unwrap();
        assert_eq!(Value::Object(loaded.data.clone()), json!({"a": 1}));
    }

    pub async fn merge_data_on_a_missing_session_is_none(store: Arc<dyn SessionStore>) {
        let s = start(&user("a@example.com"), Timestamp::now());
        assert_eq!(
            store
                .merge_data(&s.id_hash, &object(json!({"a": 1})), 64)
                .await
                .unwrap(),
            None
        );
    }

    pub async fn concurrent_merges_lose_no_patch(store: Arc<dyn SessionStore>) {
        let now = Timestamp::now();
        let s = start(&user("a@example.com"), now);
        store.create(&s).await.unwrap();
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let store = Arc::clone(&store);
                let id = s.id_hash;
                tokio::spawn(async move {
                    store
                        .merge_data(&id, &object(json!({format!("k{i}"): i})), 4096)
                        .await
                        .unwrap();
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let loaded = store.load(&s.id_hash, now).await.unwrap().unwrap();
        assert_eq!(loaded.data.len(), 16, "{:?}", loaded.data);
    }

    pub async fn rotate_replaces_the_session_exactly_once(store: Arc<dyn SessionStore>) {
        let now = Timestamp::now();
        let u = user("a@example.com");
        let old = start(&u, now);
        store.create(&old).await.unwrap();
        let successors: Vec<Session> = (0..8).map(|_| policy().successor(&old, now).1).collect();
        let tasks: Vec<_> = successors
            .iter()
            .cloned()
            .map(|next| {
                let store = Arc::clone(&store);
                let old_id = old.id_hash;
                tokio::spawn(async move { store.rotate(&old_id, &next).await.unwrap() })
            })
            .collect();
        let mut wins = 0;
        for t in tasks {
            wins += usize::from(t.await.unwrap());
        }
        assert_eq!(wins, 1, "exactly one rotation of the same old id succeeds");
        assert!(store.load(&old.id_hash, now).await.unwrap().is_none());
        let live = store.list_for_user(u.id, now).await.unwrap();
        assert_eq!(live.len(), 1);
        assert_eq!(live[0].handle, old.handle);
    }

    pub async fn delete_reports_whether_the_session_existed(store: Arc<dyn SessionStore>) {
        let now = Timestamp::now();
        let s = start(&user("a@example.com"), now);
        store.create(&s).await.unwrap();
        assert!(store.delete(&s.id_hash).await.unwrap());
        assert!(!store.delete(&s.id_hash).await.unwrap());
        assert!(store.load(&s.id_hash, now).await.unwrap().is_none());
    }

    pub async fn per_user_listing_sees_only_that_users_live_sessions(store: Arc<dyn SessionStore>) {
        let now = Timestamp::now();
        let (alice, bob) = (user("alice@example.com"), user("bob@example.com"));
        let a1 = start(&alice, now);
        let a2 = start(&alice, now.plus(Duration::from_millis(5)));
        let mut expired = start(&alice, now);
        expired.expires_at = now;
        let b1 = start(&bob, now);
        for s in [&a1, &a2, &expired, &b1] {
            store.create(s).await.unwrap();
        }
        let listed: Vec<SessionHandle> = store
            .list_for_user(alice.id, now)
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.handle)
            .collect();
        assert_eq!(listed, vec![a1.handle, a2.handle]);
    }

    pub async fn delete_by_handle_only_touches_the_owners_session(store: Arc<dyn SessionStore>) {
        let now = Timestamp::now();
        let (alice, bob) = (user("alice@example.com"), user("bob@example.com"));
        let a = start(&alice, now);
        let b = start(&bob, now);
        store.create(&a).await.unwrap();
        store.create(&b).await.unwrap();
        assert!(
            !store.delete_by_handle(alice.id, &b.handle).await.unwrap(),
            "alice cannot end bob's session"
        );
        assert!(store.load(&b.id_hash, now).await.unwrap().is_some());
        assert!(store.delete_by_handle(alice.id, &a.handle).await.unwrap());
        assert!(store.load(&a.id_hash, now).await.unwrap().is_none());
    }

    pub async fn delete_all_for_user_ends_every_session_of_that_user(store: Arc<dyn SessionStore>) {
        let now = Timestamp::now();
        let (alice, bob) = (user("alice@example.com"), user("bob@example.com"));
        let mine: Vec<Session> = (0..3).map(|_| start(&alice, now)).collect();
        let theirs = start(&bob, now);
        for s in mine.iter().chain([&theirs]) {
            store.create(s).await.unwrap();
        }
        assert_eq!(store.delete_all_for_user(alice.id).await.unwrap(), 3);
        assert!(store.list_for_user(alice.id, now).await.unwrap().is_empty());
        assert!(store.load(&theirs.id_hash, now).await.unwrap().is_some());
    }

    pub async fn role_changes_reach_live_sessions_and_flag_rotation(store: Arc<dyn SessionStore>) {
        let now = Timestamp::now();
        let (alice, bob) = (user("alice@example.com"), user("bob@example.com"));
        let a = start(&alice, now);
        let b = start(&bob, now);
        store.create(&a).await.unwrap();
        store.create(&b).await.unwrap();
        let roles = vec![
            Role::parse("admin").unwrap(),
            Role::parse("member").unwrap(),
        ];
        assert_eq!(store.set_roles_for_user(alice.id, &roles).await.unwrap(), 1);
        let loaded = store.load(&a.id_hash, now).await.unwrap().unwrap();
        assert_eq!(loaded.roles, roles);
        assert!(loaded.rotate);
        let other = store.load(&b.id_hash, now).await.unwrap().unwrap();
        assert!(!other.rotate);
        assert_eq!(other.roles, b.roles);
    }

    pub async fn purge_removes_only_expired_sessions(store: Arc<dyn SessionStore>) {
        let now = Timestamp::now();
        let u = user("a@example.com");
        let live = start(&u, now);
        let mut dead = start(&u, now);
        dead.expires_at = now;
        store.create(&live).await.unwrap();
        store.create(&dead).await.unwrap();
        // Stores whose records expire by themselves (Redis TTLs) have
        // nothing left to purge; the others remove exactly the dead one.
        assert!(store.purge_expired(now).await.unwrap() <= 1);
        assert_eq!(store.purge_expired(now).await.unwrap(), 0);
        assert!(store.load(&live.id_hash, now).await.unwrap().is_some());
        // The expired one is gone for good, even to a clock that goes back.
        let earlier = Timestamp::from_unix_millis(now.unix_millis() - 1000);
        assert!(store.load(&dead.id_hash, earlier).await.unwrap().is_none());
    }

    pub async fn rotation_keeps_changes_made_since_the_session_was_read(
        store: Arc<dyn SessionStore>,
    ) {
        let now = Timestamp::now();
        let u = user("a@example.com");
        let s = start(&u, now);
        store.create(&s).await.unwrap();
        let read = store.load(&s.id_hash, now).await.unwrap().unwrap();
        let admin = vec![Role::parse("admin").unwrap()];
        store.set_roles_for_user(u.id, &admin).await.unwrap();
        store
            .merge_data(&s.id_hash, &object(json!({"theme": "dark"})), 1024)
            .await
            .unwrap();
        // The rotation was decided on the copy read before both changes.
        let later = now.plus(Duration::from_secs(1));
        let (_, successor) = policy().successor(&read, later);
        assert!(store.rotate(&s.id_hash, &successor).await.unwrap());
        let rotated = store
            .load(&successor.id_hash, later)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(rotated.roles, admin, "the role change is kept");
        assert_eq!(
            Value::Object(rotated.data.clone()),
            json!({"theme": "dark"})
        );
        assert_eq!(
            (rotated.last_seen, rotated.expires_at, rotated.rotate),
            (successor.last_seen, successor.expires_at, false)
        );
        assert_eq!(rotated.handle, s.handle);
        assert!(store.load(&s.id_hash, later).await.unwrap().is_none());
    }

    pub async fn ping_answers(store: Arc<dyn SessionStore>) {
        store.ping().await.unwrap();
    }
}

/// Checks of the `UserStore` contract.
mod users {
    use super::*;

    pub async fn audit_events_are_kept_newest_first(store: Arc<dyn UserStore>) {
        let u = user("alice@example.com");
        for (i, kind) in ["first", "second", "third"].into_iter().enumerate() {
            let event = tessera_core::AuditEvent {
                at: Timestamp::from_unix_millis(1_000 + i as i64),
                kind: kind.into(),
                user: Some(u.id),
                detail: format!("event {i}"),
            };
            store.record_audit(&event).await.unwrap();
        }
        let events = store.audit_events(2).await.unwrap();
        let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, ["third", "second"]);
        assert_eq!(events[0].user, Some(u.id));
    }

    pub async fn users_are_found_by_email_and_id(store: Arc<dyn UserStore>) {
        let u = user("Alice@Example.com");
        store.create(&u).await.unwrap();
        assert_eq!(
            store
                .by_email(&Email::parse("alice@example.com").unwrap())
                .await
                .unwrap(),
            Some(u.clone())
        );
        assert_eq!(store.by_id(u.id).await.unwrap(), Some(u));
        assert_eq!(
            store
                .by_email(&Email::parse("nobody@example.com").unwrap())
                .await
                .unwrap(),
            None
        );
    }

    pub async fn duplicate_emails_conflict(store: Arc<dyn UserStore>) {
        store.create(&user("alice@example.com")).await.unwrap();
        let err = store.create(&user("ALICE@example.com")).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict), "{err:?}");
    }

    pub async fn list_is_ordered_by_email(store: Arc<dyn UserStore>) {
        for e in ["carol@example.com", "alice@example.com", "bob@example.com"] {
            store.create(&user(e)).await.unwrap();
        }
        let emails: Vec<String> = store
            .list()
            .await
            .unwrap()
            .into_iter()
            .map(|u| u.email.to_string())
            .collect();
        assert_eq!(
            emails,
            ["alice@example.com", "bob@example.com", "carol@example.com"]
        );
    }

    pub async fn updates_change_one_field_and_report_unknown_users(store: Arc<dyn UserStore>) {
        let u = user("alice@example.com");
        store.create(&u).await.unwrap();
        let roles = vec![
            Role::parse("support").unwrap(),
            Role::parse("admin").unwrap(),
        ];
        assert!(store.set_roles(u.id, &roles).await.unwrap());
        assert!(store.set_disabled(u.id, true).await.unwrap());
        let new_hash =
            PasswordHash::from_trusted("$argon2id$v=19$m=8,t=1,p=1$bmV3c2FsdA$bmV3".into());
        assert!(store.set_password_hash(u.id, &new_hash).await.unwrap());
        let loaded = store.by_id(u.id).await.unwrap().unwrap();
        let names: Vec<&str> = loaded.roles.iter().map(Role::as_str).collect();
        assert_eq!(names, ["admin", "support"], "roles are stored sorted");
        assert!(loaded.disabled);
        assert_eq!(loaded.password_hash, new_hash);
        assert_eq!((loaded.email, loaded.created_at), (u.email, u.created_at));
        let stranger = user("stranger@example.com");
        assert!(!store.set_roles(stranger.id, &roles).await.unwrap());
        assert!(!store.set_disabled(stranger.id, true).await.unwrap());
        assert!(
            !store
                .set_password_hash(stranger.id, &new_hash)
                .await
                .unwrap()
        );
    }
}

/// Checks of the `TokenStore` contract.
mod tokens {
    use super::*;

    fn family(user: &User, now: Timestamp) -> TokenFamily {
        let id = FamilyId::generate_for(tessera_core::Route::of(user.id));
        TokenFamily {
            current_hash: RefreshToken::first(&id).hash(),
            id,
            user_id: user.id,
            email: user.email.clone(),
            roles: user.roles.clone(),
            created_at: now,
            expires_at: now.plus(Duration::from_secs(3600)),
            generation: 0,
            previous_hash: None,
            rotated_at: now,
        }
    }

    pub async fn families_load_as_stored_until_they_expire(store: Arc<dyn TokenStore>) {
        let now = Timestamp::now();
        let f = family(&user("a@example.com"), now);
        store.create_family(&f).await.unwrap();
        assert_eq!(
            store.load_family(&f.id, now).await.unwrap(),
            Some(f.clone())
        );
        assert_eq!(store.load_family(&f.id, f.expires_at).await.unwrap(), None);
        assert_eq!(
            store.load_family(&FamilyId::generate(), now).await.unwrap(),
            None
        );
    }

    pub async fn advancing_is_a_compare_and_set_on_the_generation(store: Arc<dyn TokenStore>) {
        let now = Timestamp::now();
        let f = family(&user("a@example.com"), now);
        store.create_family(&f).await.unwrap();
        let tasks: Vec<_> = (0..10u8)
            .map(|i| {
                let store = Arc::clone(&store);
                let id = f.id.clone();
                tokio::spawn(
                    async move { store.advance_family(&id, 0, [i; 32], now).await.unwrap() },
                )
            })
            .collect();
        let mut wins = 0;
        for t in tasks {
            wins += usize::from(t.await.unwrap());
        }
        assert_eq!(wins, 1, "exactly one concurrent rotation succeeds");
        let loaded = store.load_family(&f.id, now).await.unwrap().unwrap();
        assert_eq!(loaded.generation, 1);
        assert_eq!(loaded.previous_hash, Some(f.current_hash));
        assert!(!store.advance_family(&f.id, 0, [9; 32], now).await.unwrap());
    }

    pub async fn families_end_one_by_one_or_per_user(store: Arc<dyn TokenStore>) {
        let now = Timestamp::now();
        let (alice, bob) = (user("alice@example.com"), user("bob@example.com"));
        let a1 = family(&alice, now);
        let a2 = family(&alice, now);
        let b = family(&bob, now);
        for f in [&a1, &a2, &b] {
            store.create_family(f).await.unwrap();
        }
        assert!(store.delete_family(&a1.id).await.unwrap());
        assert!(!store.delete_family(&a1.id).await.unwrap());
        let ended = store.delete_families_for_user(alice.id).await.unwrap();
        assert_eq!(
            ended.iter().map(|f| f.id.clone()).collect::<Vec<_>>(),
            vec![a2.id.clone()]
        );
        assert!(store.load_family(&b.id, now).await.unwrap().is_some());
    }

    pub async fn revocations_are_kept_until_they_lapse(store: Arc<dyn TokenStore>) {
        let now = Timestamp::now();
        let u = user("a@example.com");
        let later = now.plus(Duration::from_secs(60));
        let family = Revocation::Family {
            id: FamilyId::generate(),
            until: later,
        };
        let token = Revocation::Token {
            jti: "jti-1".into(),
            until: later,
        };
        let cutoff = Revocation::UserBefore {
            user: u.id,
            before: now,
            until: later,
        };
        for r in [&family, &token, &cutoff] {
            store.save_revocation(r).await.unwrap();
        }
        // An earlier cutoff never replaces a later one.
        let earlier = Revocation::UserBefore {
            user: u.id,
            before: Timestamp::from_unix_millis(5),
            until: later,
        };
        store.save_revocation(&earlier).await.unwrap();
        let mut loaded = store.load_revocations(now, None).await.unwrap();
        loaded.sort_by_key(|r| format!("{r:?}"));
        let mut expected = vec![family, token, cutoff];
        expected.sort_by_key(|r| format!("{r:?}"));
        assert_eq!(loaded, expected);
        assert!(
            store
                .load_revocations(later, None)
                .await
                .unwrap()
                .is_empty()
        );
        let future = now.plus(Duration::from_secs(30));
        assert!(
            store
                .load_revocations(now, Some(future))
                .await
                .unwrap()
                .is_empty(),
            "nothing saved since"
        );
        assert_eq!(
            store.load_revocations(now, Some(now)).await.unwrap().len(),
            3
        );
        assert_eq!(store.purge_expired_tokens(later).await.unwrap(), 3);
    }
}

macro_rules! suite {
    ($backend:ident, $make:expr, $trait:ident, $checks:ident: $($check:ident),+ $(,)?) => {
        mod $backend {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let (store, _guard) = $make;
                    let store: Arc<dyn $trait> = store;
                    super::$checks::$check(store).await;
                }
            )+
        }
    };
}

/// The checks of each contract, handed to `$run` (a macro) with its arguments.
macro_rules! session_checks {
    ($run:ident!($($args:tt)*)) => {
        $run!($($args)* sessions:
            load_returns_what_create_stored, unknown_ids_load_as_none, expired_sessions_load_as_none_before_any_purge, touch_moves_expiry_and_reports_missing_sessions, merge_data_follows_json_merge_patch, merge_data_refuses_to_grow_past_the_limit, merge_data_on_a_missing_session_is_none, concurrent_merges_lose_no_patch, rotate_replaces_the_session_exactly_once, delete_reports_whether_the_session_existed, per_user_listing_sees_only_that_users_live_sessions, delete_by_handle_only_touches_the_owners_session, delete_all_for_user_ends_every_session_of_that_user, role_changes_reach_live_sessions_and_flag_rotation, purge_removes_only_expired_sessions, rotation_keeps_changes_made_since_the_session_was_read, ping_answers,
        );
    };
}

macro_rules! token_checks {
    ($run:ident!($($args:tt)*)) => {
        $run!($($args)* tokens:
            families_load_as_stored_until_they_expire, advancing_is_a_compare_and_set_on_the_generation, families_end_one_by_one_or_per_user, revocations_are_kept_until_they_lapse,
        );
    };
}

macro_rules! user_checks {
    ($run:ident!($($args:tt)*)) => {
        $run!($($args)* users:
            audit_events_are_kept_newest_first, users_are_found_by_email_and_id, duplicate_emails_conflict, list_is_ordered_by_email, updates_change_one_field_and_report_unknown_users,
        );
    };
}

/// Runs checks one after the other in one test (for a backend that is
/// expensive to set up, such as a Redis Cluster), naming each as it starts.
macro_rules! in_sequence {
    ($make:expr, $trait:ident, $checks:ident: $($check:ident),+ $(,)?) => {
        $(
            eprintln!("{}::{}", stringify!($checks), stringify!($check));
            let store: Arc<dyn $trait> = $make;
            $checks::$check(store).await;
        )+
    };
}

macro_rules! conformance {
    ($name:ident, $make:expr) => {
        mod $name {
            use super::*;
            session_checks!(suite!(session_store, $make, SessionStore,));
            token_checks!(suite!(token_store, $make, TokenStore,));
            user_checks!(suite!(user_store, $make, UserStore,));
        }
    };
}

fn memory() -> (Arc<MemoryStore>, ()) {
    (Arc::new(MemoryStore::new()), ())
}

fn sqlite(session_cache: usize) -> (Arc<SqliteStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteOptions {
        session_cache,
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open(dir.path().join("tessera.db"), options).unwrap();
    (Arc::new(store), dir)
}

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

mod postgres_store {
    use super::*;
    user_checks!(suite!(user_store, postgres().await, UserStore,));

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
}

conformance!(memory_store, memory());
conformance!(sqlite_store, sqlite(0));
conformance!(sqlite_cached_store, sqlite(1000));

/// The SQLite read cache stays correct when other processes write.
mod sqlite_cache {
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
        SessionStore::create(server, &s).await.unwrap();
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
        cli.set_roles_for_user(u.id, &roles).await.unwrap();
        let loaded = server
            .load(&s.id_hash, Timestamp::now())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(loaded.roles, roles);
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
            SessionStore::create(&server, &s).await.unwrap();
            assert!(server.load(&s.id_hash, now).await.unwrap().is_some());
        }
        assert_eq!(server.cached_sessions(), 3);
    }
}

/// Properties only a durable backend has.
mod sqlite_durability {
    use super::*;

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
            SessionStore::create(&store, &s).await.unwrap();
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
        SessionStore::create(&store, &session).await.unwrap();
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

    fn rusqlite_conn(path: &std::path::Path) -> rusqlite::Connection {
        rusqlite::Connection::open(path).unwrap()
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }
}

/// Redis test servers: the shared one on 127.0.0.1:6379 (each test under its
/// own key prefix, deleted at the end); throwaway servers and the cluster
/// come from `tessera-testkit`.
mod redis_servers {
    /// Deletes a test's keys when it ends.
    pub struct Prefix {
        pub prefix: String,
        port: u16,
    }

    impl Prefix {
        pub fn new(port: u16) -> Self {
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
}

async fn redis_at(url: String, port: u16) -> (Arc<RedisStore>, redis_servers::Prefix) {
    let guard = redis_servers::Prefix::new(port);
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

async fn redis() -> (Arc<RedisStore>, redis_servers::Prefix) {
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
async fn redis_near() -> (Arc<RedisStore>, redis_servers::Prefix) {
    let guard = redis_servers::Prefix::new(6379);
    let store = RedisStore::connect(near_options(&guard.prefix))
        .await
        .expect("Redis on 127.0.0.1:6379 (see scripts/test)");
    (Arc::new(store), guard)
}

mod redis_near_cache {
    use super::*;
    session_checks!(suite!(session_store, redis_near().await, SessionStore,));

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
            SessionStore::create(a.as_ref(), s).await.unwrap();
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
        SessionStore::create(&a, &s).await.unwrap();
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
        SessionStore::create(a.as_ref(), &s).await.unwrap();
        assert!(!a.load(&s.id_hash, now).await.unwrap().unwrap().rotate);
        let admin = vec![Role::parse("admin").unwrap()];
        assert_eq!(b.set_roles_for_user(u.id, &admin).await.unwrap(), 1);
        let started = std::time::Instant::now();
        loop {
            let loaded = a.load(&s.id_hash, now).await.unwrap().unwrap();
            if loaded.rotate && loaded.roles == admin {
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

mod redis_store {
    use super::*;
    session_checks!(suite!(session_store, redis().await, SessionStore,));
    token_checks!(suite!(token_store, redis().await, TokenStore,));

    #[tokio::test]
    async fn a_handle_too_long_to_store_names_no_session() {
        let (store, _guard) = redis().await;
        let u = user("a@example.com");
        let long = SessionHandle::new("h".repeat(300));
        assert!(!store.delete_by_handle(u.id, &long).await.unwrap());
    }

    #[tokio::test]
    async fn tls_urls_are_refused_rather_than_used_in_plain_text() {
        let err = RedisStore::connect(RedisOptions {
            url: "rediss://user:secret@127.0.0.1:6379".into(),
            ..RedisOptions::default()
        })
        .await
        .unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
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
                SessionStore::create(store.as_ref(), &s).await.unwrap();
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
        const BROWSER: &str =
            "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";
        assert!(bytes_per_session(4, "curl/8.5.0").await <= 400);
        assert!(bytes_per_session(4, BROWSER).await <= 400);
        assert!(bytes_per_session(1, BROWSER).await <= 560);
    }
}

/// The same contracts on a real three-primary Redis Cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_store_meets_the_contracts() {
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
    session_checks!(in_sequence!(fresh!(), SessionStore,));
    token_checks!(in_sequence!(fresh!(), TokenStore,));
    // Many users' records spread over all three primaries.
    let (store, _guard) = make().await;
    let now = Timestamp::now();
    for i in 0..60 {
        let u = user(&format!("spread{i}@example.com"));
        SessionStore::create(store.as_ref(), &start(&u, now))
            .await
            .unwrap();
    }
    let counts = cluster.key_counts();
    assert!(
        counts.iter().all(|&n| n > 0),
        "keys per primary: {counts:?}"
    );
}
