//! Server-side sessions and the policy that ages them.

use std::time::Duration;

use serde_json::{Map, Value};
use thiserror::Error;

use crate::clock::Timestamp;
use crate::route::Route;
use crate::secret::{RotationKey, SessionHandle, SessionId, SessionIdHash};
use crate::user::{Email, Role, User, UserId};

/// Longest user agent kept with a session; longer ones are cut.
pub const MAX_USER_AGENT_CHARS: usize = 512;

/// A session as a store keeps it. It never contains the secret id, only its hash.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// SHA-256 of the secret id: the store's key.
    pub id_hash: SessionIdHash,
    /// Public, non-secret name of the session.
    pub handle: SessionHandle,
    /// Whose session this is.
    pub user_id: UserId,
    /// The user's e-mail address at login (saves a user lookup per request).
    pub email: Email,
    /// The user's roles, kept in step with the user record by the stores.
    pub roles: Vec<Role>,
    /// Whether the user's address was verified, kept in step with the user
    /// record like `email` and `roles` (see [`UserCopy`]).
    pub email_verified: bool,
    /// When the user logged in.
    pub created_at: Timestamp,
    /// Last recorded activity (recorded at most every `touch_interval`).
    pub last_seen: Timestamp,
    /// When the session ends unless touched: `min(last_seen + idle, absolute_expires_at)`.
    pub expires_at: Timestamp,
    /// When the session ends whatever happens: login time + absolute timeout.
    pub absolute_expires_at: Timestamp,
    /// Client IP at login.
    pub ip: Option<String>,
    /// Client user agent at login.
    pub user_agent: Option<String>,
    /// Free JSON data (preferences and the like), merged by `PATCH /session`.
    pub data: Map<String, Value>,
    /// The user's privileges changed: the next request swaps in a fresh id.
    pub rotate: bool,
}

/// The copy of the user that a session carries (saves a user lookup per
/// request): what [`SessionStore::update_user_copy`] keeps in step with the
/// user record.
///
/// [`SessionStore::update_user_copy`]: crate::store::SessionStore::update_user_copy
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserCopy {
    /// The user's e-mail address.
    pub email: Email,
    /// The user's roles.
    pub roles: Vec<Role>,
    /// Whether the address was verified.
    pub email_verified: bool,
}

impl UserCopy {
    /// The copy of `user` as it is now.
    pub fn of(user: &User) -> Self {
        Self {
            email: user.email.clone(),
            roles: user.roles.clone(),
            email_verified: user.email_verified,
        }
    }
}

impl Session {
    /// The copy of the user this session carries.
    pub fn user_copy(&self) -> UserCopy {
        UserCopy {
            email: self.email.clone(),
            roles: self.roles.clone(),
            email_verified: self.email_verified,
        }
    }

    /// Replaces the copy of the user and marks the session for id rotation.
    pub fn set_user_copy(&mut self, copy: &UserCopy) {
        self.email = copy.email.clone();
        self.roles = copy.roles.clone();
        self.email_verified = copy.email_verified;
        self.rotate = true;
    }
}

/// Facts about the client that a new session records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionMeta {
    /// Client IP address.
    pub ip: Option<String>,
    /// `User-Agent` header.
    pub user_agent: Option<String>,
}

/// The session timeouts were out of range.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("session timeouts must be at least one second, and idle at most absolute")]
pub struct InvalidPolicy;

/// How long sessions live and how often activity is written back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    idle_timeout: Duration,
    absolute_timeout: Duration,
    transient_timeout: Duration,
    touch_interval: Duration,
}

impl Default for SessionPolicy {
    /// 30 minutes idle, 24 hours absolute (OWASP's suggested ranges).
    fn default() -> Self {
        Self::new(Duration::from_secs(30 * 60), Duration::from_secs(24 * 3600))
            .expect("defaults are valid")
    }
}

impl SessionPolicy {
    /// A policy with the given idle and absolute timeouts.
    ///
    /// Activity is written back at most every `min(60 s, idle / 10)`, so an
    /// active user's recorded `last_seen` lags by at most a tenth of the idle
    /// timeout and they never hit it while active.
    ///
    /// # Errors
    ///
    /// [`InvalidPolicy`] when a timeout is under a second or idle exceeds absolute.
    pub fn new(idle_timeout: Duration, absolute_timeout: Duration) -> Result<Self, InvalidPolicy> {
        if idle_timeout < Duration::from_secs(1) || absolute_timeout < idle_timeout {
            return Err(InvalidPolicy);
        }
        Ok(Self {
            idle_timeout,
            absolute_timeout,
            transient_timeout: absolute_timeout / 2,
            touch_interval: (idle_timeout / 10).min(Duration::from_secs(60)),
        })
    }

