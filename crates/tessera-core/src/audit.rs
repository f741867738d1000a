//! The audit trail: typed security events, who caused them and to whom.
//!
//! An [`AuditEvent`] never holds a password, a token, a session id or an
//! e-mail address: the subject is a [`UserId`], a session is named by its
//! public handle, an API key by its public id, and `detail` is free text for
//! people, written without personal data. Stores keep the log append-only
//! (only retention removes events) and read it back page by page
//! ([`AuditQuery`], [`AuditPage`]).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::clock::Timestamp;
use crate::user::UserId;

macro_rules! audit_kinds {
    ($($(#[doc = $doc:literal])* $variant:ident => $name:literal,)*) => {
        /// What happened. Each kind has one snake_case name, used in storage,
        /// the admin API and the CLI.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum AuditKind {
            $($(#[doc = $doc])* $variant,)*
        }

        impl AuditKind {
            /// Every kind, in declaration order.
            pub const ALL: &'static [AuditKind] = &[$(AuditKind::$variant,)*];

            /// The kind's snake_case name.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(AuditKind::$variant => $name,)*
                }
            }
        }

        impl FromStr for AuditKind {
            type Err = UnknownAuditKind;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($name => Ok(AuditKind::$variant),)*
                    _ => Err(UnknownAuditKind),
                }
            }
        }
    };
}

audit_kinds! {
    /// A new account was created by sign-up.
    SignedUp => "signed_up",
    /// An address was verified.
    EmailVerified => "email_verified",
    /// A password login succeeded (`/login`, `/token`).
    LoginSucceeded => "login_succeeded",
    /// A password login failed (unknown account, wrong password, disabled).
    LoginFailed => "login_failed",
    /// A login attempt was refused by the throttle before any check.
    LoginThrottled => "login_throttled",
    /// A caller ended their own session or token family.
    LoggedOut => "logged_out",
    /// Sessions ended other than by their own logout: another session's
    /// handle, "log out everywhere", the per-user cap.
    SessionEnded => "session_ended",
    /// A password was changed (by its owner, an admin or the CLI).
    PasswordChanged => "password_changed",
    /// A password was reset through a recovery token.
    PasswordReset => "password_reset",
    /// A change of address was asked for (not yet confirmed).
    EmailChangeRequested => "email_change_requested",
    /// A change of address was confirmed.
    EmailChanged => "email_changed",
    /// An operator or the admin API created a user.
    UserCreated => "user_created",
    /// An operator or the admin API changed a user's record.
    UserUpdated => "user_updated",
    /// A user was disabled (every credential ended).
    UserDisabled => "user_disabled",
    /// A user was enabled again.
    UserEnabled => "user_enabled",
    /// A user was deleted.
    UserDeleted => "user_deleted",
    /// A user's roles were replaced.
    RolesChanged => "roles_changed",
    /// An invitation was created.
    InviteCreated => "invite_created",
    /// An invitation was used to sign up.
    InviteUsed => "invite_used",
    /// An API key was created.
    ApiKeyCreated => "api_key_created",
    /// An API key was used (sampled).
    ApiKeyUsed => "api_key_used",
    /// An API key was revoked.
    ApiKeyRevoked => "api_key_revoked",
    /// A refresh token was presented again after it had been used: its
    /// family was ended.
    RefreshTokenReused => "refresh_token_reused",
    /// Mail could not be delivered after every retry.
    MailUndeliverable => "mail_undeliverable",
}

/// A name that is no [`AuditKind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("unknown audit event kind")]
pub struct UnknownAuditKind;

impl fmt::Display for AuditKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for AuditKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for AuditKind {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// Who caused an event. Serialised as `{"type": "user", "id": "…"}`,
/// `{"type": "api_key", "id": "…"}`, or `{"type": "cli"}` and the like.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", content = "id", rename_all = "snake_case")]
pub enum Actor {
    /// Someone not logged in (a login attempt, a sign-up).
    Anonymous,
    /// A logged-in user.
    User(UserId),
    /// A machine, by its API key's public id (never the secret).
    ApiKey(String),
    /// An operator at a shell (`tessera user …`).
    Cli,
    /// tessera itself (caps, retention, mail delivery).
    System,
}

/// Stored actor text that names no [`Actor`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("unknown audit actor")]
pub struct UnknownActor;

impl Actor {
    /// The actor's kind, as stored: `anonymous`, `user`, `api_key`, `cli`,
    /// `system`.
    pub fn kind_str(&self) -> &'static str {
        match self {
            Self::Anonymous => "anonymous",
            Self::User(_) => "user",
            Self::ApiKey(_) => "api_key",
            Self::Cli => "cli",
            Self::System => "system",
        }
    }

