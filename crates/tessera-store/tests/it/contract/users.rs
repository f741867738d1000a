//! Checks of the `UserStore` contract.

use std::sync::Arc;

use tessera_core::{Email, PasswordHash, Role, StoreError, UserCursor, UserQuery, UserStore};

use super::user;

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
    assert!(!store.by_id(u.id).await.unwrap().unwrap().email_verified);
    assert!(store.set_email_verified(u.id, true).await.unwrap());
    let new_hash = PasswordHash::from_trusted("$argon2id$v=19$m=8,t=1,p=1$bmV3c2FsdA$bmV3".into());
    assert!(store.set_password_hash(u.id, &new_hash).await.unwrap());
    let loaded = store.by_id(u.id).await.unwrap().unwrap();
    let names: Vec<&str> = loaded.roles.iter().map(Role::as_str).collect();
    assert_eq!(names, ["admin", "support"], "roles are stored sorted");
    assert!(loaded.disabled);
    assert!(loaded.email_verified);
    assert_eq!(loaded.password_hash, new_hash);
    assert_eq!((loaded.email, loaded.created_at), (u.email, u.created_at));
    let stranger = user("stranger@example.com");
    assert!(!store.set_roles(stranger.id, &roles).await.unwrap());
    assert!(!store.set_disabled(stranger.id, true).await.unwrap());
    assert!(!store.set_email_verified(stranger.id, true).await.unwrap());
    assert!(
        !store
            .set_password_hash(stranger.id, &new_hash)
            .await
            .unwrap()
    );
}

/// Walks every page of `query` (page size `limit`), returning the e-mail
/// addresses in order.
async fn walk(store: &dyn UserStore, mut query: UserQuery) -> Vec<String> {
    let mut seen = Vec::new();
    for _ in 0..1000 {
        let page = store.list_page(&query).await.unwrap();
        assert!(page.users.len() <= query.page_size());
        seen.extend(page.users.iter().map(|u| u.email.to_string()));
        match page.next {
            Some(next) => {
                // The cursor is opaque to clients: it survives its text.
                query.after = Some(UserCursor::decode(&next.encode()).unwrap());
            }
            None => return seen,
        }
    }
    panic!("the pages never end");
}

