//! Checks of the `SessionStore` contract.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tessera_core::{
    Email, PerUserCap, Role, Session, SessionHandle, SessionIdHash, SessionStore, StoreError,
    Timestamp, UserCopy,
};

use super::{meta, object, policy, rotation_key, start, start_with_id, user};

pub async fn load_returns_what_create_stored(store: Arc<dyn SessionStore>) {
    let now = Timestamp::now();
    let s = start(&user("a@example.com"), now);
    store.create(&s, PerUserCap::UNBOUNDED).await.unwrap();
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
    store.create(&s, PerUserCap::UNBOUNDED).await.unwrap();
    assert_eq!(resolve(&store, &s.id_hash, s.expires_at).await, None);
    let just_before = Timestamp::from_unix_millis(s.expires_at.unix_millis() - 1);
    assert!(store.load(&s.id_hash, just_before).await.unwrap().is_some());
}

pub async fn touch_moves_expiry_and_reports_missing_sessions(store: Arc<dyn SessionStore>) {
    let now = Timestamp::now();
    let s = start(&user("a@example.com"), now);
    store.create(&s, PerUserCap::UNBOUNDED).await.unwrap();
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
    store.create(&s, PerUserCap::UNBOUNDED).await.unwrap();
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
    store.create(&s, PerUserCap::UNBOUNDED).await.unwrap();
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
    store.create(&s, PerUserCap::UNBOUNDED).await.unwrap();
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
    let (old_id, old) = start_with_id(&u, now);
    store.create(&old, PerUserCap::UNBOUNDED).await.unwrap();
    // Different successors (as nodes with different keys would derive):
    // only one rotation wins; the old id names the winner's, no other.
    let successors: Vec<Session> = (0..8)
        .map(|_| policy().successor(&old, &old_id, &rotation_key(), now).1)
        .collect();
    let grace_until = now.plus(Duration::from_secs(60));
    let tasks: Vec<_> = successors
        .iter()
        .cloned()
        .map(|next| {
            let store = Arc::clone(&store);
            let old_id = old.id_hash;
            tokio::spawn(async move { store.rotate(&old_id, &next, grace_until).await.unwrap() })
        })
        .collect();
    let mut wins = Vec::new();
    for (t, next) in tasks.into_iter().zip(&successors) {
        if t.await.unwrap() {
            wins.push(next.id_hash);
        }
    }
    assert_eq!(
        wins.len(),
        1,
        "exactly one rotation of the same old id succeeds"
    );
    let live = store.list_for_user(u.id, now).await.unwrap();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].handle, old.handle);
    assert_eq!(live[0].id_hash, wins[0]);
    let through_old = store.load(&old.id_hash, now).await.unwrap().unwrap();
    assert_eq!(through_old.id_hash, wins[0], "the old id names the winner");
}

/// A session rotated with a grace until `grace_until`: the old id, the
/// successor's id and the successor as stored.
/// The id of the session `id` names at `now`, if any (its own, or its
/// successor's through a rotation alias).
async fn resolve(
    store: &Arc<dyn SessionStore>,
    id: &tessera_core::SessionIdHash,
    now: Timestamp,
) -> Option<tessera_core::SessionIdHash> {
    store.load(id, now).await.unwrap().map(|s| s.id_hash)
}

async fn rotated(
    store: &Arc<dyn SessionStore>,
    u: &tessera_core::User,
    now: Timestamp,
    grace_until: Timestamp,
) -> (Session, Session) {
    let (old_id, old) = start_with_id(u, now);
    store.create(&old, PerUserCap::UNBOUNDED).await.unwrap();
    store
        .merge_data(&old.id_hash, &object(json!({"theme": "dark"})), 1024)
        .await
        .unwrap();
    let (_, next) = policy().successor(&old, &old_id, &rotation_key(), now);
    assert!(
        store
            .rotate(&old.id_hash, &next, grace_until)
            .await
            .unwrap()
    );
    (old, next)
}

fn millis_before(t: Timestamp, ms: i64) -> Timestamp {
    Timestamp::from_unix_millis(t.unix_millis() - ms)
}