    /// The absolute lifetime of a session started without "remember me"
    /// ([`SessionPolicy::start_transient`]); by default half the absolute
    /// timeout.
    ///
    /// # Errors
    ///
    /// [`InvalidPolicy`] unless it is at least a second and shorter than the
    /// absolute timeout (that is how such a session is told apart).
    pub fn with_transient_timeout(mut self, timeout: Duration) -> Result<Self, InvalidPolicy> {
        if timeout < Duration::from_secs(1) || timeout >= self.absolute_timeout {
            return Err(InvalidPolicy);
        }
        self.transient_timeout = timeout;
        Ok(self)
    }

    /// The absolute lifetime of a session started without "remember me".
    pub fn transient_timeout(&self) -> Duration {
        self.transient_timeout
    }

    /// Whether `session` was started without "remember me": its absolute
    /// lifetime is shorter than the absolute timeout. Its cookie then has no
    /// `Max-Age` and ends with the browser. (Derived, not stored: raising
    /// the absolute timeout later makes older remembered sessions count as
    /// transient, the safe direction; the transient timeout is always
    /// shorter than the absolute one.)
    pub fn is_transient(&self, session: &Session) -> bool {
        session.absolute_expires_at.since(session.created_at) < self.absolute_timeout
    }

    /// The `Max-Age` of a cookie carrying `session` at `now`: the time to its
    /// absolute end, or `None` (a browser-session cookie) for a transient one.
    pub fn cookie_max_age(&self, session: &Session, now: Timestamp) -> Option<Duration> {
        (!self.is_transient(session)).then(|| session.absolute_expires_at.since(now))
    }

    /// The idle timeout.
    pub fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    /// The absolute timeout.
    pub fn absolute_timeout(&self) -> Duration {
        self.absolute_timeout
    }

    /// The least time between two writes of `last_seen`.
    pub fn touch_interval(&self) -> Duration {
        self.touch_interval
    }

    /// Starts a session for `user`: a fresh secret id and the record to store.
    pub fn start(&self, user: &User, meta: SessionMeta, now: Timestamp) -> (SessionId, Session) {
        self.start_for(user, meta, now, self.absolute_timeout)
    }

    /// Starts a session without "remember me": it lives at most the
    /// transient timeout, and its cookie ends with the browser.
    pub fn start_transient(
        &self,
        user: &User,
        meta: SessionMeta,
        now: Timestamp,
    ) -> (SessionId, Session) {
        self.start_for(user, meta, now, self.transient_timeout)
    }

    fn start_for(
        &self,
        user: &User,
        meta: SessionMeta,
        now: Timestamp,
        lifetime: Duration,
    ) -> (SessionId, Session) {
        let id = SessionId::generate_for(Route::of(user.id));
        let absolute_expires_at = now.plus(lifetime);
        let session = Session {
            id_hash: id.hash(),
            handle: SessionHandle::generate(),
            user_id: user.id,
            email: user.email.clone(),
            roles: user.roles.clone(),
            email_verified: user.email_verified,
            created_at: now,
            last_seen: now,
            expires_at: now.plus(self.idle_timeout).min(absolute_expires_at),
            absolute_expires_at,
            ip: meta.ip,
            user_agent: meta
                .user_agent
                .map(|ua| ua.chars().take(MAX_USER_AGENT_CHARS).collect()),
            data: Map::new(),
            rotate: false,
        };
        (id, session)
    }

    /// The same session under a fresh secret id (after a privilege change).
    /// The handle, login time and absolute expiry carry over.
    ///
    /// `id` is the session's current id (the one `session.id_hash` is the
    /// hash of); the successor's id is derived from it with `key` (see
    /// [`SessionId::successor`]), so that concurrent rotations of one
    /// session, on any node sharing the key, all arrive at the same one.
    pub fn successor(
        &self,
        session: &Session,
        id: &SessionId,
        key: &RotationKey,
        now: Timestamp,
    ) -> (SessionId, Session) {
        let id = id.successor(key, Route::of(session.user_id));
        let successor = Session {
            id_hash: id.hash(),
            last_seen: now,
            expires_at: self.expiry_after_activity(session, now),
            rotate: false,
            ..session.clone()
        };
        (id, successor)
    }

    /// Whether the session is still live at `now`.
    pub fn is_live(&self, session: &Session, now: Timestamp) -> bool {
        now < session.expires_at
    }

    /// Whether activity at `now` should be written back to the store.
    pub fn needs_touch(&self, session: &Session, now: Timestamp) -> bool {
        now.since(session.last_seen) >= self.touch_interval
    }

