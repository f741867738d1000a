//! Checks of the `TokenStore` contract.

use std::sync::Arc;
use std::time::Duration;

use tessera_core::{FamilyId, RefreshToken, Revocation, Timestamp, TokenFamily, TokenStore, User};

use super::user;

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
