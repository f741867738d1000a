//! The store contracts, written once.
//!
//! `sessions`, `users`, `audit`, `tokens`, `tickets` and `outbox` hold the checks of one trait each, as
//! `pub async fn check(store: Arc<dyn Trait>)`; [`contract_tests!`] runs
//! them on a backend. Below: the fixtures the checks (and the backend
//! files) build their records with.

pub mod apikeys;
pub mod audit;
pub mod outbox;
pub mod sessions;
pub mod tickets;
pub mod tokens;
pub mod users;

use std::time::Duration;

use serde_json::{Map, Value};
use tessera_core::{
    ChainKey, Email, NewUser, PasswordHash, Role, RotationKey, Session, SessionId, SessionMeta,
    SessionPolicy, Timestamp, User, UserId, UserStore,
};

pub fn user(email: &str) -> User {
    NewUser {
        email: Email::parse(email).unwrap(),
        roles: vec![Role::parse("member").unwrap()],
        password_hash: PasswordHash::from_trusted(
            "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA".into(),
        ),
        email_verified: false,
    }
    .into_user(Timestamp::now())
}

pub fn policy() -> SessionPolicy {
    SessionPolicy::new(Duration::from_secs(600), Duration::from_secs(3600)).unwrap()
}

pub fn start(user: &User, now: Timestamp) -> Session {
    start_with_id(user, now).1
}

/// A new session and its secret id (for deriving successors).
pub fn start_with_id(user: &User, now: Timestamp) -> (SessionId, Session) {
    policy().start(user, meta(), now)
}

/// The client facts every test session records.
pub fn meta() -> SessionMeta {
    SessionMeta {
        ip: Some("192.0.2.7".into()),
        user_agent: Some("conformance/1.0".into()),
    }
}

/// A fresh rotation key, as a server derives it from its chain key.
pub fn rotation_key() -> RotationKey {
    RotationKey::derive(&ChainKey::generate())
}

pub fn object(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap()
}

/// Runs the checks of one contract on a backend. The list of each
/// contract's checks is kept here, once; a check left out of its list is
/// dead code, which the lint run refuses.
///
/// - `contract_tests!(sessions, make())` defines `mod session_store` with
///   one `#[tokio::test]` per check, each on a fresh store from `make()`: an
///   expression giving `(Arc<Store>, guard)`, where the guard (a temporary
///   directory, a database, a key prefix) lives until the test ends. Likewise
///   `tokens` (`mod token_store`), `users` (`mod user_store`) and
///   `apikeys` (`mod api_key_store`). A failure
///   names the backend and the clause.
/// - `contract_tests!(sessions, in_sequence: make())` runs the checks one
///   after the other within the current test, naming each as it starts, for
///   a backend too expensive to set up per check (a Redis Cluster). Here
///   `make()` gives just the `Arc<Store>`.
macro_rules! contract_tests {
    (sessions, $($how:tt)+) => {
        $crate::contract::contract_tests!(@run sessions, session_store, SessionStore, [$($how)+]:
            load_returns_what_create_stored,
            unknown_ids_load_as_none,
            expired_sessions_load_as_none_before_any_purge,
            touch_moves_expiry_and_reports_missing_sessions,
            merge_data_follows_json_merge_patch,
            merge_data_refuses_to_grow_past_the_limit,
            merge_data_on_a_missing_session_is_none,
            concurrent_merges_lose_no_patch,
            rotate_replaces_the_session_exactly_once,
            a_rotated_id_names_its_successor_within_the_grace,
            a_rotated_id_is_refused_once_the_grace_has_passed,
            concurrent_rotations_to_one_successor_converge,
            ending_the_successor_ends_its_predecessor,
            the_predecessor_ends_when_its_successor_expires,
            without_a_grace_the_old_id_stops_working_at_once,
            an_alias_of_an_alias_names_nothing,
            rotating_an_unknown_id_is_false_and_stores_nothing,
            delete_reports_whether_the_session_existed,
            per_user_listing_sees_only_that_users_live_sessions,
            delete_by_handle_only_touches_the_owners_session,
            delete_all_for_user_ends_every_session_of_that_user,
            user_copy_changes_reach_live_sessions_and_flag_rotation,
            purge_removes_only_expired_sessions,
            rotation_keeps_changes_made_since_the_session_was_read,
            a_create_past_the_cap_ends_the_oldest_sessions,
            expired_sessions_do_not_count_against_the_cap,
            concurrent_creates_never_pass_the_cap,
            ping_answers,
        );
    };
    (tokens, $($how:tt)+) => {
        $crate::contract::contract_tests!(@run tokens, token_store, TokenStore, [$($how)+]:
            families_load_as_stored_until_they_expire,
            advancing_is_a_compare_and_set_on_the_generation,
            families_end_one_by_one_or_per_user,
            revocations_are_kept_until_they_lapse,
            past_the_cap_the_oldest_families_of_the_user_end,
            expired_families_do_not_count_against_the_cap,
            concurrent_family_creates_never_pass_the_cap,
            past_the_cap_the_oldest_sealed_revocations_collapse_into_a_cutoff,
            lapsed_sealed_revocations_do_not_count_against_the_cap,
            a_users_live_families_are_listed_oldest_first,
        );
    };
    (users, $($how:tt)+) => {
        $crate::contract::contract_tests!(@run users, user_store, UserStore, [$($how)+]:
            users_are_found_by_email_and_id,
            duplicate_emails_conflict,
            list_is_ordered_by_email,
            updates_change_one_field_and_report_unknown_users,
            pages_see_every_matching_user_once_in_order,
            pages_have_no_gaps_when_users_come_and_go,
            an_email_prefix_is_literal,
            delete_removes_only_that_user,
            set_email_moves_the_address_and_refuses_a_taken_one,
        );
    };
    (apikeys, $($how:tt)+) => {
        $crate::contract::contract_tests!(@run apikeys, api_key_store, ApiKeyStore, [$($how)+]:
            keys_load_as_stored_and_ids_are_unique,
            a_deleted_key_is_gone,
            touch_changes_only_last_used,
        );
    };
    (tickets, $($how:tt)+) => {
        $crate::contract::contract_tests!(@run tickets, ticket_store, TicketStore, [$($how)+]:
            a_ticket_is_redeemed_once_with_what_was_stored,
            a_ticket_is_not_redeemed_for_another_purpose,
            expired_tickets_are_not_redeemed,
            concurrent_redemptions_give_the_ticket_to_exactly_one,
            revoking_ends_only_that_users_tickets_of_that_purpose,
            purge_removes_only_expired_tickets,
        );
    };
    (outbox, $($how:tt)+) => {
        $crate::contract::contract_tests!(@run outbox, outbox, Outbox, [$($how)+]:
            an_enqueued_message_is_claimed_with_its_body,
            nothing_is_claimed_before_it_is_due,
            claims_take_the_oldest_first_up_to_the_limit,
            a_claimed_message_is_claimed_again_only_after_its_lease,
            a_sent_message_keeps_no_body,
            a_failed_attempt_is_retried_at_the_given_time,
            a_message_given_up_is_undeliverable_and_keeps_no_body,
            purge_removes_only_finished_messages_before_the_cutoff,
            concurrent_claimers_never_get_the_same_message,
        );
    };
    (audit, $($how:tt)+) => {
        $crate::contract::contract_tests!(@run audit, audit_log, UserStore, [$($how)+]:
            every_field_round_trips,
            pages_are_newest_first_by_default,
            filters_select_by_user_kind_and_time,
            pages_have_no_duplicates_or_gaps_while_events_are_appended,
            a_follower_sees_every_concurrent_append_once,
            retention_removes_only_older_events_and_ids_are_never_reused,
        );
    };
    (@run $checks:ident, $tests:ident, $trait:ident, [in_sequence: $make:expr]: $($check:ident,)+) => {
        $(
            eprintln!("{}::{}", stringify!($checks), stringify!($check));
            let store: std::sync::Arc<dyn tessera_core::$trait> = $make;
            $crate::contract::$checks::$check(store).await;
        )+
    };
    (@run $checks:ident, $tests:ident, $trait:ident, [$make:expr]: $($check:ident,)+) => {
        mod $tests {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let (store, _guard) = $make;
                    let store: std::sync::Arc<dyn tessera_core::$trait> = store;
                    $crate::contract::$checks::$check(store).await;
                }
            )+
        }
    };
}
pub(crate) use contract_tests;

