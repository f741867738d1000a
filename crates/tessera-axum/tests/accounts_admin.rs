//! The account changes the admin API added (create, e-mail, verified flag,
//! by-id roles and disable, delete): one audit event each, with the
//! caller's context, and no address in it; deletion ends every credential.

use std::net::IpAddr;
use std::sync::Arc;

use tessera_axum::{AppConfig, AuditContext, AuditTrail};
use tessera_core::{
    Actor, AuditKind, AuditQuery, Email, NewUser, PasswordHash, PerUserCap, Role, SessionMeta,
    SessionStore, Timestamp, TokenStore, UserStore,
};
use tessera_store::MemoryStore;

#[tokio::test]
async fn each_admin_change_records_one_event_and_deletion_ends_the_sessions() {
    let store = Arc::new(MemoryStore::default());
    let config = AppConfig::default();
    let revocations = config.revocations(store.clone() as Arc<dyn TokenStore>);
    let accounts = config.accounts(
        store.clone(),
        store.clone(),
        Arc::clone(&revocations),
        AuditTrail::direct(store.clone()),
    );
    let context = AuditContext {
        actor: Actor::ApiKey("k".repeat(16)),
        ip: Some("198.51.100.7".parse::<IpAddr>().unwrap()),
        user_agent: Some("provisioning".into()),
        session: None,
        request_id: Some("req-7".into()),
    };
    let hash = PasswordHash::from_trusted("$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA".into());
    let new_user = || NewUser {
        email: Email::parse("erin@example.com").unwrap(),
        roles: vec![],
        password_hash: hash.clone(),
        email_verified: false,
    };
    let user = accounts
        .create_user(&context, new_user())
        .await
        .unwrap()
        .unwrap();
    assert!(
        accounts
            .create_user(&context, new_user())
            .await
            .unwrap()
            .is_none(),
        "the address is taken"
    );
    let (_, session) = config
        .policy
        .start(&user, SessionMeta::default(), Timestamp::now());
    SessionStore::create(store.as_ref(), &session, PerUserCap::UNBOUNDED)
        .await
        .unwrap();
    let moved = Email::parse("erin.new@example.com").unwrap();
    let change = accounts
        .set_email(&context, user.id, &moved)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (change.user.email.as_str(), change.sessions_affected),
        (moved.as_str(), 1)
    );
    let cutoff = revocations.list().cutoff(user.id);
    assert!(
        cutoff.is_some(),
        "tokens and sealed cookies of the old address are refused"
    );
    accounts
        .set_email_verified(&context, user.id, true)
        .await
        .unwrap()
        .unwrap();
    accounts
        .set_roles_of(&context, user.id, &[Role::parse("ops").unwrap()])
        .await
        .unwrap()
        .unwrap();
    accounts
        .set_disabled_of(&context, user.id, true)
        .await
        .unwrap()
        .unwrap();
    let (_, again) = config
        .policy
        .start(&user, SessionMeta::default(), Timestamp::now());
    SessionStore::create(store.as_ref(), &again, PerUserCap::UNBOUNDED)
        .await
        .unwrap();
    let deleted = accounts
        .delete_user(&context, user.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(deleted.sessions_affected, 1);
    assert!(
        store
            .list_for_user(user.id, Timestamp::now())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.by_id(user.id).await.unwrap(), None);
    assert!(
        accounts
            .delete_user(&context, user.id)
            .await
            .unwrap()
            .is_none()
    );

    let page = store.audit_events(&AuditQuery::latest(100)).await.unwrap();
    let kinds: Vec<AuditKind> = page.events.iter().rev().map(|r| r.event.kind).collect();
    assert_eq!(
        kinds,
        [
            AuditKind::UserCreated,
            AuditKind::UserUpdated,
            // Whoever marks an address verified, the event says so.
            AuditKind::EmailVerified,
            AuditKind::RolesChanged,
            AuditKind::UserDisabled,
            AuditKind::UserDeleted,
        ]
    );
    for record in &page.events {
        let event = &record.event;
        assert_eq!(event.actor, context.actor);
        assert_eq!(event.subject, Some(user.id));
        assert_eq!(event.ip, context.ip);
        assert_eq!(
            event.request_id.as_deref(),
            Some("req-7"),
            "stored and read back"
        );
        assert!(!event.detail.contains("erin"), "{}", event.detail);
    }
}
