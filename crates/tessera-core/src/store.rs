//! The storage contracts every backend implements.
//!
//! Backends live in `tessera-store` (memory, SQLite, Redis, PostgreSQL) and
//! all of them run one conformance suite. The contracts are written
//! so that a key-value store with TTLs can meet them: sessions are keyed by
//! [`SessionIdHash`], carry their own `expires_at`, and are indexed per user.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Map, Value};
use thiserror::Error;

use crate::apikey::{ApiKey, ApiKeyId};
use crate::audit::{AuditEvent, AuditPage, AuditQuery};
use crate::clock::Timestamp;
use crate::family::{FamilyId, TokenFamily};
use crate::password::PasswordHash;
use crate::secret::{SessionHandle, SessionIdHash};
use crate::session::{Session, UserCopy};
use crate::user::{Email, Role, User, UserId, UserPage, UserQuery};
use crate::user_cap::PerUserCap;

/// What a store can report. Deliberately narrow: callers decide policy.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The backend cannot be reached or did not answer in time. Callers fail
    /// closed (503), never treat this as "no session".
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A unique key (e.g. a user's e-mail) already exists.
    #[error("already exists")]
    Conflict,
    /// Session data would grow past the given size in bytes.
    #[error("session data would exceed {limit} bytes")]
    DataTooLarge {
        /// The limit in bytes of serialised JSON.
        limit: usize,
    },
    /// A stored record could not be decoded.
    #[error("corrupt record in store: {0}")]
    Corrupt(String),
}