pub async fn a_rotated_id_names_its_successor_within_the_grace(store: Arc<dyn SessionStore>) {
    let now = Timestamp::now();
    let u = user("a@example.com");
    let grace_until = now.plus(Duration::from_secs(60));
    let (old, next) = rotated(&store, &u, now, grace_until).await;
    for at in [now, millis_before(grace_until, 1)] {
        let through_old = store
            .load(&old.id_hash, at)
            .await
            .unwrap()
            .expect("the old id works within the grace");
        assert_eq!(through_old.id_hash, next.id_hash, "and names the successor");
        assert_eq!(through_old.handle, old.handle);
        assert_eq!(
            Value::Object(through_old.data.clone()),
            json!({"theme": "dark"})
        );
        assert!(!through_old.rotate);
    }
    assert_eq!(
        resolve(&store, &old.id_hash, grace_until).await,
        None,
        "not at the end of the grace"
    );
    assert!(
        store
            .load(&next.id_hash, grace_until)
            .await
            .unwrap()
            .is_some()
    );
    let listed = store.list_for_user(u.id, now).await.unwrap();
    assert_eq!(
        listed.iter().map(|s| s.id_hash).collect::<Vec<_>>(),
        vec![next.id_hash],
        "the alias is not listed"
    );
}

pub async fn a_rotated_id_is_refused_once_the_grace_has_passed(store: Arc<dyn SessionStore>) {
    let now = Timestamp::now();
    let u = user("a@example.com");
    let grace = Duration::from_millis(300);
    let (old, next) = rotated(&store, &u, now, now.plus(grace)).await;
    assert!(
        store
            .load(&old.id_hash, Timestamp::now())
            .await
            .unwrap()
            .is_some()
    );
    tokio::time::sleep(grace + Duration::from_millis(100)).await;
    let later = Timestamp::now();
    assert_eq!(
        resolve(&store, &old.id_hash, later).await,
        None,
        "the old id is refused after the grace"
    );
    // A purge counts no alias, and leaves the successor alone.
    assert_eq!(store.purge_expired(later).await.unwrap(), 0);
    assert_eq!(resolve(&store, &old.id_hash, later).await, None);
    assert!(store.load(&next.id_hash, later).await.unwrap().is_some());
    // Nor can it be rotated any more.
    assert!(
        !store
            .rotate(&old.id_hash, &next, later.plus(grace))
            .await
            .unwrap()
    );
}

pub async fn concurrent_rotations_to_one_successor_converge(store: Arc<dyn SessionStore>) {
    let now = Timestamp::now();
    let u = user("a@example.com");
    let (old_id, old) = start_with_id(&u, now);
    store.create(&old, PerUserCap::UNBOUNDED).await.unwrap();
    let key = rotation_key();
    let grace_until = now.plus(Duration::from_secs(60));
    // Every request that saw the old id derives the same successor.
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = Arc::clone(&store);
            let (_, next) = policy().successor(&old, &old_id, &key, now);
            let old_hash = old.id_hash;
            tokio::spawn(async move { store.rotate(&old_hash, &next, grace_until).await.unwrap() })
        })
        .collect();
    for t in tasks {
        assert!(
            t.await.unwrap(),
            "every concurrent rotation to the same successor succeeds"
        );
    }
    let (_, next) = policy().successor(&old, &old_id, &key, now);
    let live = store.list_for_user(u.id, now).await.unwrap();
    assert_eq!(live.len(), 1, "one session results");
    assert_eq!(live[0].id_hash, next.id_hash);
    assert_eq!(resolve(&store, &old.id_hash, now).await, Some(next.id_hash));
    // Once more, later: still converged, nothing changed.
    let later = now.plus(Duration::from_secs(1));
    let (_, again) = policy().successor(&old, &old_id, &key, later);
    assert!(
        store
            .rotate(&old.id_hash, &again, grace_until)
            .await
            .unwrap()
    );
    let stored = store.load(&next.id_hash, later).await.unwrap().unwrap();
    assert_eq!(
        stored.last_seen, next.last_seen,
        "a converged rotation changes nothing"
    );
    // Another successor (another key) is not this rotation's.
    let (_, other) = policy().successor(&old, &old_id, &rotation_key(), later);
    assert!(
        !store
            .rotate(&old.id_hash, &other, grace_until)
            .await
            .unwrap()
    );
    assert_eq!(resolve(&store, &other.id_hash, later).await, None);
}

