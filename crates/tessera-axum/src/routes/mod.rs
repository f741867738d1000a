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

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Serialize, Serializer};
use tessera_core::{Email, Role, Session, SessionHandle, Timestamp, User, UserId};
use utoipa::ToSchema;

use crate::caller::{Caller, Credential};
use crate::error::ApiError;
use crate::json::{json_response, push_str, response_buffer};
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

/// Login's and `/profile`'s answer, written by hand: it is the body of the
/// most frequent authenticated request, and `serde_json` spent more on it
/// (escape-scanning every key and time) than token verification took. The
/// derived `Serialize` stays the reference: the tests compare the two byte
/// for byte, so a field added to one and not the other fails them.
impl IntoResponse for SessionBody<'_> {
    fn into_response(self) -> Response {
        let mut out = response_buffer();
        self.write_json(&mut out);
        json_response(StatusCode::OK, out)
    }
}

impl SessionBody<'_> {
    fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"user\":");
        self.user.write_json(out);
        out.extend_from_slice(b",\"session\":");
        self.session.write_json(out);
        out.push(b'}');
    }
}

impl UserView<'_> {
    fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"id\":\"");
        let mut id = uuid::Uuid::encode_buffer();
        out.extend_from_slice(
            self.id
                .as_uuid()
                .hyphenated()
                .encode_lower(&mut id)
                .as_bytes(),
        );
        out.extend_from_slice(b"\",\"email\":");
        push_str(out, self.email.as_str());
        out.extend_from_slice(b",\"roles\":[");
        for (i, role) in self.roles.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            push_str(out, role.as_str());
        }
        out.extend_from_slice(b"],\"email_verified\":");
        push_bool(out, self.email_verified);
        if let Some(disabled) = self.disabled {
            out.extend_from_slice(b",\"disabled\":");
            push_bool(out, disabled);
        }
        out.push(b'}');
    }
}

impl SessionView<'_> {
    fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"handle\":");
        push_str(out, self.handle.as_str());
        for (key, time) in [
            (&b",\"login_time\":"[..], self.login_time),
            (b",\"last_seen\":", self.last_seen),
            (b",\"expires_at\":", self.expires_at),
            (b",\"absolute_expires_at\":", self.absolute_expires_at),
        ] {
            out.extend_from_slice(key);
            // RFC 3339 text (or plain digits): nothing to escape.
            let mut text = [0u8; tessera_core::clock::RFC3339_MAX];
            out.push(b'"');
            out.extend_from_slice(time.0.rfc3339_ascii(&mut text));
            out.push(b'"');
        }
        for (key, value) in [
            (&b",\"ip\":"[..], self.ip),
            (b",\"user_agent\":", self.user_agent),
        ] {
            out.extend_from_slice(key);
            match value {
                Some(value) => push_str(out, value),
                None => out.extend_from_slice(b"null"),
            }
        }
        if let Some(current) = self.current {
            out.extend_from_slice(b",\"current\":");
            push_bool(out, current);
        }
        out.push(b'}');
    }
}

fn push_bool(out: &mut Vec<u8>, value: bool) {
    out.extend_from_slice(if value { b"true" } else { b"false" });
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tessera_core::{NewUser, PasswordHash, SessionMeta, SessionPolicy};

    use super::*;

    fn user(email: &str, roles: &[&str]) -> User {
        NewUser {
            email: Email::parse(email).unwrap(),
            roles: roles.iter().map(|r| Role::parse(r).unwrap()).collect(),
            password_hash: PasswordHash::from_trusted(
                "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA".into(),
            ),
            email_verified: true,
        }
        .into_user(Timestamp::now())
    }

    fn session(user: &User, ip: Option<&str>, agent: Option<&str>, at: i64) -> Session {
        let policy =
            SessionPolicy::new(Duration::from_secs(600), Duration::from_secs(86_400)).unwrap();
        let meta = SessionMeta {
            ip: ip.map(str::to_owned),
            user_agent: agent.map(str::to_owned),
        };
        policy.start(user, meta, Timestamp::from_unix_millis(at)).1
    }

    fn by_hand(body: &SessionBody<'_>) -> String {
        let mut out = Vec::new();
        body.write_json(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_hand_written_session_body_is_what_serde_writes() {
        let agents = [
            None,
            Some("Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0"),
            Some("quote \" backslash \\ slash / </script>"),
            Some("controls \n \r \t \u{1} \u{8} \u{c} \u{1f} \u{7f} end"),
            Some("unicode é ☃ 𝄞"),
            Some(""),
        ];
        let users = [
            user("alice@example.com", &["member"]),
            user("o'neil+tag@example.com", &["member", "admin"]),
            user("nobody@example.com", &[]),
        ];
        for user in &users {
            for (i, agent) in agents.iter().enumerate() {
                let ip = (i % 2 == 0).then_some("2001:db8::1");
                // Times across the range the formatter handles, and past it.
                for at in [
                    0,
                    1_796_601_599_042,
                    253_402_300_799_999,
                    300_000_000_000_000,
                ] {
                    let session = session(user, ip, *agent, at);
                    for body in [
                        SessionBody::of(&session),
                        SessionBody {
                            user: UserView::of(user),
                            session: SessionView::of(&session).with_current(i % 3 == 0),
                        },
                    ] {
                        let serde = serde_json::to_string(&body).unwrap();
                        assert_eq!(by_hand(&body), serde);
                    }
                }
            }
        }
    }
}
