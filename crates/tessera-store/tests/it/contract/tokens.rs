//! Checks of the `TokenStore` contract.

use std::sync::Arc;
use std::time::Duration;

use tessera_core::{
    Email, FamilyId, PerUserCap, RefreshToken, Revocation, Role, SealedRevocation, SessionHandle,
    Timestamp, TokenFamily, TokenStore, User, UserId,
};

use super::user;

/// A cap no check here comes near, for the checks about something else.
fn roomy() -> PerUserCap {
    PerUserCap::new(200).unwrap()
}

fn cap(max: u32) -> PerUserCap {
    PerUserCap::new(max).unwrap()
}

fn at(millis: i64) -> Timestamp {
    Timestamp::from_unix_millis(millis)
}

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
    store.create_family(&f, roomy()).await.unwrap();
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
    store.create_family(&f, roomy()).await.unwrap();
    let tasks: Vec<_> = (0..10u8)
        .map(|i| {
            let store = Arc::clone(&store);
            let id = f.id.clone();
            tokio::spawn(async move { store.advance_family(&id, 0, [i; 32], now).await.unwrap() })
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
        store.create_family(f, roomy()).await.unwrap();
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

fn ids(families: &[TokenFamily]) -> Vec<FamilyId> {
    families.iter().map(|f| f.id.clone()).collect()
}

pub async fn past_the_cap_the_oldest_families_of_the_user_end(store: Arc<dyn TokenStore>) {
    let now = Timestamp::now();
    let (alice, bob) = (user("alice@example.com"), user("bob@example.com"));
    let theirs = family(&bob, now);
    store.create_family(&theirs, cap(3)).await.unwrap();
    // Logged in one second apart; the older the login, the longer the
    // family lives (remembered first, then not): expiry order is not age.
    // An address past 127 bytes and two roles: the login time sits behind
    // multi-byte lengths in a Redis family's meta field.
    let long = format!("a@{}.{}.example.com", "b".repeat(60), "c".repeat(60));
    let roles = vec![
        Role::parse("member").unwrap(),
        Role::parse("admin").unwrap(),
    ];
    let mine: Vec<TokenFamily> = (0..6u64)
        .map(|i| TokenFamily {
            expires_at: now.plus(Duration::from_secs(3600 * (10 - i))),
            email: Email::parse(&long).unwrap(),
            roles: roles.clone(),
            ..family(&alice, now.plus(Duration::from_secs(i)))
        })
        .collect();
    // A family ended by logout leaves the cap's count.
    store.create_family(&mine[0], cap(3)).await.unwrap();
    assert!(store.delete_family(&mine[0].id).await.unwrap());
    let mut ended = Vec::new();
    for f in &mine[1..] {
        let now_ended = store.create_family(f, cap(3)).await.unwrap();
        assert!(now_ended.len() <= 1, "one in, at most one out");
        ended.extend(now_ended);
    }
    assert_eq!(
        ids(&ended),
        ids(&mine[1..3]),
        "the two oldest, reported as stored"
    );
    assert_eq!(ended[0], mine[1]);
    for gone in &mine[..3] {
        assert_eq!(store.load_family(&gone.id, now).await.unwrap(), None);
        assert!(!store.delete_family(&gone.id).await.unwrap());
    }
    for kept in &mine[3..] {
        assert!(store.load_family(&kept.id, now).await.unwrap().is_some());
    }
    assert!(store.load_family(&theirs.id, now).await.unwrap().is_some());
    let mut left = ids(&store.delete_families_for_user(alice.id).await.unwrap());
    left.sort();
    let mut expected = ids(&mine[3..]);
    expected.sort();
    assert_eq!(left, expected, "exactly the cap's newest remain");
}

pub async fn expired_families_do_not_count_against_the_cap(store: Arc<dyn TokenStore>) {
    let now = Timestamp::now();
    let alice = user("alice@example.com");
    let lapsed = TokenFamily {
        expires_at: now.plus(Duration::from_millis(1)),
        ..family(&alice, now)
    };
    let first = family(&alice, now);
    store.create_family(&lapsed, cap(2)).await.unwrap();
    store.create_family(&first, cap(2)).await.unwrap();
    // Past its expiry on any clock (Redis expires keys on its own).
    tokio::time::sleep(Duration::from_millis(20)).await;
    let later = TokenFamily {
        expires_at: now.plus(Duration::from_secs(3600)),
        ..family(&alice, now.plus(Duration::from_secs(1)))
    };
    assert_eq!(
        store.create_family(&later, cap(2)).await.unwrap(),
        vec![],
        "the lapsed family was not live at the new one's login"
    );
    assert!(store.load_family(&first.id, now).await.unwrap().is_some());
}

pub async fn concurrent_family_creates_never_pass_the_cap(store: Arc<dyn TokenStore>) {
    let now = Timestamp::now();
    let alice = user("alice@example.com");
    let tasks: Vec<_> = (0..10u64)
        .map(|i| {
            let store = Arc::clone(&store);
            let f = family(&alice, now.plus(Duration::from_millis(i)));
            tokio::spawn(async move { store.create_family(&f, cap(3)).await.unwrap().len() })
        })
        .collect();
    let mut ended = 0;
    for t in tasks {
        ended += t.await.unwrap();
    }
    assert_eq!(ended, 7);
    assert_eq!(
        store
            .delete_families_for_user(alice.id)
            .await
            .unwrap()
            .len(),
        3
    );
}

fn sealed(user: UserId, login: Timestamp, lifetime: Duration) -> SealedRevocation {
    SealedRevocation {
        user,
        handle: SessionHandle::generate(),
        login,
        until: login.plus(lifetime),
    }
}

/// What the loaded list holds for `user`, in a stable order.
fn entries_of(loaded: &[Revocation], user: UserId) -> Vec<Revocation> {
    let mut mine: Vec<Revocation> = loaded
        .iter()
        .filter(|r| match r {
            Revocation::Sealed(s) => s.user == user,
            Revocation::SealedBefore { user: u, .. } => *u == user,
            _ => false,
        })
        .cloned()
        .collect();
    mine.sort_by_key(|r| format!("{r:?}"));
    mine
}

pub async fn past_the_cap_the_oldest_sealed_revocations_collapse_into_a_cutoff(
    store: Arc<dyn TokenStore>,
) {
    let now = Timestamp::now();
    let hour = Duration::from_secs(3600);
    let (alice, bob) = (UserId::generate(), UserId::generate());
    let login = |minutes_ago: u64| at(now.unix_millis() - 60_000 * minutes_ago as i64);
    let theirs = sealed(bob, login(50), hour);
    store
        .save_sealed_revocation(&theirs, cap(2), hour)
        .await
        .unwrap();
    let ended: Vec<SealedRevocation> = [40, 30, 20, 10]
        .map(|ago| sealed(alice, login(ago), hour))
        .into();
    let mut cutoffs = Vec::new();
    for s in &ended {
        cutoffs.push(store.save_sealed_revocation(s, cap(2), hour).await.unwrap());
    }
    let expected = |through: Timestamp| Revocation::SealedBefore {
        user: alice,
        through,
        until: through.plus(hour),
    };
    assert_eq!(
        cutoffs,
        vec![
            None,
            None,
            Some(expected(ended[0].login)),
            Some(expected(ended[1].login))
        ],
        "each save past the cap moves the cutoff to the newest collapsed login"
    );
    // Ending a session the cutoff already refuses stores nothing.
    let older = sealed(alice, login(45), hour);
    assert_eq!(
        store
            .save_sealed_revocation(&older, cap(2), hour)
            .await
            .unwrap(),
        None
    );
    // Read back as a restarted node reads it: the cutoff and the cap's
    // newest entries, nothing else of alice's; bob untouched.
    let loaded = store.load_revocations(now, None).await.unwrap();
    let mut want = vec![
        expected(ended[1].login),
        Revocation::Sealed(ended[2].clone()),
        Revocation::Sealed(ended[3].clone()),
    ];
    want.sort_by_key(|r| format!("{r:?}"));
    assert_eq!(entries_of(&loaded, alice), want);
    assert_eq!(
        entries_of(&loaded, bob),
        vec![Revocation::Sealed(theirs.clone())]
    );
    // The moved cutoff reaches a node that syncs only what changed.
    let changed = store.load_revocations(now, Some(now)).await.unwrap();
    assert!(changed.contains(&expected(ended[1].login)), "{changed:?}");
    // It is kept while the sessions it refuses could still be presented.
    let before_it_lapses = ended[1].login.plus(hour - Duration::from_secs(1));
    let loaded = store
        .load_revocations(before_it_lapses, None)
        .await
        .unwrap();
    assert!(loaded.contains(&expected(ended[1].login)));
    store.purge_expired_tokens(before_it_lapses).await.unwrap();
    let loaded = store.load_revocations(now, None).await.unwrap();
    assert!(
        loaded.contains(&expected(ended[1].login)),
        "survives a purge"
    );
}

pub async fn lapsed_sealed_revocations_do_not_count_against_the_cap(store: Arc<dyn TokenStore>) {
    let now = Timestamp::now();
    let hour = Duration::from_secs(3600);
    let alice = UserId::generate();
    let lapsed = SealedRevocation {
        until: at(now.unix_millis() - 1_000),
        ..sealed(alice, at(now.unix_millis() - 7_200_000), hour)
    };
    store
        .save_sealed_revocation(&lapsed, cap(2), hour)
        .await
        .unwrap();
    for ago in [20, 10] {
        let s = sealed(alice, at(now.unix_millis() - 60_000 * ago), hour);
        assert_eq!(
            store
                .save_sealed_revocation(&s, cap(2), hour)
                .await
                .unwrap(),
            None
        );
    }
    let loaded = store.load_revocations(now, None).await.unwrap();
    assert_eq!(entries_of(&loaded, alice).len(), 2);
    // A cutoff never moves back, whoever saves it.
    let later = Revocation::SealedBefore {
        user: alice,
        through: now,
        until: now.plus(hour),
    };
    store.save_revocation(&later).await.unwrap();
    store
        .save_revocation(&Revocation::SealedBefore {
            user: alice,
            through: at(5),
            until: now.plus(hour),
        })
        .await
        .unwrap();
    let loaded = store.load_revocations(now, None).await.unwrap();
    assert!(loaded.contains(&later), "{loaded:?}");
}

pub async fn a_users_live_families_are_listed_oldest_first(store: Arc<dyn TokenStore>) {
    let now = Timestamp::now();
    let (alice, bob) = (user("alice@example.com"), user("bob@example.com"));
    let newer = family(&alice, now);
    let older = family(&alice, at(now.unix_millis() - 10_000));
    let mut lapsed = family(&alice, at(now.unix_millis() - 20_000));
    lapsed.expires_at = now.plus(Duration::from_millis(300));
    let other = family(&bob, now);
    for f in [&newer, &older, &lapsed, &other] {
        store.create_family(f, roomy()).await.unwrap();
    }
    let listed = store.families_for_user(alice.id, now).await.unwrap();
    assert_eq!(
        ids(&listed),
        [lapsed.id.clone(), older.id.clone(), newer.id.clone()]
    );
    assert_eq!(listed[2], newer, "listed as stored");
    let later = now.plus(Duration::from_millis(301));
    assert_eq!(
        ids(&store.families_for_user(alice.id, later).await.unwrap()),
        [older.id.clone(), newer.id.clone()],
        "an expired family is not listed"
    );
    assert!(store.delete_family(&older.id).await.unwrap());
    assert_eq!(
        ids(&store.families_for_user(alice.id, later).await.unwrap()),
        [newer.id]
    );
    assert!(
        store
            .families_for_user(user("carol@example.com").id, now)
            .await
            .unwrap()
            .is_empty()
    );
}
