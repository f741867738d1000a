//! HTTP handlers, one module per resource.

pub mod account;
pub mod admin;
pub mod admin_links;
pub mod admin_v1;
pub mod apikeys;
pub mod audit;
pub mod forward_auth;
pub mod health;
pub mod login;
pub mod mailed;
pub mod profile;
pub mod recovery;
pub mod sessions;
pub mod signup;
pub mod token;

use serde::{Serialize, Serializer};
use tessera_core::{Email, Role, Session, SessionHandle, Timestamp, User, UserId};
use utoipa::ToSchema;

use crate::caller::{Caller, Credential};
use crate::error::ApiError;
use crate::tokens::AccessToken;

/// A user as the API shows it (never the password hash). Borrows from the
/// record, so serving it allocates nothing but the output.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = User)]
pub struct UserView<'a> {
    #[schema(value_type = uuid::Uuid)]
    id: UserId,
    /// The address in its canonical spelling.
    #[schema(value_type = String)]
    email: &'a Email,
    #[schema(value_type = Vec<crate::openapi::RoleName>)]
    roles: &'a [Role],
    email_verified: bool,
    /// Absent where the credential, not the user record, answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    disabled: Option<bool>,
}

impl<'a> UserView<'a> {
    /// The public fields of a user.
    pub fn of(user: &'a User) -> Self {
        Self {
            id: user.id,
            email: &user.email,
            roles: &user.roles,
            email_verified: user.email_verified,
            disabled: Some(user.disabled),
        }
    }

    /// The user as their credential knows them; `None` for an API key.
    pub fn of_caller(caller: &'a Caller) -> Option<Self> {
        Some(Self {
            id: caller.user_id()?,
            email: caller.email()?,
            roles: caller.roles(),
            email_verified: caller.email_verified(),
            disabled: None,
        })
    }

    fn of_session(session: &'a Session) -> Self {
        Self {
            id: session.user_id,
            email: &session.email,
            roles: &session.roles,
            email_verified: session.email_verified,
            disabled: None,
        }
    }
}

/// A session as the API shows it: never the secret id.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Session)]
pub struct SessionView<'a> {
    /// The session's public name (for `DELETE /sessions/{handle}`).
    #[schema(value_type = String)]
    handle: &'a SessionHandle,
    #[schema(value_type = String, format = DateTime)]
    login_time: Rfc3339,
    #[schema(value_type = String, format = DateTime)]
    last_seen: Rfc3339,
    #[schema(value_type = String, format = DateTime)]
    expires_at: Rfc3339,
    #[schema(value_type = String, format = DateTime)]
    absolute_expires_at: Rfc3339,
    ip: Option<&'a str>,
    user_agent: Option<&'a str>,
    /// In `GET /sessions`: whether this is the session making the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    current: Option<bool>,
}

impl<'a> SessionView<'a> {
    /// The public fields of a session.
    pub fn of(session: &'a Session) -> Self {
        Self {
            handle: &session.handle,
            login_time: Rfc3339(session.created_at),
            last_seen: Rfc3339(session.last_seen),
            expires_at: Rfc3339(session.expires_at),
            absolute_expires_at: Rfc3339(session.absolute_expires_at),
            ip: session.ip.as_deref(),
            user_agent: session.user_agent.as_deref(),
            current: None,
        }
    }

    /// An access token as a login: its refresh family, issued and expiring
    /// with the token.
    pub fn of_token(token: &'a AccessToken) -> Self {
        Self {
            handle: &token.handle,
            login_time: Rfc3339(token.issued_at),
            last_seen: Rfc3339(token.issued_at),
            expires_at: Rfc3339(token.expires_at),
            absolute_expires_at: Rfc3339(token.expires_at),
            ip: None,
            user_agent: None,
            current: None,
        }
    }

    /// What the caller is logged in with; `None` for an API key (no login).
    pub fn of_caller(caller: &'a Caller) -> Option<Self> {
        match caller.credential() {
            Credential::Stored(session) | Credential::Sealed { session, .. } => {
                Some(Self::of(session))
            }
            Credential::Bearer { token, .. } => Some(Self::of_token(token)),
            Credential::ApiKey(_) => None,
        }
    }

    /// Marks whether this is the session making the request.
    pub fn with_current(mut self, current: bool) -> Self {
        self.current = Some(current);
        self
    }
}

/// `{"user": ..., "session": ...}`: what login and `/profile` answer.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SessionBody)]
pub struct SessionBody<'a> {
    user: UserView<'a>,
    session: SessionView<'a>,
}

impl<'a> SessionBody<'a> {
    /// The body for a session just started.
    pub fn of(session: &'a Session) -> Self {
        Self {
            user: UserView::of_session(session),
            session: SessionView::of(session),
        }
    }

    /// The body for the caller.
    ///
    /// # Errors
    ///
    /// 403 for an API key: it has neither user nor session.
    pub fn of_caller(caller: &'a Caller) -> Result<Self, ApiError> {
        let refused = || ApiError::ApiKeyNotAccepted("profile");
        Ok(Self {
            user: UserView::of_caller(caller).ok_or_else(refused)?,
            session: SessionView::of_caller(caller).ok_or_else(refused)?,
        })
    }
}

/// `{"sessions_ended": n}`: what logout, password changes and resets
/// answer (sessions and token families ended).
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionsEnded {
    /// How many sessions and refresh-token families ended.
    pub sessions_ended: u64,
}

/// A timestamp serialised as RFC 3339 text.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rfc3339(pub(crate) Timestamp);

impl Serialize for Rfc3339 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; tessera_core::clock::RFC3339_MAX];
        serializer.serialize_str(self.0.format_rfc3339(&mut buf))
    }
}