pub async fn ending_the_successor_ends_its_predecessor(store: Arc<dyn SessionStore>) {
    let now = Timestamp::now();
    let u = user("a@example.com");
    let grace_until = now.plus(Duration::from_secs(60));
    let ends: [(&str, usize); 3] = [
        ("delete", 0),
        ("delete_by_handle", 1),
        ("delete_all_for_user", 2),
    ];
    for (how, n) in ends {
        let (old, next) = rotated(&store, &u, now, grace_until).await;
        assert!(store.load(&old.id_hash, now).await.unwrap().is_some());
        match n {
            0 => assert!(store.delete(&next.id_hash).await.unwrap()),
            1 => assert!(store.delete_by_handle(u.id, &next.handle).await.unwrap()),
            _ => assert_eq!(store.delete_all_for_user(u.id).await.unwrap(), 1),
        }
        assert_eq!(
            resolve(&store, &old.id_hash, now).await,
            None,
            "{how} of the successor leaves its predecessor working"
        );
        assert!(
            !store
                .rotate(&old.id_hash, &next, grace_until)
                .await
                .unwrap(),
            "{how}: a rotation to an ended successor does not converge"
        );
    }
    assert!(store.list_for_user(u.id, now).await.unwrap().is_empty());
}

pub async fn the_predecessor_ends_when_its_successor_expires(store: Arc<dyn SessionStore>) {
    let now = Timestamp::now();
    let u = user("a@example.com");
    let (old_id, old) = start_with_id(&u, now);
    store.create(&old, PerUserCap::UNBOUNDED).await.unwrap();
    let (_, mut next) = policy().successor(&old, &old_id, &rotation_key(), now);
    let lifetime = Duration::from_millis(300);
    next.expires_at = now.plus(lifetime);
    // A grace longer than the successor's life is cut to it.
    let grace_until = now.plus(Duration::from_secs(60));
    assert!(
        store
            .rotate(&old.id_hash, &next, grace_until)
            .await
            .unwrap()
    );
    assert!(store.load(&old.id_hash, now).await.unwrap().is_some());
    assert_eq!(
        resolve(&store, &old.id_hash, next.expires_at).await,
        None,
        "the old id does not outlive its session"
    );
    tokio::time::sleep(lifetime + Duration::from_millis(100)).await;
    let later = Timestamp::now();
    assert_eq!(resolve(&store, &old.id_hash, later).await, None);
    assert_eq!(resolve(&store, &next.id_hash, later).await, None);
}

pub async fn without_a_grace_the_old_id_stops_working_at_once(store: Arc<dyn SessionStore>) {
    let now = Timestamp::now();
    let u = user("a@example.com");
    let (old_id, old) = start_with_id(&u, now);
    store.create(&old, PerUserCap::UNBOUNDED).await.unwrap();
    let (_, next) = policy().successor(&old, &old_id, &rotation_key(), now);
    assert!(store.rotate(&old.id_hash, &next, now).await.unwrap());
    assert_eq!(resolve(&store, &old.id_hash, now).await, None);
    assert!(store.load(&next.id_hash, now).await.unwrap().is_some());
    assert!(
        !store.rotate(&old.id_hash, &next, now).await.unwrap(),
        "without an alias, a second rotation finds nothing"
    );
}

pub async fn an_alias_of_an_alias_names_nothing(store: Arc<dyn SessionStore>) {
    let now = Timestamp::now();
    let u = user("a@example.com");
    let key = rotation_key();
    let grace_until = now.plus(Duration::from_secs(60));
    let (first_id, first) = start_with_id(&u, now);
    store.create(&first, PerUserCap::UNBOUNDED).await.unwrap();
    let (second_id, second) = policy().successor(&first, &first_id, &key, now);
    assert!(
        store
            .rotate(&first.id_hash, &second, grace_until)
            .await
            .unwrap()
    );
    let (_, third) = policy().successor(&second, &second_id, &key, now);
    assert!(
        store
            .rotate(&second.id_hash, &third, grace_until)
            .await
            .unwrap()
    );
    assert_eq!(
        resolve(&store, &second.id_hash, now).await,
        Some(third.id_hash)
    );
    assert_eq!(
        resolve(&store, &first.id_hash, now).await,
        None,
        "at most one alias is followed"
    );
    assert_eq!(store.list_for_user(u.id, now).await.unwrap().len(), 1);
}