    /// The expiry after activity at `now`.
    pub fn expiry_after_activity(&self, session: &Session, now: Timestamp) -> Timestamp {
        now.plus(self.idle_timeout).min(session.absolute_expires_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::password::PasswordHash;
    use crate::user::NewUser;

    fn user() -> User {
        NewUser {
            email: Email::parse("a@example.com").unwrap(),
            roles: vec![Role::parse("admin").unwrap()],
            password_hash: PasswordHash::from_trusted("$argon2id$x".into()),
            email_verified: true,
        }
        .into_user(Timestamp::from_unix_millis(0))
    }

    fn policy(idle: u64, absolute: u64) -> SessionPolicy {
        SessionPolicy::new(Duration::from_secs(idle), Duration::from_secs(absolute)).unwrap()
    }

    #[test]
    fn a_new_session_expires_after_the_idle_timeout() {
        let p = policy(60, 3600);
        let now = Timestamp::from_unix_millis(1_000);
        let (id, s) = p.start(&user(), SessionMeta::default(), now);
        assert_eq!(s.id_hash, id.hash());
        assert_eq!(s.expires_at, now.plus(Duration::from_secs(60)));
        assert!(p.is_live(&s, now.plus(Duration::from_secs(59))));
        assert!(!p.is_live(&s, now.plus(Duration::from_secs(60))));
    }

    #[test]
    fn activity_never_extends_past_the_absolute_timeout() {
        let p = policy(60, 100);
        let now = Timestamp::from_unix_millis(0);
        let (_, s) = p.start(&user(), SessionMeta::default(), now);
        let later = now.plus(Duration::from_secs(90));
        assert_eq!(p.expiry_after_activity(&s, later), s.absolute_expires_at);
    }

    #[test]
    fn touches_are_rate_limited() {
        let p = policy(1800, 86_400);
        assert_eq!(p.touch_interval(), Duration::from_secs(60));
        let now = Timestamp::from_unix_millis(0);
        let (_, s) = p.start(&user(), SessionMeta::default(), now);
        assert!(!p.needs_touch(&s, now.plus(Duration::from_secs(59))));
        assert!(p.needs_touch(&s, now.plus(Duration::from_secs(60))));
        assert_eq!(policy(10, 20).touch_interval(), Duration::from_secs(1));
    }

    #[test]
    fn a_successor_keeps_identity_but_not_the_secret() {
        let p = policy(60, 3600);
        let now = Timestamp::from_unix_millis(0);
        let (old_id, mut s) = p.start(&user(), SessionMeta::default(), now);
        s.rotate = true;
        let key = RotationKey::derive(&crate::ChainKey::generate());
        let later = now.plus(Duration::from_secs(5));
        let (new_id, next) = p.successor(&s, &old_id, &key, later);
        assert_ne!(old_id, new_id);
        assert_eq!(next.id_hash, new_id.hash());
        assert_eq!(
            next.id_hash.route(),
            s.id_hash.route(),
            "same user, same route"
        );
        assert_eq!(
            p.successor(&s, &old_id, &key, later).0,
            new_id,
            "derived, not random"
        );
        assert_eq!(
            (next.last_seen, next.expires_at),
            (later, later.plus(Duration::from_secs(60)))
        );
        assert_eq!(next.handle, s.handle);
        assert_eq!(next.created_at, s.created_at);
        assert_eq!(next.absolute_expires_at, s.absolute_expires_at);
        assert!(!next.rotate);
    }

    #[test]
    fn invalid_timeouts_are_refused() {
        assert!(SessionPolicy::new(Duration::ZERO, Duration::from_secs(5)).is_err());
        assert!(SessionPolicy::new(Duration::from_secs(10), Duration::from_secs(5)).is_err());
    }

    #[test]
    fn a_transient_session_lives_shorter_and_its_cookie_has_no_max_age() {
        let p = SessionPolicy::new(Duration::from_secs(60), Duration::from_secs(3600))
            .unwrap()
            .with_transient_timeout(Duration::from_secs(600))
            .unwrap();
        let now = Timestamp::from_unix_millis(1_000_000);
        let (_, remembered) = p.start(&user(), SessionMeta::default(), now);
        let (_, transient) = p.start_transient(&user(), SessionMeta::default(), now);
        assert_eq!(
            transient.absolute_expires_at,
            now.plus(Duration::from_secs(600))
        );
        assert!(p.is_transient(&transient) && !p.is_transient(&remembered));
        let later = now.plus(Duration::from_secs(100));
        assert_eq!(p.cookie_max_age(&transient, later), None);
        assert_eq!(
            p.cookie_max_age(&remembered, later),
            Some(Duration::from_secs(3500))
        );
        // The successor of a transient session is transient too.
        let (id, _) = p.start_transient(&user(), SessionMeta::default(), now);
        let key = crate::secret::RotationKey::derive(&crate::family::ChainKey::new([3; 32]));
        let (_, successor) = p.successor(&transient, &id, &key, later);
        assert!(p.is_transient(&successor));
    }

    #[test]
    fn the_transient_timeout_must_be_shorter_than_the_absolute_one() {
        let p = SessionPolicy::new(Duration::from_secs(60), Duration::from_secs(3600)).unwrap();
        assert_eq!(p.transient_timeout(), Duration::from_secs(1800));
        assert!(p.with_transient_timeout(Duration::from_secs(3600)).is_err());
        assert!(p.with_transient_timeout(Duration::ZERO).is_err());
    }
}