/// Where sessions live.
///
/// Contract, checked by the conformance suite:
/// - `load` returns a session only while `now < expires_at`; an expired
///   session behaves as if it did not exist, purged or not.
/// - Every mutation is durable when it returns `Ok` (for durable backends).
/// - The per-user operations see exactly the user's live sessions.
/// - No user has more than the `cap` of the last `create` live sessions:
///   the create that would pass it ends their oldest, atomically.
/// - `rotate` and `merge_data` are atomic: two concurrent rotations of the
///   same old id never both succeed with different successors (with the
///   same successor they converge: all succeed, one session results), and
///   no patch is lost.
/// - A rotation may leave an *alias*: the old id hash names the successor
///   for a grace window (see `rotate`). An alias is not a session: it is
///   never listed, never counted, is purged with expired sessions and
///   names nothing once its successor has ended or expired, so no id works
///   longer than the grace after it was replaced, or past its session.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Short name of the backend, for logs and `/health`.
    fn backend(&self) -> &'static str;

    /// Whether sessions survive a restart of the process.
    fn is_durable(&self) -> bool;

    /// Stores a new session, keeping its user within `cap` live sessions:
    /// if the user would then have more, the oldest of their other
    /// sessions live at the new one's `created_at` (oldest by `created_at`,
    /// the login time) end in the same atomic step, so that `cap` remain,
    /// the new one among them. Concurrent creates for one user never leave
    /// more than `cap`.
    ///
    /// Returns the sessions that ended, oldest first (empty when none did),
    /// for the caller to log. They end as `delete` ends a session: every
    /// node and cache stops accepting them at once, and an alias naming
    /// one of them names nothing.
    async fn create(&self, session: &Session, cap: PerUserCap) -> Result<Vec<Session>, StoreError>;

    /// The live session with this id hash, if any. Shared, so that a
    /// backend holding sessions in memory can hand them out without copying.
    ///
    /// If no session has this hash but a rotation left it as an alias that
    /// is still within its window (`now` before its end), the alias's live
    /// successor; its `id_hash` then differs from `id`, which is how the
    /// caller knows the id it was given has been replaced. At most one alias
    /// is followed (an alias to an alias names nothing). A live session
    /// loaded by its own hash costs what it did without aliases: the alias
    /// is looked at only when no session has the hash.
    async fn load(
        &self,
        id: &SessionIdHash,
        now: Timestamp,
    ) -> Result<Option<Arc<Session>>, StoreError>;

    /// Records activity. Returns `false` if the session no longer exists.
    async fn touch(
        &self,
        id: &SessionIdHash,
        last_seen: Timestamp,
        expires_at: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Applies a JSON merge patch (RFC 7396) to the session's data and returns
    /// the result, or `None` if the session no longer exists.
    ///
    /// # Errors
    ///
    /// [`StoreError::DataTooLarge`] (and nothing changed) if the merged data
    /// would serialise to more than `limit` bytes.
    async fn merge_data(
        &self,
        id: &SessionIdHash,
        patch: &Map<String, Value>,
        limit: usize,
    ) -> Result<Option<Map<String, Value>>, StoreError>;

    /// Replaces the session `old` by `successor` (same user, fresh id), at
    /// the time `successor.last_seen`.
    /// Only the id, `last_seen` and `expires_at` come from `successor` (and
    /// the rotate flag is cleared): the copy of the user (e-mail, roles,
    /// `email_verified`) and data are what is stored, so a change made since
    /// the caller read the session is not undone.
    ///
    /// In the same atomic step, `old` becomes an alias of the successor
    /// (see `load`) until `min(grace_until, successor.expires_at)`; when
    /// that is not after `successor.last_seen` (no grace), no alias is kept
    /// and `old` stops working at once.
    ///
    /// Returns `true` if the session moved, and also, changing nothing, if
    /// `old` is already an alias within its window of this same successor
    /// and that successor is live (a concurrent rotation got there first:
    /// both callers hand out the same id). Returns `false`, storing nothing,
    /// otherwise (`old` unknown, or an alias of another successor).
    async fn rotate(
        &self,
        old: &SessionIdHash,
        successor: &Session,
        grace_until: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Ends one session. Returns whether it existed.
    async fn delete(&self, id: &SessionIdHash) -> Result<bool, StoreError>;

    /// The user's live sessions, oldest first.
    async fn list_for_user(&self, user: UserId, now: Timestamp)
    -> Result<Vec<Session>, StoreError>;

    /// Ends the user's session with this handle. Returns whether it existed.
    async fn delete_by_handle(
        &self,
        user: UserId,
        handle: &SessionHandle,
    ) -> Result<bool, StoreError>;

    /// Ends every session of the user. Returns how many there were.
    async fn delete_all_for_user(&self, user: UserId) -> Result<u64, StoreError>;

    /// Replaces the copy of the user (e-mail, roles, `email_verified`) on
    /// all of the user's live sessions and marks them for id rotation, in
    /// one atomic step per user: every node and cache serves the new copy
    /// from the next request on. Returns how many sessions changed.
    async fn update_user_copy(&self, user: UserId, copy: &UserCopy) -> Result<u64, StoreError>;

    /// Removes sessions expired at `now`, and aliases whose window has
    /// ended. Returns how many sessions.
    async fn purge_expired(&self, now: Timestamp) -> Result<u64, StoreError>;

    /// Checks that the backend answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Lookups of the store's in-process session cache so far, when it has
    /// one (SQLite's read cache, Redis's near-cache).
    fn cache_stats(&self) -> Option<CacheStats> {
        None
    }
}

/// Lookups of a session cache: found, or read from the store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Answered from the cache.
    pub hits: u64,
    /// Read from the store.
    pub misses: u64,
}