/// Addresses as the rules before migration 6 (SQLite) / 3 (PostgreSQL)
/// stored them (trimmed, lower-cased), oldest first: five spellings of one
/// address, a zero-width space and a BOM the new rules refuse, and a plain
/// address. Migrating gives the first the canonical spelling
/// [`OLD_CANONICAL`] and leaves the rest as they were.
pub const OLD_SPELLINGS: &[&str] = &[
    "jose\u{301}@b\u{fc}cher.example",
    "jos\u{e9}@b\u{fc}cher.example",
    "jos\u{200b}\u{e9}@b\u{fc}cher.example",
    "\u{ff4a}\u{ff4f}\u{ff53}\u{e9}@b\u{fc}cher.example",
    "jos\u{e9}@b\u{fc}cher.example.",
    "alice@example.com",
    "\u{feff}bob@example.com",
];

/// The canonical spelling of the first five [`OLD_SPELLINGS`].
pub const OLD_CANONICAL: &str = "jos\u{e9}@xn--bcher-kva.example";

/// Checks a store after the migration of [`OLD_SPELLINGS`] (ids in order).
pub async fn check_renormalised(store: &dyn UserStore, ids: &[UserId]) {
    let canonical = Email::parse(OLD_CANONICAL).unwrap();
    let holder = store.by_email(&canonical).await.unwrap().unwrap();
    assert_eq!(
        holder.id, ids[0],
        "the oldest account has the canonical spelling"
    );
    for (id, old) in ids.iter().zip(OLD_SPELLINGS).skip(1) {
        let user = store.by_id(*id).await.unwrap().unwrap();
        assert_eq!(user.email.as_str(), *old, "a collision keeps its spelling");
    }
    // Every spelling a client may type reaches the one account.
    for typed in [
        "JOSE\u{301}@B\u{dc}CHER.EXAMPLE",
        "jos\u{e9}@xn--bcher-kva.example.",
    ] {
        let email = Email::parse(typed).unwrap();
        assert_eq!(store.by_email(&email).await.unwrap().unwrap().id, ids[0]);
    }
    let listed = store.list().await.unwrap();
    assert_eq!(listed.len(), OLD_SPELLINGS.len());
    let plan = tessera_core::renormalise(
        &listed
            .iter()
            .map(|u| tessera_core::StoredAddress {
                id: u.id,
                email: u.email.as_str().to_owned(),
                created_at: u.created_at,
            })
            .collect::<Vec<_>>(),
    );
    assert!(plan.updates.is_empty(), "{:?}", plan.updates);
    let mut reported: Vec<_> = plan.collisions.iter().map(|c| c.user).collect();
    reported.sort();
    let mut expected = vec![ids[1], ids[2], ids[3], ids[4], ids[6]];
    expected.sort();
    assert_eq!(reported, expected);
}
