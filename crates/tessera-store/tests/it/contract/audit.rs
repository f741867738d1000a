//! Checks of the audit log (`UserStore::record_audit`, `audit_events`,
//! `purge_audit`).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tessera_core::{
    Actor, AuditEvent, AuditId, AuditKind, AuditOrder, AuditQuery, Timestamp, UserId, UserStore,
};

fn event(kind: AuditKind, at: i64) -> AuditEvent {
    AuditEvent::new(kind, Actor::System).at(Timestamp::from_unix_millis(at))
}

/// Reads the whole log oldest first, page by page.
async fn everything(store: &dyn UserStore) -> Vec<(AuditId, AuditEvent)> {
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .audit_events(&AuditQuery {
                after,
                order: AuditOrder::OldestFirst,
                ..AuditQuery::latest(100)
            })
            .await
            .unwrap();
        all.extend(page.events.into_iter().map(|r| (r.id, r.event)));
        match page.next {
            Some(next) => after = Some(next),
            None => return all,
        }
    }
}

pub async fn every_field_round_trips(store: Arc<dyn UserStore>) {
    let user = UserId::generate();
    let admin = UserId::generate();
    let full = AuditEvent::new(AuditKind::RolesChanged, Actor::User(admin))
        .at(Timestamp::from_unix_millis(1_700_000_000_123))
        .subject(user)
        .ip("2001:db8::7".parse::<std::net::IpAddr>().unwrap())
        .user_agent(Some("Mozilla/5.0 (X11; Linux x86_64) ünïcode"))
        .session(Some("h4ndle-Of-The-Session"))
        .request_id(Some("0123456789abcdef-req:1.x"))
        .detail("roles: admin, member");
    store.record_audit(&full).await.unwrap();
    // Every kind and every kind of actor, with nothing optional set.
    let actors = [
        Actor::Anonymous,
        Actor::User(user),
        Actor::ApiKey("tsk_public_1".into()),
        Actor::Cli,
        Actor::System,
    ];
    let mut bare = Vec::new();
    for (i, kind) in AuditKind::ALL.iter().enumerate() {
        let actor = actors[i % actors.len()].clone();
        bare.push(AuditEvent::new(*kind, actor).at(Timestamp::from_unix_millis(i as i64)));
    }
    store.record_audit_batch(&bare).await.unwrap();
    let read: Vec<AuditEvent> = everything(store.as_ref())
        .await
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    let mut expected = vec![full];
    expected.extend(bare);
    assert_eq!(read, expected);
}

pub async fn pages_are_newest_first_by_default(store: Arc<dyn UserStore>) {
    for (i, kind) in [
        AuditKind::LoginFailed,
        AuditKind::LoginSucceeded,
        AuditKind::LoggedOut,
    ]
    .into_iter()
    .enumerate()
    {
        store
            .record_audit(&event(kind, 1_000 + i as i64))
            .await
            .unwrap();
    }
    let page = store.audit_events(&AuditQuery::latest(2)).await.unwrap();
    let kinds: Vec<AuditKind> = page.events.iter().map(|r| r.event.kind).collect();
    assert_eq!(kinds, [AuditKind::LoggedOut, AuditKind::LoginSucceeded]);
    assert!(page.events[0].id > page.events[1].id);
    assert_eq!(page.next, Some(page.events[1].id));
    let rest = store
        .audit_events(&AuditQuery {
            after: page.next,
            ..AuditQuery::latest(2)
        })
        .await
        .unwrap();
    let kinds: Vec<AuditKind> = rest.events.iter().map(|r| r.event.kind).collect();
    assert_eq!(kinds, [AuditKind::LoginFailed]);
    assert_eq!(rest.next, None, "the last page says so");
}

pub async fn filters_select_by_user_kind_and_time(store: Arc<dyn UserStore>) {
    let alice = UserId::generate();
    let bob = UserId::generate();
    let mut events = Vec::new();
    for i in 0..30_i64 {
        let kind = if i % 3 == 0 {
            AuditKind::LoginFailed
        } else {
            AuditKind::LoginSucceeded
        };
        let subject = if i % 2 == 0 { alice } else { bob };
        events.push(event(kind, 10_000 + i * 1_000).subject(subject));
    }
    events.push(event(AuditKind::LoginFailed, 50_000)); // no subject
    store.record_audit_batch(&events).await.unwrap();
    let select = |query: AuditQuery| {
        let store = Arc::clone(&store);
        async move {
            let page = store.audit_events(&query).await.unwrap();
            assert_eq!(page.next, None);
            page.events.into_iter().map(|r| r.event).collect::<Vec<_>>()
        }
    };
    let expect = |keep: &dyn Fn(&AuditEvent) -> bool| {
        let mut kept: Vec<AuditEvent> = events.iter().filter(|e| keep(e)).cloned().collect();
        kept.reverse();
        kept
    };
    assert_eq!(
        select(AuditQuery {
            user: Some(alice),
            ..AuditQuery::latest(500)
        })
        .await,
        expect(&|e| e.subject == Some(alice))
    );
    assert_eq!(
        select(AuditQuery {
            kind: Some(AuditKind::LoginFailed),
            ..AuditQuery::latest(500)
        })
        .await,
        expect(&|e| e.kind == AuditKind::LoginFailed)
    );
    let since = Timestamp::from_unix_millis(25_000);
    assert_eq!(
        select(AuditQuery {
            since: Some(since),
            ..AuditQuery::latest(500)
        })
        .await,
        expect(&|e| e.at >= since)
    );
    assert_eq!(
        select(AuditQuery {
            user: Some(bob),
            kind: Some(AuditKind::LoginFailed),
            since: Some(since),
            ..AuditQuery::latest(500)
        })
        .await,
        expect(&|e| e.subject == Some(bob) && e.kind == AuditKind::LoginFailed && e.at >= since)
    );
    assert!(
        select(AuditQuery {
            user: Some(UserId::generate()),
            ..AuditQuery::latest(500)
        })
        .await
        .is_empty()
    );
}

