//! Checks of the `ApiKeyStore` contract.

use std::sync::Arc;
use std::time::Duration;

use tessera_core::{ApiKey, ApiKeyStore, Role, StoreError, Timestamp};

fn key(name: &str, created: Timestamp) -> ApiKey {
    let expires = Some(created.plus(Duration::from_secs(3600)));
    let roles = vec![
        Role::parse("support").unwrap(),
        Role::parse("admin").unwrap(),
    ];
    ApiKey::generate(name, roles, expires, created).unwrap().0
}

pub async fn keys_load_as_stored_and_ids_are_unique(store: Arc<dyn ApiKeyStore>) {
    let now = Timestamp::from_unix_millis(1_700_000_000_000);
    let first = key("ci", now);
    store.create_api_key(&first).await.unwrap();
    assert_eq!(store.api_key(&first.id).await.unwrap(), Some(first.clone()));
    let names: Vec<&str> = first.roles.iter().map(Role::as_str).collect();
    assert_eq!(names, ["admin", "support"]);
    let mut twin = key("other", now);
    twin.id = first.id.clone();
    let err = store.create_api_key(&twin).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict), "{err:?}");
    let mut forever = key("provisioning", now.plus(Duration::from_millis(1)));
    forever.expires_at = None;
    store.create_api_key(&forever).await.unwrap();
    assert_eq!(
        store.api_key(&forever.id).await.unwrap(),
        Some(forever.clone())
    );
    assert_eq!(
        store.list_api_keys().await.unwrap(),
        [first, forever],
        "oldest first"
    );
    let unknown = key("unknown", now);
    assert_eq!(store.api_key(&unknown.id).await.unwrap(), None);
}

pub async fn a_deleted_key_is_gone(store: Arc<dyn ApiKeyStore>) {
    let now = Timestamp::now();
    let (a, b) = (key("a", now), key("b", now));
    store.create_api_key(&a).await.unwrap();
    store.create_api_key(&b).await.unwrap();
    assert!(store.delete_api_key(&a.id).await.unwrap());
    assert!(!store.delete_api_key(&a.id).await.unwrap());
    assert_eq!(store.api_key(&a.id).await.unwrap(), None);
    assert!(!store.touch_api_key(&a.id, now).await.unwrap());
    assert_eq!(store.list_api_keys().await.unwrap(), [b]);
}

pub async fn touch_changes_only_last_used(store: Arc<dyn ApiKeyStore>) {
    let now = Timestamp::from_unix_millis(1_700_000_000_000);
    let k = key("ci", now);
    store.create_api_key(&k).await.unwrap();
    let used = now.plus(Duration::from_secs(61));
    assert!(store.touch_api_key(&k.id, used).await.unwrap());
    let loaded = store.api_key(&k.id).await.unwrap().unwrap();
    assert_eq!(loaded.last_used, Some(used));
    assert_eq!(
        ApiKey {
            last_used: None,
            ..loaded
        },
        k
    );
}