pub async fn rotating_an_unknown_id_is_false_and_stores_nothing(store: Arc<dyn SessionStore>) {
    let now = Timestamp::now();
    let u = user("a@example.com");
    let (id, never_stored) = start_with_id(&u, now);
    let (_, next) = policy().successor(&never_stored, &id, &rotation_key(), now);
    let grace_until = now.plus(Duration::from_secs(60));
    assert!(
        !store
            .rotate(&never_stored.id_hash, &next, grace_until)
            .await
            .unwrap()
    );
    assert_eq!(resolve(&store, &next.id_hash, now).await, None);
    assert_eq!(resolve(&store, &never_stored.id_hash, now).await, None);
    assert!(store.list_for_user(u.id, now).await.unwrap().is_empty());
}

pub async fn delete_reports_whether_the_session_existed(store: Arc<dyn SessionStore>) {
    let now = Timestamp::now();
    let s = start(&user("a@example.com"), now);
    store.create(&s, PerUserCap::UNBOUNDED).await.unwrap();
    assert!(store.delete(&s.id_hash).await.unwrap());
    assert!(!store.delete(&s.id_hash).await.unwrap());
    assert_eq!(resolve(&store, &s.id_hash, now).await, None);
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
        store.create(s, PerUserCap::UNBOUNDED).await.unwrap();
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
    store.create(&a, PerUserCap::UNBOUNDED).await.unwrap();
    store.create(&b, PerUserCap::UNBOUNDED).await.unwrap();
    assert!(
        !store.delete_by_handle(alice.id, &b.handle).await.unwrap(),
        "alice cannot end bob's session"
    );
    assert!(store.load(&b.id_hash, now).await.unwrap().is_some());
    assert!(store.delete_by_handle(alice.id, &a.handle).await.unwrap());
    assert_eq!(resolve(&store, &a.id_hash, now).await, None);
}

pub async fn delete_all_for_user_ends_every_session_of_that_user(store: Arc<dyn SessionStore>) {
    let now = Timestamp::now();
    let (alice, bob) = (user("alice@example.com"), user("bob@example.com"));
    let mine: Vec<Session> = (0..3).map(|_| start(&alice, now)).collect();
    let theirs = start(&bob, now);
    for s in mine.iter().chain([&theirs]) {
        store.create(s, PerUserCap::UNBOUNDED).await.unwrap();
    }
    assert_eq!(store.delete_all_for_user(alice.id).await.unwrap(), 3);
    assert!(store.list_for_user(alice.id, now).await.unwrap().is_empty());
    assert!(store.load(&theirs.id_hash, now).await.unwrap().is_some());
}

pub async fn user_copy_changes_reach_live_sessions_and_flag_rotation(store: Arc<dyn SessionStore>) {
    let now = Timestamp::now();
    let (alice, bob) = (user("alice@example.com"), user("bob@example.com"));
    let mut a = start(&alice, now);
    a.data = object(json!({"theme": "dark"}));
    let a2 = start(&alice, now);
    let b = start(&bob, now);
    for s in [&a, &a2, &b] {
        store.create(s, PerUserCap::UNBOUNDED).await.unwrap();
    }
    assert!(!a.email_verified, "the fixture's user is unverified");
    // A longer address (its length no longer fits in one byte of a
    // varint), then a shorter one: the copy replaces the old one whole.
    // (DNS labels are at most 63 characters.)
    let long = format!(
        "{}@{}.{}.example.com",
        "a".repeat(60),
        "b".repeat(60),
        "c".repeat(40)
    );
    for (email, verified) in [(long.as_str(), true), ("al@example.org", false)] {
        let copy = UserCopy {
            email: Email::parse(email).unwrap(),
            roles: vec![
                Role::parse("admin").unwrap(),
                Role::parse("member").unwrap(),
            ],
            email_verified: verified,
        };
        assert_eq!(store.update_user_copy(alice.id, &copy).await.unwrap(), 2);
        for s in [&a, &a2] {
            let loaded = store.load(&s.id_hash, now).await.unwrap().unwrap();
            let mut expected = s.clone();
            expected.set_user_copy(&copy);
            assert_eq!(*loaded, expected, "only the copy changed, rotation flagged");
            assert!(loaded.rotate);
        }
        let listed = store.list_for_user(alice.id, now).await.unwrap();
        assert!(listed.iter().all(|s| s.user_copy() == copy && s.rotate));
    }
    let other = store.load(&b.id_hash, now).await.unwrap().unwrap();
    assert_eq!(*other, b, "another user's session is untouched");
    assert_eq!(
        store
            .update_user_copy(user("carol@example.com").id, &b.user_copy())
            .await
            .unwrap(),
        0
    );
}