pub async fn pages_see_every_matching_user_once_in_order(store: Arc<dyn UserStore>) {
    let admin = Role::parse("admin").unwrap();
    let mut expected_all = Vec::new();
    let mut expected_admins = Vec::new();
    for i in 0..23 {
        let mut u = user(&format!("user{i:02}@example.com"));
        if i % 3 == 0 {
            u.roles.push(admin.clone());
            expected_admins.push(u.email.to_string());
        }
        u.disabled = i % 4 == 0;
        u.email_verified = i % 2 == 0;
        store.create(&u).await.unwrap();
        expected_all.push(u.email.to_string());
    }
    // A role whose name contains another's is not a match for it.
    let mut near = user("near@example.net");
    near.roles = vec![Role::parse("admin-x").unwrap()];
    store.create(&near).await.unwrap();
    expected_all.insert(0, near.email.to_string());
    expected_all.sort();

    for limit in [1, 4, 7, 23, 500] {
        let all = walk(
            store.as_ref(),
            UserQuery {
                limit,
                ..UserQuery::default()
            },
        )
        .await;
        assert_eq!(all, expected_all, "limit {limit}");
        let admins = walk(
            store.as_ref(),
            UserQuery {
                role: Some(admin.clone()),
                limit,
                ..UserQuery::default()
            },
        )
        .await;
        assert_eq!(admins, expected_admins, "admins, limit {limit}");
    }
    let filtered = walk(
        store.as_ref(),
        UserQuery {
            email_prefix: Some("user1".into()),
            disabled: Some(false),
            verified: Some(true),
            limit: 2,
            ..UserQuery::default()
        },
    )
    .await;
    assert_eq!(
        filtered,
        [
            "user10@example.com",
            "user14@example.com",
            "user18@example.com"
        ]
    );
    let last = store
        .list_page(&UserQuery {
            limit: 24,
            ..UserQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(last.users.len(), 24);
    assert_eq!(last.next, None, "a full last page says that it is the last");
}

pub async fn pages_have_no_gaps_when_users_come_and_go(store: Arc<dyn UserStore>) {
    let mut users = Vec::new();
    for i in 0..10 {
        let u = user(&format!("u{i}@example.com"));
        store.create(&u).await.unwrap();
        users.push(u);
    }
    let mut query = UserQuery {
        limit: 3,
        ..UserQuery::default()
    };
    let first = store.list_page(&query).await.unwrap();
    // The last user of the page goes, one before the cursor arrives.
    assert!(store.delete_user(users[2].id).await.unwrap());
    store.create(&user("u0a@example.com")).await.unwrap();
    query.after = first.next;
    let rest = walk(store.as_ref(), query).await;
    assert_eq!(
        rest,
        (3..10)
            .map(|i| format!("u{i}@example.com"))
            .collect::<Vec<_>>()
    );
}

pub async fn an_email_prefix_is_literal(store: Arc<dyn UserStore>) {
    for e in [
        "a%b@example.com",
        "axb@example.com",
        "a_c@example.com",
        "abc@example.com",
        "a\\d@example.com",
        "Ab@example.com",
    ] {
        store.create(&user(e)).await.unwrap();
    }
    for (prefix, expected) in [
        ("a%", vec!["a%b@example.com"]),
        ("a_", vec!["a_c@example.com"]),
        ("a\\", vec!["a\\d@example.com"]),
        ("ab", vec!["ab@example.com", "abc@example.com"]),
        (
            "",
            vec![
                "a%b@example.com",
                "a\\d@example.com",
                "a_c@example.com",
                "ab@example.com",
                "abc@example.com",
                "axb@example.com",
            ],
        ),
        ("zz", vec![]),
    ] {
        let found = walk(
            store.as_ref(),
            UserQuery {
                email_prefix: Some(prefix.into()),
                ..UserQuery::default()
            },
        )
        .await;
        assert_eq!(found, expected, "prefix {prefix:?}");
    }
}

pub async fn delete_removes_only_that_user(store: Arc<dyn UserStore>) {
    let alice = user("alice@example.com");
    let bob = user("bob@example.com");
    store.create(&alice).await.unwrap();
    store.create(&bob).await.unwrap();
    assert!(store.delete_user(alice.id).await.unwrap());
    assert!(!store.delete_user(alice.id).await.unwrap(), "already gone");
    assert_eq!(store.by_id(alice.id).await.unwrap(), None);
    assert_eq!(store.by_email(&alice.email).await.unwrap(), None);
    assert_eq!(store.by_id(bob.id).await.unwrap(), Some(bob));
    assert!(!store.set_disabled(alice.id, true).await.unwrap());
    // The address is free again.
    store.create(&user("alice@example.com")).await.unwrap();
}

pub async fn set_email_moves_the_address_and_refuses_a_taken_one(store: Arc<dyn UserStore>) {
    let alice = user("alice@example.com");
    let bob = user("bob@example.com");
    store.create(&alice).await.unwrap();
    store.create(&bob).await.unwrap();
    let new = Email::parse("alice@example.org").unwrap();
    assert!(store.set_email(alice.id, &new).await.unwrap());
    assert_eq!(store.by_email(&new).await.unwrap().unwrap().id, alice.id);
    assert_eq!(store.by_email(&alice.email).await.unwrap(), None);
    let err = store.set_email(alice.id, &bob.email).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict), "{err:?}");
    assert_eq!(store.by_id(alice.id).await.unwrap().unwrap().email, new);
    assert!(
        !store
            .set_email(user("x@example.com").id, &alice.email)
            .await
            .unwrap()
    );
}
