//! `Accounts` records one audit event per change, with the caller's
//! context (who, from where), about the user, and no address in it.

use std::net::IpAddr;
use std::sync::Arc;

use tessera_axum::{AppConfig, AuditContext, AuditTrail};
use tessera_core::{
    Actor, AuditKind, AuditQuery, Email, NewUser, PasswordHash, Role, Timestamp, TokenStore,
    UserId, UserStore,
};
use tessera_store::MemoryStore;

/// Every change records exactly one event of its kind, with the
/// context's actor and address, about the user.
#[tokio::test]
async fn each_change_records_one_event_with_its_context() {
    let store = Arc::new(MemoryStore::default());
    let config = AppConfig::default();
    let accounts = config.accounts(
        store.clone(),
        store.clone(),
        config.revocations(store.clone() as Arc<dyn TokenStore>),
        AuditTrail::direct(store.clone()),
    );
    let hash = PasswordHash::from_trusted("$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA".into());
    let user = NewUser {
        email: Email::parse("dora@example.com").unwrap(),
        roles: vec![],
        password_hash: hash.clone(),
        email_verified: true,
    }
    .into_user(Timestamp::now());
    UserStore::create(store.as_ref(), &user).await.unwrap();
    let admin = UserId::generate();
    let context = AuditContext {
        actor: Actor::User(admin),
        ip: Some("198.51.100.7".parse::<IpAddr>().unwrap()),
        user_agent: Some("admin-console".into()),
        session: Some("h".into()),
        request_id: None,
    };
    let email = &user.email;
    accounts
        .set_roles(&context, email, &[Role::parse("editor").unwrap()])
        .await
        .unwrap()
        .unwrap();
    accounts.set_disabled(&context, email, true).await.unwrap();
    accounts.set_disabled(&context, email, false).await.unwrap();
    accounts.set_password(&context, email, &hash).await.unwrap();
    accounts.end_everything(&context, user.id).await.unwrap();
    // Unknown users: nothing changes, nothing is recorded.
    let nobody = Email::parse("nobody@example.com").unwrap();
    assert!(
        accounts
            .set_disabled(&context, &nobody, true)
            .await
            .unwrap()
            .is_none()
    );

    let page = store.audit_events(&AuditQuery::latest(100)).await.unwrap();
    let kinds: Vec<AuditKind> = page.events.iter().rev().map(|r| r.event.kind).collect();
    assert_eq!(
        kinds,
        [
            AuditKind::RolesChanged,
            AuditKind::UserDisabled,
            AuditKind::UserEnabled,
            AuditKind::PasswordChanged,
            AuditKind::SessionEnded,
        ]
    );
    for record in &page.events {
        let event = &record.event;
        assert_eq!(event.actor, Actor::User(admin));
        assert_eq!(event.subject, Some(user.id));
        assert_eq!(event.ip, context.ip);
        assert_eq!(event.user_agent.as_deref(), Some("admin-console"));
        assert!(!event.detail.contains("dora"), "{}", event.detail);
    }
    assert_eq!(
        page.events.last().unwrap().event.detail,
        "roles: editor (were: -)"
    );
}