/// Where user accounts live.
///
/// Contract: e-mail addresses are unique (already normalised by [`Email`]);
/// updates to an unknown user return `Ok(false)`.
#[async_trait]
pub trait UserStore: Send + Sync + 'static {
    /// Short name of the backend.
    fn backend(&self) -> &'static str;

    /// Stores a new user.
    ///
    /// # Errors
    ///
    /// [`StoreError::Conflict`] if the e-mail address is taken.
    async fn create(&self, user: &User) -> Result<(), StoreError>;

    /// The user with this e-mail address.
    async fn by_email(&self, email: &Email) -> Result<Option<User>, StoreError>;

    /// The user with this id.
    async fn by_id(&self, id: UserId) -> Result<Option<User>, StoreError>;

    /// All users, ordered by e-mail address.
    async fn list(&self) -> Result<Vec<User>, StoreError>;

    /// One page of the users matching `query`, ordered by (email, id),
    /// starting after its cursor, at most [`UserQuery::page_size`] of them;
    /// `next` is set when more match. Walking the pages sees every matching
    /// user that existed throughout exactly once (no duplicates, no gaps),
    /// whatever is created or deleted meanwhile. An e-mail prefix is
    /// literal: `%`, `_` and `\` match only themselves.
    async fn list_page(&self, query: &UserQuery) -> Result<UserPage, StoreError>;

    /// Deletes the user record. Returns whether it existed. Ending the
    /// user's credentials is the caller's part (see `Accounts::delete_user`
    /// in tessera-axum); audit events that name the user stay.
    async fn delete_user(&self, id: UserId) -> Result<bool, StoreError>;

    /// Replaces the user's roles.
    async fn set_roles(&self, id: UserId, roles: &[Role]) -> Result<bool, StoreError>;

    /// Disables or re-enables the user.
    async fn set_disabled(&self, id: UserId, disabled: bool) -> Result<bool, StoreError>;

    /// Gives the user a new e-mail address.
    ///
    /// # Errors
    ///
    /// [`StoreError::Conflict`] if another user has it.
    async fn set_email(&self, id: UserId, email: &Email) -> Result<bool, StoreError>;

    /// Marks the user's address verified or not.
    async fn set_email_verified(&self, id: UserId, verified: bool) -> Result<bool, StoreError>;

    /// Replaces the user's password hash.
    async fn set_password_hash(&self, id: UserId, hash: &PasswordHash) -> Result<bool, StoreError>;

    /// Appends a security event to the audit log (kept with the users).
    async fn record_audit(&self, event: &AuditEvent) -> Result<(), StoreError>;

    /// Appends several events at once, in order (one transaction where the
    /// backend has them).
    async fn record_audit_batch(&self, events: &[AuditEvent]) -> Result<(), StoreError> {
        for event in events {
            self.record_audit(event).await?;
        }
        Ok(())
    }

    /// One page of the audit log (see [`AuditQuery`]).
    async fn audit_events(&self, query: &AuditQuery) -> Result<AuditPage, StoreError>;

    /// Retention: removes the events from before `before`; the only way
    /// events leave the log. Returns how many went.
    async fn purge_audit(&self, before: Timestamp) -> Result<u64, StoreError>;

    /// Checks that the backend answers.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// Where API keys live (beside the users: the same database).
///
/// Contract, checked by the conformance suite: ids are unique (a second
/// create with a taken id is [`StoreError::Conflict`]); a key loads as it
/// was stored (the secret's hash included, never a secret); a deleted key is
/// gone at once for every caller; `touch_api_key` changes only `last_used`.
#[async_trait]
pub trait ApiKeyStore: Send + Sync + 'static {
    /// Stores a new key.
    ///
    /// # Errors
    ///
    /// [`StoreError::Conflict`] if the id is taken.
    async fn create_api_key(&self, key: &ApiKey) -> Result<(), StoreError>;

    /// The key with this id (expired or not: expiry is the caller's check).
    async fn api_key(&self, id: &ApiKeyId) -> Result<Option<ApiKey>, StoreError>;

    /// Every key, oldest first.
    async fn list_api_keys(&self) -> Result<Vec<ApiKey>, StoreError>;

    /// Deletes (revokes) the key. Returns whether it existed.
    async fn delete_api_key(&self, id: &ApiKeyId) -> Result<bool, StoreError>;

    /// Records a use at `at`. Returns whether the key exists.
    async fn touch_api_key(&self, id: &ApiKeyId, at: Timestamp) -> Result<bool, StoreError>;
}

/// Serialised size of session data in bytes, as stores measure it against
/// the `merge_data` limit.
pub fn data_size(data: &Map<String, Value>) -> usize {
    serde_json::to_vec(data)
        .map(|v| v.len())
        .unwrap_or(usize::MAX)
}

