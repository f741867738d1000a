//! HTTP handlers, one module per resource.

pub mod admin;
pub mod health;
pub mod login;
pub mod profile;
pub mod sessions;

use serde::Serialize;
use tessera_core::{Session, User};

/// A user as the API shows it.
#[derive(Debug, Serialize)]
pub struct UserView {
    id: String,
    email: String,
    roles: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    disabled: Option<bool>,
}

impl UserView {
    /// The public fields of a user (no password hash).
    pub fn of(user: &User) -> Self {
        Self {
            id: user.id.to_string(),
            email: user.email.to_string(),
            roles: user.roles.iter().map(|r| r.as_str().to_owned()).collect(),
            disabled: Some(user.disabled),
        }
    }

    /// The user as the session knows them.
    pub fn of_session(session: &Session) -> Self {
        Self {
            id: session.user_id.to_string(),
            email: session.email.to_string(),
            roles: session
                .roles
                .iter()
                .map(|r| r.as_str().to_owned())
                .collect(),
            disabled: None,
        }
    }
}

/// A session as the API shows it: never the secret id.
#[derive(Debug, Serialize)]
pub struct SessionView {
    handle: String,
    login_time: String,
    last_seen: String,
    expires_at: String,
    absolute_expires_at: String,
    ip: Option<String>,
    user_agent: Option<String>,
}

impl SessionView {
    /// The public fields of a session.
    pub fn of(session: &Session) -> Self {
        Self {
            handle: session.handle.as_str().to_owned(),
            login_time: session.created_at.to_rfc3339(),
            last_seen: session.last_seen.to_rfc3339(),
            expires_at: session.expires_at.to_rfc3339(),
            absolute_expires_at: session.absolute_expires_at.to_rfc3339(),
            ip: session.ip.clone(),
            user_agent: session.user_agent.clone(),
        }
    }
}