pub async fn purge_removes_only_expired_sessions(store: Arc<dyn SessionStore>) {
    let now = Timestamp::now();
    let u = user("a@example.com");
    let live = start(&u, now);
    let mut dead = start(&u, now);
    dead.expires_at = now;
    store.create(&live, PerUserCap::UNBOUNDED).await.unwrap();
    store.create(&dead, PerUserCap::UNBOUNDED).await.unwrap();
    // Redis expires a key only once its clock is past the expiry: within
    // the same millisecond it still has it (seen once in a full run).
    tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    // Stores whose records expire by themselves (Redis TTLs) have
    // nothing left to purge; the others remove exactly the dead one.
    assert!(store.purge_expired(now).await.unwrap() <= 1);
    assert_eq!(store.purge_expired(now).await.unwrap(), 0);
    assert!(store.load(&live.id_hash, now).await.unwrap().is_some());
    // The expired one is gone for good, even to a clock that goes back.
    let earlier = Timestamp::from_unix_millis(now.unix_millis() - 1000);
    assert_eq!(resolve(&store, &dead.id_hash, earlier).await, None);
}

pub async fn rotation_keeps_changes_made_since_the_session_was_read(store: Arc<dyn SessionStore>) {
    let now = Timestamp::now();
    let u = user("a@example.com");
    let (id, s) = start_with_id(&u, now);
    store.create(&s, PerUserCap::UNBOUNDED).await.unwrap();
    let read = store.load(&s.id_hash, now).await.unwrap().unwrap();
    let admin = vec![Role::parse("admin").unwrap()];
    let copy = UserCopy {
        email: Email::parse("new@example.com").unwrap(),
        roles: admin.clone(),
        email_verified: true,
    };
    store.update_user_copy(u.id, &copy).await.unwrap();
    store
        .merge_data(&s.id_hash, &object(json!({"theme": "dark"})), 1024)
        .await
        .unwrap();
    // The rotation was decided on the copy read before both changes.
    let later = now.plus(Duration::from_secs(1));
    let (_, successor) = policy().successor(&read, &id, &rotation_key(), later);
    assert!(store.rotate(&s.id_hash, &successor, later).await.unwrap());
    let rotated = store
        .load(&successor.id_hash, later)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rotated.roles, admin, "the role change is kept");
    assert_eq!(rotated.user_copy(), copy, "so is the rest of the copy");
    assert_eq!(
        Value::Object(rotated.data.clone()),
        json!({"theme": "dark"})
    );
    assert_eq!(
        (rotated.last_seen, rotated.expires_at, rotated.rotate),
        (successor.last_seen, successor.expires_at, false)
    );
    assert_eq!(rotated.handle, s.handle);
    assert_eq!(resolve(&store, &s.id_hash, later).await, None);
}

pub async fn ping_answers(store: Arc<dyn SessionStore>) {
    store.ping().await.unwrap();
}

/// The ids of the user's listed sessions at `now`, oldest first.
async fn listed(
    store: &Arc<dyn SessionStore>,
    u: &tessera_core::User,
    now: Timestamp,
) -> Vec<SessionIdHash> {
    let sessions = store.list_for_user(u.id, now).await.unwrap();
    sessions.into_iter().map(|s| s.id_hash).collect()
}