/// A revocation that must outlive the tokens it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revocation {
    /// Every access token of the family (`sid`) is revoked.
    Family {
        /// The family.
        id: FamilyId,
        /// When the last token of the family expires: the entry can go then.
        until: Timestamp,
    },
    /// One access token (`jti`) is revoked.
    Token {
        /// The token id.
        jti: String,
        /// The token's expiry.
        until: Timestamp,
    },
    /// Every token of the user issued before `before` is revoked.
    UserBefore {
        /// The user.
        user: UserId,
        /// The cutoff: tokens with `iat` before it are refused.
        before: Timestamp,
        /// When the last affected token expires.
        until: Timestamp,
    },
    /// One sealed cookie session is refused (it was logged out).
    Sealed(SealedRevocation),
    /// Every sealed cookie session of the user that logged in at or before
    /// `through` is refused: the user's oldest ended sealed sessions,
    /// collapsed into one entry by the per-user cap (see
    /// [`TokenStore::save_sealed_revocation`]). Unlike
    /// [`Revocation::UserBefore`], access tokens and refresh families are
    /// untouched.
    SealedBefore {
        /// The user.
        user: UserId,
        /// The cutoff: sealed sessions with a login time at or before it
        /// are refused.
        through: Timestamp,
        /// When the last session it refuses would have expired anyway.
        until: Timestamp,
    },
}

/// A sealed cookie session ended before its time (a logout): nothing is
/// stored for a sealed session but this, and it is refused by its handle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedRevocation {
    /// Whose session it was.
    pub user: UserId,
    /// The session's public name.
    pub handle: SessionHandle,
    /// The session's login time: what orders a user's entries for the cap.
    pub login: Timestamp,
    /// The session's absolute expiry: the entry can go then.
    pub until: Timestamp,
}

impl Revocation {
    /// When the entry can be forgotten.
    pub fn until(&self) -> Timestamp {
        match self {
            Self::Family { until, .. }
            | Self::Token { until, .. }
            | Self::UserBefore { until, .. }
            | Self::SealedBefore { until, .. }
            | Self::Sealed(SealedRevocation { until, .. }) => *until,
        }
    }
}