pub async fn pages_have_no_duplicates_or_gaps_while_events_are_appended(store: Arc<dyn UserStore>) {
    let first: Vec<AuditEvent> = (0..25)
        .map(|i| event(AuditKind::LoginFailed, i).detail(format!("old {i}")))
        .collect();
    store.record_audit_batch(&first).await.unwrap();
    // Newest first: the pages walk back through the 25 that were there,
    // whatever arrives meanwhile.
    let mut seen = Vec::new();
    let mut after = None;
    let mut appended = 0;
    loop {
        let page = store
            .audit_events(&AuditQuery {
                after,
                kind: Some(AuditKind::LoginFailed),
                ..AuditQuery::latest(7)
            })
            .await
            .unwrap();
        assert!(page.events.len() <= 7);
        seen.extend(page.events.iter().map(|r| r.event.detail.clone()));
        store
            .record_audit(
                &event(AuditKind::LoginFailed, 100 + appended).detail(format!("new {appended}")),
            )
            .await
            .unwrap();
        appended += 1;
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let expected: Vec<String> = (0..25).rev().map(|i| format!("old {i}")).collect();
    assert_eq!(seen, expected);
    // Oldest first, following the log: everything, each once, in order.
    let all = everything(store.as_ref()).await;
    assert_eq!(all.len(), 25 + appended as usize);
    let ids: Vec<AuditId> = all.iter().map(|(id, _)| *id).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(ids, sorted, "strictly increasing ids");
}

pub async fn a_follower_sees_every_concurrent_append_once(store: Arc<dyn UserStore>) {
    const WRITERS: usize = 4;
    const EACH: usize = 20;
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let store = Arc::clone(&store);
        writers.push(tokio::spawn(async move {
            for i in 0..EACH {
                let e = event(AuditKind::ApiKeyUsed, i as i64).detail(format!("{w}/{i}"));
                if i % 5 == 0 {
                    store
                        .record_audit_batch(&[e.clone(), e.detail(format!("{w}/{i}b"))])
                        .await
                        .unwrap();
                } else {
                    store.record_audit(&e).await.unwrap();
                }
            }
        }));
    }
    let total = WRITERS * (EACH + EACH / 5);
    let mut seen = Vec::new();
    let mut after = None;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while seen.len() < total {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} of {total} seen",
            seen.len()
        );
        let page = store
            .audit_events(&AuditQuery {
                after,
                order: AuditOrder::OldestFirst,
                ..AuditQuery::latest(5)
            })
            .await
            .unwrap();
        if let Some(last) = page.events.last() {
            after = Some(last.id);
        } else {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        seen.extend(page.events.into_iter().map(|r| r.event.detail));
    }
    for w in writers {
        w.await.unwrap();
    }
    let distinct: HashSet<&String> = seen.iter().collect();
    assert_eq!(distinct.len(), seen.len(), "no event twice");
    assert_eq!(seen.len(), total);
    // Nothing more arrives after the last one.
    let rest = store
        .audit_events(&AuditQuery {
            after,
            order: AuditOrder::OldestFirst,
            ..AuditQuery::latest(5)
        })
        .await
        .unwrap();
    assert!(rest.events.is_empty());
}

pub async fn retention_removes_only_older_events_and_ids_are_never_reused(
    store: Arc<dyn UserStore>,
) {
    for at in [1_000, 2_000, 3_000, 4_000] {
        store
            .record_audit(&event(AuditKind::LoginFailed, at))
            .await
            .unwrap();
    }
    assert_eq!(
        store
            .purge_audit(Timestamp::from_unix_millis(3_000))
            .await
            .unwrap(),
        2
    );
    let left: Vec<i64> = everything(store.as_ref())
        .await
        .iter()
        .map(|(_, e)| e.at.unix_millis())
        .collect();
    assert_eq!(left, [3_000, 4_000]);
    let last = everything(store.as_ref()).await.last().unwrap().0;
    assert_eq!(
        store
            .purge_audit(Timestamp::from_unix_millis(10_000))
            .await
            .unwrap(),
        2
    );
    assert!(everything(store.as_ref()).await.is_empty());
    store
        .record_audit(&event(AuditKind::LoginFailed, 11_000))
        .await
        .unwrap();
    let after = everything(store.as_ref()).await;
    assert_eq!(after.len(), 1);
    assert!(after[0].0 > last, "a purge does not make ids come back");
}