pub async fn a_create_past_the_cap_ends_the_oldest_sessions(store: Arc<dyn SessionStore>) {
    let now = Timestamp::now();
    let cap = PerUserCap::new(3).unwrap();
    let (alice, bob) = (user("alice@example.com"), user("bob@example.com"));
    // Five logins a second apart. The first two remembered, the others
    // not: the later ones then end first (a shorter absolute lifetime),
    // and a store that picked "oldest" by expiry would end the wrong ones.
    let at = |i: i64| Timestamp::from_unix_millis(now.unix_millis() - (10 - i) * 1000);
    let logins: Vec<_> = (0..5)
        .map(|i| {
            if i < 2 {
                policy().start(&alice, meta(), at(i))
            } else {
                policy().start_transient(&alice, meta(), at(i))
            }
        })
        .collect();
    let theirs: Vec<Session> = (0..2).map(|i| start(&bob, at(i))).collect();
    for s in &theirs {
        assert!(store.create(s, cap).await.unwrap().is_empty());
    }
    for (_, s) in &logins[..3] {
        let ended = store.create(s, cap).await.unwrap();
        assert!(ended.is_empty(), "up to the cap nothing ends: {ended:?}");
        // Loaded, so that a store's cache holds it when it ends.
        assert_eq!(resolve(&store, &s.id_hash, now).await, Some(s.id_hash));
    }
    // The oldest was rotated: its old id is an alias of its successor.
    let (first_id, first) = &logins[0];
    let (_, successor) = policy().successor(first, first_id, &rotation_key(), at(3));
    let grace_until = now.plus(Duration::from_secs(60));
    assert!(
        store
            .rotate(&first.id_hash, &successor, grace_until)
            .await
            .unwrap()
    );
    assert_eq!(
        resolve(&store, &first.id_hash, now).await,
        Some(successor.id_hash)
    );
    assert_eq!(
        resolve(&store, &successor.id_hash, now).await,
        Some(successor.id_hash)
    );

    let ended = store.create(&logins[3].1, cap).await.unwrap();
    assert_eq!(
        ended.iter().map(|s| &s.handle).collect::<Vec<_>>(),
        vec![&first.handle],
        "the fourth login ends the first session, and says so"
    );
    assert_eq!(ended[0].id_hash, successor.id_hash, "as it is stored now");
    let ended = store.create(&logins[4].1, cap).await.unwrap();
    assert_eq!(
        ended.iter().map(|s| &s.handle).collect::<Vec<_>>(),
        vec![&logins[1].1.handle],
        "the fifth ends the second"
    );

    let newest: Vec<SessionIdHash> = logins[2..].iter().map(|(_, s)| s.id_hash).collect();
    assert_eq!(listed(&store, &alice, now).await, newest);
    for gone in [&first.id_hash, &successor.id_hash, &logins[1].1.id_hash] {
        assert_eq!(
            resolve(&store, gone, now).await,
            None,
            "an ended session, or an alias of one, loads as nothing"
        );
    }
    for kept in &newest {
        assert_eq!(resolve(&store, kept, now).await, Some(*kept));
    }
    let bobs: Vec<SessionIdHash> = theirs.iter().map(|s| s.id_hash).collect();
    assert_eq!(
        listed(&store, &bob, now).await,
        bobs,
        "other users keep theirs"
    );
}

pub async fn expired_sessions_do_not_count_against_the_cap(store: Arc<dyn SessionStore>) {
    let now = Timestamp::now();
    let cap = PerUserCap::new(2).unwrap();
    let u = user("a@example.com");
    let mut dead = start(&u, millis_before(now, 2000));
    dead.expires_at = millis_before(now, 1000);
    let live = start(&u, millis_before(now, 1000));
    let new = start(&u, now);
    for s in [&dead, &live] {
        assert!(store.create(s, cap).await.unwrap().is_empty());
    }
    assert!(
        store.create(&new, cap).await.unwrap().is_empty(),
        "an expired session is not ended to make room: it is not there"
    );
    assert_eq!(
        listed(&store, &u, now).await,
        vec![live.id_hash, new.id_hash]
    );
}

pub async fn concurrent_creates_never_pass_the_cap(store: Arc<dyn SessionStore>) {
    let now = Timestamp::now();
    let cap = PerUserCap::new(3).unwrap();
    let u = user("a@example.com");
    let sessions: Vec<Session> = (0..16)
        .map(|i| start(&u, millis_before(now, 1000 - i)))
        .collect();
    let tasks: Vec<_> = sessions
        .iter()
        .cloned()
        .map(|s| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.create(&s, cap).await.unwrap() })
        })
        .collect();
    let mut ended = Vec::new();
    for t in tasks {
        ended.extend(t.await.unwrap().into_iter().map(|s| s.id_hash));
    }
    let live = listed(&store, &u, now).await;
    assert_eq!(live.len(), 3, "exactly the cap is left");
    let mut accounted: Vec<SessionIdHash> = ended.into_iter().chain(live).collect();
    accounted.sort_by_key(|id| *id.as_bytes());
    let mut all: Vec<SessionIdHash> = sessions.iter().map(|s| s.id_hash).collect();
    all.sort_by_key(|id| *id.as_bytes());
    assert_eq!(
        accounted, all,
        "each session is either live or reported ended once"
    );
}