    /// The actor's id, for the kinds that have one.
    pub fn id(&self) -> Option<String> {
        match self {
            Self::User(id) => Some(id.to_string()),
            Self::ApiKey(key) => Some(key.clone()),
            Self::Anonymous | Self::Cli | Self::System => None,
        }
    }

    /// Rebuilds an actor from its stored kind and id.
    ///
    /// # Errors
    ///
    /// [`UnknownActor`] for an unknown kind, or a missing or malformed id.
    pub fn from_parts(kind: &str, id: Option<&str>) -> Result<Self, UnknownActor> {
        match (kind, id) {
            ("anonymous", _) => Ok(Self::Anonymous),
            ("cli", _) => Ok(Self::Cli),
            ("system", _) => Ok(Self::System),
            ("user", Some(id)) => id.parse().map(Self::User).map_err(|_| UnknownActor),
            ("api_key", Some(id)) => Ok(Self::ApiKey(id.to_owned())),
            _ => Err(UnknownActor),
        }
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.id() {
            Some(id) => write!(f, "{}:{id}", self.kind_str()),
            None => f.write_str(self.kind_str()),
        }
    }
}

/// A security-relevant event, kept in the audit log.
///
/// Built with [`AuditEvent::new`] and the builder methods. Holds no
/// password, token, session id or e-mail address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// When it happened.
    pub at: Timestamp,
    /// What happened.
    pub kind: AuditKind,
    /// Who did it.
    pub actor: Actor,
    /// Whose account it concerns.
    pub subject: Option<UserId>,
    /// The client's address.
    pub ip: Option<IpAddr>,
    /// The client's `User-Agent`.
    pub user_agent: Option<String>,
    /// The public handle of the session (or refresh family) concerned or
    /// used: never a session id.
    pub session: Option<String>,
    /// The `X-Request-Id` of the request that caused it (as the service's
    /// access log shows it), when a request did.
    pub request_id: Option<String>,
    /// Free text for people; no personal data.
    pub detail: String,
}

/// The longest `User-Agent` kept; the rest is cut off.
pub const AUDIT_USER_AGENT_MAX: usize = 256;
/// The longest `detail` kept; the rest is cut off.
pub const AUDIT_DETAIL_MAX: usize = 1024;

impl AuditEvent {
    /// An event of `kind` by `actor`, happening now, with nothing else set.
    pub fn new(kind: AuditKind, actor: Actor) -> Self {
        Self {
            at: Timestamp::now(),
            kind,
            actor,
            subject: None,
            ip: None,
            user_agent: None,
            session: None,
            request_id: None,
            detail: String::new(),
        }
    }

    /// When it happened (default: when it was built).
    #[must_use]
    pub fn at(mut self, at: Timestamp) -> Self {
        self.at = at;
        self
    }

    /// The user it concerns.
    #[must_use]
    pub fn subject(mut self, subject: impl Into<Option<UserId>>) -> Self {
        self.subject = subject.into();
        self
    }

    /// The client's address.
    #[must_use]
    pub fn ip(mut self, ip: impl Into<Option<IpAddr>>) -> Self {
        self.ip = ip.into();
        self
    }

    /// The client's `User-Agent` (cut at [`AUDIT_USER_AGENT_MAX`] bytes).
    #[must_use]
    pub fn user_agent(mut self, user_agent: Option<impl Into<String>>) -> Self {
        self.user_agent = user_agent.map(|ua| truncate(ua.into(), AUDIT_USER_AGENT_MAX));
        self
    }

    /// The public handle of the session concerned.
    #[must_use]
    pub fn session(mut self, handle: Option<impl Into<String>>) -> Self {
        self.session = handle.map(Into::into);
        self
    }

    /// The id of the request that caused it.
    #[must_use]
    pub fn request_id(mut self, id: Option<impl Into<String>>) -> Self {
        self.request_id = id.map(Into::into);
        self
    }

    /// Free text for people (cut at [`AUDIT_DETAIL_MAX`] bytes). Write it
    /// without personal data.
    #[must_use]
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = truncate(detail.into(), AUDIT_DETAIL_MAX);
        self
    }
}

fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// The position of a stored event in the log: increases with every event
/// appended, so it is a stable cursor. It follows when an event was
/// written, `at` when it happened: a server writes its events in batches,
/// so they may land shortly after one a command wrote at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AuditId(pub i64);

impl fmt::Display for AuditId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Text that is no [`AuditId`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("invalid audit cursor")]
pub struct InvalidAuditId;

