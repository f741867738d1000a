//! Checks of the `TicketStore` contract.

use std::sync::Arc;
use std::time::Duration;

use tessera_core::{Email, Role, Ticket, TicketPurpose, TicketStore, Timestamp, UserId};

fn ticket(purpose: TicketPurpose, user: Option<UserId>, now: Timestamp, ttl_ms: u64) -> Ticket {
    Ticket::issue(
        purpose,
        user,
        Email::parse("alice@example.com").unwrap(),
        vec![Role::parse("member").unwrap()],
        now,
        Duration::from_millis(ttl_ms),
    )
    .1
}

pub async fn a_ticket_is_redeemed_once_with_what_was_stored(store: Arc<dyn TicketStore>) {
    let now = Timestamp::now();
    let t = ticket(TicketPurpose::Invite, None, now, 60_000);
    store.create_ticket(&t).await.unwrap();
    let redeemed = store
        .redeem_ticket(&t.hash, TicketPurpose::Invite, now)
        .await
        .unwrap();
    assert_eq!(redeemed.as_ref(), Some(&t), "redeemed as stored");
    assert_eq!(
        store
            .redeem_ticket(&t.hash, TicketPurpose::Invite, now)
            .await
            .unwrap(),
        None,
        "a second redemption gets nothing"
    );
}

pub async fn a_ticket_is_not_redeemed_for_another_purpose(store: Arc<dyn TicketStore>) {
    let now = Timestamp::now();
    let t = ticket(
        TicketPurpose::VerifyEmail,
        Some(UserId::generate()),
        now,
        60_000,
    );
    store.create_ticket(&t).await.unwrap();
    for other in [
        TicketPurpose::ResetPassword,
        TicketPurpose::Invite,
        TicketPurpose::ChangeEmail,
    ] {
        assert_eq!(
            store.redeem_ticket(&t.hash, other, now).await.unwrap(),
            None
        );
    }
    assert!(
        store
            .redeem_ticket(&t.hash, TicketPurpose::VerifyEmail, now)
            .await
            .unwrap()
            .is_some(),
        "a wrong-purpose attempt leaves the ticket usable for its own"
    );
}

pub async fn expired_tickets_are_not_redeemed(store: Arc<dyn TicketStore>) {
    let now = Timestamp::now();
    let t = ticket(
        TicketPurpose::ResetPassword,
        Some(UserId::generate()),
        now,
        1_000,
    );
    store.create_ticket(&t).await.unwrap();
    let later = now.plus(Duration::from_millis(1_000));
    assert_eq!(
        store
            .redeem_ticket(&t.hash, TicketPurpose::ResetPassword, later)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .redeem_ticket(&t.hash, TicketPurpose::ResetPassword, now)
            .await
            .unwrap(),
        None,
        "an expired ticket is gone once tried"
    );
}

pub async fn concurrent_redemptions_give_the_ticket_to_exactly_one(store: Arc<dyn TicketStore>) {
    let now = Timestamp::now();
    let t = ticket(
        TicketPurpose::ResetPassword,
        Some(UserId::generate()),
        now,
        60_000,
    );
    store.create_ticket(&t).await.unwrap();
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let store = Arc::clone(&store);
            let hash = t.hash;
            tokio::spawn(async move {
                store
                    .redeem_ticket(&hash, TicketPurpose::ResetPassword, now)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut winners = 0;
    for task in tasks {
        winners += usize::from(task.await.unwrap().is_some());
    }
    assert_eq!(winners, 1);
}

pub async fn revoking_ends_only_that_users_tickets_of_that_purpose(store: Arc<dyn TicketStore>) {
    let now = Timestamp::now();
    let (alice, bob) = (UserId::generate(), UserId::generate());
    let a1 = ticket(TicketPurpose::ResetPassword, Some(alice), now, 60_000);
    let a2 = ticket(TicketPurpose::ResetPassword, Some(alice), now, 60_000);
    let a_verify = ticket(TicketPurpose::VerifyEmail, Some(alice), now, 60_000);
    let b1 = ticket(TicketPurpose::ResetPassword, Some(bob), now, 60_000);
    for t in [&a1, &a2, &a_verify, &b1] {
        store.create_ticket(t).await.unwrap();
    }
    assert_eq!(
        store
            .revoke_tickets(alice, TicketPurpose::ResetPassword)
            .await
            .unwrap(),
        2
    );
    for (t, alive) in [(&a1, false), (&a2, false), (&a_verify, true), (&b1, true)] {
        let got = store.redeem_ticket(&t.hash, t.purpose, now).await.unwrap();
        assert_eq!(got.is_some(), alive, "{:?}", t.purpose);
    }
}

pub async fn purge_removes_only_expired_tickets(store: Arc<dyn TicketStore>) {
    let now = Timestamp::now();
    let short = ticket(TicketPurpose::Invite, None, now, 1_000);
    let long = ticket(TicketPurpose::Invite, None, now, 60_000);
    store.create_ticket(&short).await.unwrap();
    store.create_ticket(&long).await.unwrap();
    let later = now.plus(Duration::from_millis(1_000));
    assert_eq!(store.purge_expired_tickets(later).await.unwrap(), 1);
    assert!(
        store
            .redeem_ticket(&long.hash, TicketPurpose::Invite, later)
            .await
            .unwrap()
            .is_some()
    );
}