/// Where refresh-token families and revocations live.
///
/// Contract, checked by the conformance suite: `advance_family` is a
/// compare-and-set on the generation, so of several concurrent rotations of
/// one family exactly one succeeds; expired families load as `None`;
/// revocations are kept until their `until`; no user has more than the
/// `cap` of the last `create_family` live families, nor more live
/// [`Revocation::Sealed`] entries than the `cap` of the last
/// `save_sealed_revocation`.
#[async_trait]
pub trait TokenStore: Send + Sync + 'static {
    /// Stores a new family, keeping its user within `cap` live families: if
    /// the user would then have more, the oldest of their other families
    /// live at the new one's `created_at` (oldest by `created_at`) end in
    /// the same atomic step, so that `cap` remain, the new one among them.
    ///
    /// Returns the families that ended, oldest first (empty when none
    /// did). They end as `delete_family` ends one; refusing their access
    /// tokens (a [`Revocation::Family`] each) is the caller's part.
    async fn create_family(
        &self,
        family: &TokenFamily,
        cap: PerUserCap,
    ) -> Result<Vec<TokenFamily>, StoreError>;

    /// The family, unless unknown or past its absolute lifetime.
    async fn load_family(
        &self,
        id: &FamilyId,
        now: Timestamp,
    ) -> Result<Option<TokenFamily>, StoreError>;

    /// Rotates the family to `new_hash` if it is still at `generation`.
    /// Returns `false` (changing nothing) if it moved on or is gone.
    async fn advance_family(
        &self,
        id: &FamilyId,
        generation: u32,
        new_hash: [u8; 32],
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Ends one family. Returns whether it existed.
    async fn delete_family(&self, id: &FamilyId) -> Result<bool, StoreError>;

    /// The user's live families at `now`, oldest (by `created_at`) first.
    async fn families_for_user(
        &self,
        user: UserId,
        now: Timestamp,
    ) -> Result<Vec<TokenFamily>, StoreError>;

    /// Ends every family of the user and returns them.
    async fn delete_families_for_user(&self, user: UserId) -> Result<Vec<TokenFamily>, StoreError>;

    /// Records a revocation (a later `UserBefore` or `SealedBefore` for the
    /// same user replaces an earlier one). A `Sealed` entry saved here is
    /// kept as [`TokenStore::save_sealed_revocation`] keeps it, uncapped.
    async fn save_revocation(&self, revocation: &Revocation) -> Result<(), StoreError>;

    /// Records that a sealed cookie session ended, keeping its user within
    /// `cap` live [`Revocation::Sealed`] entries: if the user would then
    /// have more, their oldest entries (by login time) are collapsed, in
    /// the same atomic step, into the user's [`Revocation::SealedBefore`]
    /// cutoff (`through` the login time of the newest collapsed entry, never
    /// moving back; kept until `through + session_lifetime` at least) and
    /// dropped, so that at most `cap` remain. Entries the cutoff already
    /// covers are not kept (nor is `revocation`, if it is one of them).
    ///
    /// Returns the cutoff in force when this call set or moved it, for the
    /// caller to apply; `None` when it did not.
    async fn save_sealed_revocation(
        &self,
        revocation: &SealedRevocation,
        cap: PerUserCap,
        session_lifetime: std::time::Duration,
    ) -> Result<Option<Revocation>, StoreError>;

    /// The revocations in force at `now`; with `changed_since`, only those
    /// saved at or after that instant (for cheap periodic syncing).
    async fn load_revocations(
        &self,
        now: Timestamp,
        changed_since: Option<Timestamp>,
    ) -> Result<Vec<Revocation>, StoreError>;

    /// Forgets expired families and revocations. Returns how many.
    async fn purge_expired_tokens(&self, now: Timestamp) -> Result<u64, StoreError>;
}

/// The shape of one kind of login-throttling bucket: how many failures a
/// burst may have, and how many per minute are allowed sustained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketRule {
    burst: u32,
    per_minute: u32,
}

/// A bucket rule that would never allow an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("login throttle bursts and rates must be at least 1")]
pub struct InvalidBucketRule;

impl BucketRule {
    /// A rule allowing `burst` failures at once and `per_minute` sustained.
    ///
    /// # Errors
    ///
    /// [`InvalidBucketRule`] if either is 0.
    pub fn new(burst: u32, per_minute: u32) -> Result<Self, InvalidBucketRule> {
        if burst == 0 || per_minute == 0 {
            return Err(InvalidBucketRule);
        }
        Ok(Self { burst, per_minute })
    }

    /// Failures allowed in a burst.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// Failures allowed per minute, sustained.
    pub fn per_minute(&self) -> u32 {
        self.per_minute
    }

    /// Time for one token to come back.
    pub fn refill_interval(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(60.0 / f64::from(self.per_minute))
    }
}

/// Where login-throttling token buckets live: in the process, or shared by a
/// cluster (so that spreading attempts over nodes gains an attacker nothing).
///
/// Contract: buckets start full (`burst` tokens) and refill one token per
/// `refill_interval`, never past `burst`; taking from an empty bucket takes
/// nothing and says how long until a token is back; giving back never fills
/// past `burst`. Buckets of different `kind`s never share tokens.
#[async_trait]
pub trait ThrottleStore: Send + Sync + 'static {
    /// Takes a token from bucket `name` of `kind` (`delta` -1) or gives one
    /// back (`delta` 1). Returns how long to wait when the bucket was empty
    /// (nothing was taken), else zero.
    async fn update(
        &self,
        kind: &str,
        name: &str,
        rule: BucketRule,
        delta: i64,
    ) -> Result<std::time::Duration, StoreError>;

    /// Drops state that carries no information (full buckets). Run
    /// periodically; stores that expire keys themselves need not.
    fn prune(&self) {}
}