impl FromStr for AuditId {
    type Err = InvalidAuditId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.parse::<i64>() {
            Ok(id) if id >= 0 && !s.starts_with('+') => Ok(Self(id)),
            _ => Err(InvalidAuditId),
        }
    }
}

/// In which order a page lists events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuditOrder {
    /// Newest first; `after` means "older than".
    #[default]
    NewestFirst,
    /// Oldest first; `after` means "newer than" (following the log).
    OldestFirst,
}

/// Which events to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only events whose subject is this user.
    pub user: Option<UserId>,
    /// Only events of this kind.
    pub kind: Option<AuditKind>,
    /// Only events at or after this instant.
    pub since: Option<Timestamp>,
    /// Continue after this event (a page's `next`, or the last id seen).
    pub after: Option<AuditId>,
    /// At most this many events (clamped to 1..=[`AuditQuery::MAX_LIMIT`]).
    pub limit: usize,
    /// The order of the page.
    pub order: AuditOrder,
}

impl AuditQuery {
    /// The largest page.
    pub const MAX_LIMIT: usize = 500;

    /// The newest `limit` events, no filter.
    pub fn latest(limit: usize) -> Self {
        Self {
            user: None,
            kind: None,
            since: None,
            after: None,
            limit,
            order: AuditOrder::NewestFirst,
        }
    }

    /// The page size to use: `limit` within 1..=[`AuditQuery::MAX_LIMIT`].
    pub fn page_size(&self) -> usize {
        self.limit.clamp(1, Self::MAX_LIMIT)
    }

    /// Whether `event` passes the filters (not the cursor).
    pub fn matches(&self, event: &AuditEvent) -> bool {
        self.user.is_none_or(|u| event.subject == Some(u))
            && self.kind.is_none_or(|k| event.kind == k)
            && self.since.is_none_or(|s| event.at >= s)
    }
}

impl Default for AuditQuery {
    fn default() -> Self {
        Self::latest(50)
    }
}

/// A stored event and its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Its position in the log.
    pub id: AuditId,
    /// The event.
    pub event: AuditEvent,
}

/// One page of the log.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuditPage {
    /// The events, in the query's order.
    pub events: Vec<AuditRecord>,
    /// Where the next page starts (pass as `after`), when this one was full.
    pub next: Option<AuditId>,
}

impl AuditPage {
    /// A page from up to `page_size + 1` records read in order: the extra one
    /// only says whether there is more.
    pub fn from_overfetch(mut events: Vec<AuditRecord>, page_size: usize) -> Self {
        let more = events.len() > page_size;
        events.truncate(page_size);
        let next = if more {
            events.last().map(|r| r.id)
        } else {
            None
        };
        Self { events, next }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_names() {
        for kind in AuditKind::ALL {
            assert_eq!(kind.as_str().parse::<AuditKind>(), Ok(*kind));
            let json = serde_json::to_string(kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
            assert_eq!(serde_json::from_str::<AuditKind>(&json).unwrap(), *kind);
        }
        assert_eq!(AuditKind::ALL.len(), 24);
        assert!("LoginFailed".parse::<AuditKind>().is_err());
    }

    #[test]
    fn actors_round_trip_through_parts_and_json() {
        let user = UserId::generate();
        for actor in [
            Actor::Anonymous,
            Actor::User(user),
            Actor::ApiKey("key_abc".into()),
            Actor::Cli,
            Actor::System,
        ] {
            let id = actor.id();
            assert_eq!(
                Actor::from_parts(actor.kind_str(), id.as_deref()),
                Ok(actor.clone())
            );
            let json = serde_json::to_value(&actor).unwrap();
            assert_eq!(json["type"], actor.kind_str());
            assert_eq!(serde_json::from_value::<Actor>(json).unwrap(), actor);
        }
        assert!(Actor::from_parts("user", Some("nope")).is_err());
        assert!(Actor::from_parts("user", None).is_err());
        assert!(Actor::from_parts("root", None).is_err());
    }

    #[test]
    fn builder_cuts_long_text_on_a_char_boundary() {
        let event = AuditEvent::new(AuditKind::LoginFailed, Actor::Anonymous)
            .user_agent(Some("é".repeat(200)))
            .detail("x".repeat(5000));
        assert!(event.user_agent.as_ref().unwrap().len() <= AUDIT_USER_AGENT_MAX);
        assert_eq!(event.detail.len(), AUDIT_DETAIL_MAX);
    }

    #[test]
    fn cursors_parse_strictly() {
        assert_eq!("42".parse::<AuditId>(), Ok(AuditId(42)));
        for bad in ["", "-1", "+1", "1.5", "abc", "99999999999999999999"] {
            assert!(bad.parse::<AuditId>().is_err(), "{bad}");
        }
    }
}
