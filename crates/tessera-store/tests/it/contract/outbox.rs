//! Checks of the `Outbox` contract (the mail queue).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tessera_core::{
    ClaimToken, Email, MessageState, Notice, Outbox, OutboxStats, OutgoingMail, Retry, Timestamp,
};

const LEASE: Duration = Duration::from_secs(60);

fn t(seconds: i64) -> Timestamp {
    Timestamp::from_unix_millis(1_800_000_000_000 + seconds * 1000)
}

pub fn reset_mail(to: &str, token: &str) -> OutgoingMail {
    OutgoingMail {
        to: Email::parse(to).unwrap(),
        notice: Notice::ResetPassword {
            link: format!("https://auth.example/reset?token={token}"),
        },
    }
}

pub async fn an_enqueued_message_is_claimed_with_its_body(store: Arc<dyn Outbox>) {
    let mail = reset_mail("alice@example.com", "t1");
    store.enqueue(&mail, t(0)).await.unwrap();
    assert_eq!(
        store.stats().await.unwrap(),
        OutboxStats {
            pending: 1,
            undeliverable: 0
        }
    );
    assert_eq!(store.next_due().await.unwrap(), Some(t(0)));
    let token = ClaimToken::random();
    let claimed = store.claim(t(1), LEASE, 10, token).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let c = &claimed[0];
    assert_eq!(c.mail, mail);
    assert_eq!(c.attempts, 1);
    assert_eq!(c.token, token);
    assert_eq!(c.enqueued_at, t(0));
    assert_eq!(c.lease_until, t(61));
    let record = store.record(c.id).await.unwrap().unwrap();
    assert_eq!(record.kind, "reset_password");
    assert_eq!(record.state, MessageState::Pending);
    assert_eq!(record.mail, Some(mail));
    // While claimed, it is due again when the lease ends.
    assert_eq!(store.next_due().await.unwrap(), Some(t(61)));
}

pub async fn nothing_is_claimed_before_it_is_due(store: Arc<dyn Outbox>) {
    store
        .enqueue(&reset_mail("a@example.com", "x"), t(10))
        .await
        .unwrap();
    assert!(
        store
            .claim(t(9), LEASE, 10, ClaimToken::random())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .claim(t(10), LEASE, 10, ClaimToken::random())
            .await
            .unwrap()
            .len(),
        1
    );
}

pub async fn claims_take_the_oldest_first_up_to_the_limit(store: Arc<dyn Outbox>) {
    for i in 0..5 {
        store
            .enqueue(&reset_mail(&format!("u{i}@example.com"), "x"), t(i))
            .await
            .unwrap();
    }
    let first = store
        .claim(t(10), LEASE, 2, ClaimToken::random())
        .await
        .unwrap();
    let to: Vec<&str> = first.iter().map(|c| c.mail.to.as_str()).collect();
    assert_eq!(to, ["u0@example.com", "u1@example.com"]);
    let rest = store
        .claim(t(10), LEASE, 10, ClaimToken::random())
        .await
        .unwrap();
    assert_eq!(rest.len(), 3);
}

pub async fn a_claimed_message_is_claimed_again_only_after_its_lease(store: Arc<dyn Outbox>) {
    store
        .enqueue(&reset_mail("a@example.com", "x"), t(0))
        .await
        .unwrap();
    let first = store
        .claim(t(0), LEASE, 10, ClaimToken::random())
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    assert!(
        store
            .claim(t(59), LEASE, 10, ClaimToken::random())
            .await
            .unwrap()
            .is_empty(),
        "claimed again while the lease holds"
    );
    // The first sender died: after the lease another takes over.
    let second_token = ClaimToken::random();
    let second = store.claim(t(60), LEASE, 10, second_token).await.unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].id, first[0].id);
    assert_eq!(second[0].attempts, 2, "every claim is an attempt");
    // The first claim is stale now: it changes nothing.
    assert!(
        !store
            .mark_sent(first[0].id, first[0].token, t(61))
            .await
            .unwrap()
    );
    assert!(
        !store
            .mark_failed(first[0].id, first[0].token, "late", Retry::GiveUp, t(61))
            .await
            .unwrap()
    );
    assert_eq!(
        store.record(first[0].id).await.unwrap().unwrap().state,
        MessageState::Pending
    );
    assert!(
        store
            .mark_sent(second[0].id, second_token, t(62))
            .await
            .unwrap()
    );
}

pub async fn a_sent_message_keeps_no_body(store: Arc<dyn Outbox>) {
    store
        .enqueue(&reset_mail("alice@example.com", "SECRET-TOKEN"), t(0))
        .await
        .unwrap();
    let c = store
        .claim(t(0), LEASE, 10, ClaimToken::random())
        .await
        .unwrap()
        .remove(0);
    assert!(store.mark_sent(c.id, c.token, t(2)).await.unwrap());
    let record = store.record(c.id).await.unwrap().unwrap();
    assert_eq!(record.state, MessageState::Sent);
    assert_eq!(record.mail, None, "body and recipient erased");
    assert_eq!(record.kind, "reset_password");
    assert_eq!(record.attempts, 1);
    assert_eq!(record.finished_at, Some(t(2)));
    assert_eq!(store.stats().await.unwrap(), OutboxStats::default());
    assert_eq!(store.next_due().await.unwrap(), None);
    assert!(
        store
            .claim(t(1000), LEASE, 10, ClaimToken::random())
            .await
            .unwrap()
            .is_empty()
    );
    // Marking twice changes nothing.
    assert!(!store.mark_sent(c.id, c.token, t(3)).await.unwrap());
}

