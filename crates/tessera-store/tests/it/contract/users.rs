//! Checks of the `UserStore` contract.

use std::sync::Arc;

use tessera_core::{Email, PasswordHash, Role, StoreError, UserStore};

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