pub async fn a_failed_attempt_is_retried_at_the_given_time(store: Arc<dyn Outbox>) {
    store
        .enqueue(&reset_mail("a@example.com", "x"), t(0))
        .await
        .unwrap();
    let c = store
        .claim(t(0), LEASE, 10, ClaimToken::random())
        .await
        .unwrap()
        .remove(0);
    let long = format!("421 try later {}", "x".repeat(2000));
    assert!(
        store
            .mark_failed(c.id, c.token, &long, Retry::At(t(30)), t(1))
            .await
            .unwrap()
    );
    let record = store.record(c.id).await.unwrap().unwrap();
    assert_eq!(record.state, MessageState::Pending);
    assert!(record.mail.is_some(), "kept for the retry");
    assert_eq!(record.next_attempt_at, t(30));
    let error = record.last_error.unwrap();
    assert!(error.starts_with("421 try later"));
    assert!(error.len() <= tessera_core::mail::MAX_ERROR_LEN);
    assert_eq!(store.next_due().await.unwrap(), Some(t(30)));
    assert!(
        store
            .claim(t(29), LEASE, 10, ClaimToken::random())
            .await
            .unwrap()
            .is_empty()
    );
    let again = store
        .claim(t(30), LEASE, 10, ClaimToken::random())
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 2);
}

pub async fn a_message_given_up_is_undeliverable_and_keeps_no_body(store: Arc<dyn Outbox>) {
    store
        .enqueue(&reset_mail("a@example.com", "SECRET"), t(0))
        .await
        .unwrap();
    store
        .enqueue(&reset_mail("b@example.com", "other"), t(0))
        .await
        .unwrap();
    let c = store
        .claim(t(0), LEASE, 1, ClaimToken::random())
        .await
        .unwrap()
        .remove(0);
    assert!(
        store
            .mark_failed(c.id, c.token, "550 no such user", Retry::GiveUp, t(5))
            .await
            .unwrap()
    );
    let record = store.record(c.id).await.unwrap().unwrap();
    assert_eq!(record.state, MessageState::Undeliverable);
    assert_eq!(record.mail, None);
    assert_eq!(record.finished_at, Some(t(5)));
    assert_eq!(record.last_error.as_deref(), Some("550 no such user"));
    assert_eq!(
        store.stats().await.unwrap(),
        OutboxStats {
            pending: 1,
            undeliverable: 1
        }
    );
}

pub async fn purge_removes_only_finished_messages_before_the_cutoff(store: Arc<dyn Outbox>) {
    for i in 0..3 {
        store
            .enqueue(&reset_mail(&format!("u{i}@example.com"), "x"), t(0))
            .await
            .unwrap();
    }
    let claimed = store
        .claim(t(0), LEASE, 2, ClaimToken::random())
        .await
        .unwrap();
    assert!(
        store
            .mark_sent(claimed[0].id, claimed[0].token, t(10))
            .await
            .unwrap()
    );
    assert!(
        store
            .mark_failed(claimed[1].id, claimed[1].token, "x", Retry::GiveUp, t(20))
            .await
            .unwrap()
    );
    assert_eq!(store.purge(t(10)).await.unwrap(), 0);
    assert_eq!(store.purge(t(15)).await.unwrap(), 1);
    assert!(store.record(claimed[0].id).await.unwrap().is_none());
    assert_eq!(store.purge(t(1000)).await.unwrap(), 1);
    assert_eq!(
        store.stats().await.unwrap(),
        OutboxStats {
            pending: 1,
            undeliverable: 0
        },
        "pending messages are never purged"
    );
}

pub async fn concurrent_claimers_never_get_the_same_message(store: Arc<dyn Outbox>) {
    const MESSAGES: usize = 60;
    for i in 0..MESSAGES {
        store
            .enqueue(&reset_mail(&format!("u{i}@example.com"), "x"), t(0))
            .await
            .unwrap();
    }
    let claimers: Vec<_> = (0..6)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let batch = store
                        .claim(t(1), LEASE, 3, ClaimToken::random())
                        .await
                        .unwrap();
                    if batch.is_empty() {
                        return mine;
                    }
                    mine.extend(batch.into_iter().map(|c| c.id));
                }
            })
        })
        .collect();
    let mut seen = HashSet::new();
    let mut total = 0;
    for claimer in claimers {
        for id in claimer.await.unwrap() {
            total += 1;
            assert!(seen.insert(id), "message {id} claimed twice");
        }
    }
    assert_eq!(total, MESSAGES);
}

/// Two stores on one database (two nodes, or two processes on one SQLite
/// file) claiming at once never get the same message. Not in the list run
/// per backend: each durable backend's file calls it with two stores.
pub async fn two_stores_never_claim_the_same_message(a: Arc<dyn Outbox>, b: Arc<dyn Outbox>) {
    const MESSAGES: usize = 80;
    for i in 0..MESSAGES {
        let store = if i % 2 == 0 { &a } else { &b };
        store
            .enqueue(&reset_mail(&format!("u{i}@example.com"), "x"), t(0))
            .await
            .unwrap();
    }
    let claimers: Vec<_> = [&a, &b, &a, &b]
        .into_iter()
        .map(|store| {
            let store = Arc::clone(store);
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let batch = store
                        .claim(t(1), LEASE, 4, ClaimToken::random())
                        .await
                        .unwrap();
                    if batch.is_empty() {
                        return mine;
                    }
                    mine.extend(batch.into_iter().map(|c| c.id));
                }
            })
        })
        .collect();
    let mut seen = HashSet::new();
    for claimer in claimers {
        for id in claimer.await.unwrap() {
            assert!(seen.insert(id), "message {id} claimed by two stores");
        }
    }
    assert_eq!(seen.len(), MESSAGES);
}
