//! What a caller presented, and the operations whose meaning depends on it.
//!
//! Each operation that only makes sense for some kinds of credential
//! decides by one `match` here; handlers never test modes or flags. A new
//! kind of credential is one new variant, and the compiler lists every
//! operation that must say what it means for it.

use std::sync::Arc;

use axum::http::HeaderValue;
use serde_json::{Map, Value};
use tessera_core::{Actor, ApiKey, Email, Role, Session, SessionHandle, Timestamp, UserId};

use crate::error::ApiError;
use crate::state::AppState;
use crate::tokens::AccessToken;

/// Data kept in a sealed cookie must stay small: browsers cap cookies at 4 KiB.
const SEALED_DATA_MAX_BYTES: usize = 1024;

/// What the caller presented.
#[derive(Debug, Clone)]
pub enum Credential {
    /// A session id cookie; the session lives in the session store.
    Stored(Arc<Session>),
    /// A session sealed in the cookie itself (`session_storage = cookie`).
    Sealed {
        /// The session the cookie carries.
        session: Arc<Session>,
        /// The re-sealed cookie to send, when activity was recorded.
        reseal: Option<HeaderValue>,
    },
    /// An access token.
    Bearer {
        /// The verified token.
        token: Arc<AccessToken>,
        /// Whether it came in the access-token cookie (an ambient
        /// credential, which a browser sends on its own) rather than an
        /// `Authorization` header.
        from_cookie: bool,
    },
    /// An API key (`Authorization: Bearer tsk_...`): a machine, not a user.
    /// It has roles but no user, session or login: operations on those
    /// answer 403 `api_key_not_accepted`.
    ApiKey(Arc<ApiKey>),
}

/// The session that a stored session's id names now, if a rotation has
/// replaced it (the store follows the alias the rotation left, within the
/// grace). `None` if the id names nothing, or still names the same session.
async fn successor_of(
    state: &AppState,
    session: &Session,
) -> Result<Option<Arc<Session>>, ApiError> {
    Ok(state
        .sessions
        .load(&session.id_hash, Timestamp::now())
        .await?
        .filter(|now| now.id_hash != session.id_hash))
}

/// What ending one credential did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended(pub u64);

impl Credential {
    /// The user the credential belongs to; `None` for an API key.
    pub fn user_id(&self) -> Option<UserId> {
        match self {
            Self::Stored(session) | Self::Sealed { session, .. } => Some(session.user_id),
            Self::Bearer { token, .. } => Some(token.user_id),
            Self::ApiKey(_) => None,
        }
    }

    /// The user's e-mail address, as the credential carries it; `None` for
    /// an API key.
    pub fn email(&self) -> Option<&Email> {
        match self {
            Self::Stored(session) | Self::Sealed { session, .. } => Some(&session.email),
            Self::Bearer { token, .. } => Some(&token.email),
            Self::ApiKey(_) => None,
        }
    }

    /// The roles, as the credential carries them (a user's, or the key's).
    pub fn roles(&self) -> &[Role] {
        match self {
            Self::Stored(session) | Self::Sealed { session, .. } => &session.roles,
            Self::Bearer { token, .. } => &token.roles,
            Self::ApiKey(key) => &key.roles,
        }
    }

    /// Whether the user's address was verified, as the credential carries
    /// it.
    pub fn email_verified(&self) -> bool {
        match self {
            Self::Stored(session) | Self::Sealed { session, .. } => session.email_verified,
            Self::Bearer { token, .. } => token.email_verified,
            // A machine has no address.
            Self::ApiKey(_) => false,
        }
    }

    /// The session, for credentials that are one.
    pub fn session(&self) -> Option<&Session> {
        match self {
            Self::Stored(session) | Self::Sealed { session, .. } => Some(session),
            Self::Bearer { .. } | Self::ApiKey(_) => None,
        }
    }

    /// The API key, for a machine caller.
    pub fn api_key(&self) -> Option<&ApiKey> {
        match self {
            Self::ApiKey(key) => Some(key),
            _ => None,
        }
    }

    /// Whether a browser sends it by itself (a cookie), so that a cross-site
    /// request could carry it: such requests must pass the CSRF check.
    pub fn is_ambient(&self) -> bool {
        match self {
            Self::Stored(_) | Self::Sealed { .. } => true,
            Self::Bearer { from_cookie, .. } => *from_cookie,
            Self::ApiKey(_) => false,
        }
    }

    /// Who this credential makes the caller, for the audit trail.
    pub fn actor(&self) -> Actor {
        match self {
            Self::Stored(session) | Self::Sealed { session, .. } => Actor::User(session.user_id),
            Self::Bearer { token, .. } => Actor::User(token.user_id),
            Self::ApiKey(key) => Actor::ApiKey(key.id.to_string()),
        }
    }

    /// The public name of this login: the session's handle, or the refresh
    /// family of an access token; `None` for an API key (no login).
    pub fn handle(&self) -> Option<&SessionHandle> {
        match self {
            Self::Stored(session) | Self::Sealed { session, .. } => Some(&session.handle),
            Self::Bearer { token, .. } => Some(&token.handle),
            Self::ApiKey(_) => None,
        }
    }

    /// Who the caller is, for logs: the user's id or the key's.
    pub fn principal(&self) -> String {
        match self {
            Self::ApiKey(key) => format!("apikey:{}", key.id),
            _ => self.user_id().map(|u| u.to_string()).unwrap_or_default(),
        }
    }

    /// Ends this credential alone (logout): the stored session, the sealed
    /// cookie (by revocation), or the access token's refresh family.
    ///
    /// # Errors
    ///
    /// Store errors: the logout is then not acknowledged.
    pub async fn end(&self, state: &AppState) -> Result<Ended, ApiError> {
        match self {
            Self::Stored(session) => {
                if state.sessions.delete(&session.id_hash).await? {
                    return Ok(Ended(1));
                }
                // A concurrent request may have rotated the id since this
                // one read the session: end the successor it now names,
                // or the session would outlive its logout.
                match successor_of(state, session).await? {
                    Some(successor) => Ok(Ended(u64::from(
                        state.sessions.delete(&successor.id_hash).await?,
                    ))),
                    None => Ok(Ended(0)),
                }
            }
            Self::Sealed { session, .. } => {
                state.tokens.revocations().end_sealed(session).await?;
                Ok(Ended(1))
            }
            Self::Bearer { token, .. } => {
                state.tokens.revocations().end_family(&token.family).await?;
                Ok(Ended(1))
            }
            // A key is revoked through the admin API, not logged out.
            Self::ApiKey(_) => Err(ApiError::ApiKeyNotAccepted("logout")),
        }
    }

    /// Merges `patch` into the session's data (RFC 7396). Returns the data
    /// after the merge and, for a sealed session, the re-sealed cookie that
    /// now carries it.
    ///
    /// # Errors
    ///
    /// 401 for an access token (it has no session data) or a session that
    /// ended meanwhile; 403 for an API key; 413 when the data would outgrow
    /// its limit.
    pub async fn merge_data(
        &self,
        state: &AppState,
        patch: &Map<String, Value>,
    ) -> Result<(Map<String, Value>, Option<HeaderValue>), ApiError> {
        match self {
            Self::Stored(session) => {
                let limit = state.config.session_data_max_bytes;
                let mut data = state
                    .sessions
                    .merge_data(&session.id_hash, patch, limit)
                    .await?;
                if data.is_none() {
                    // Rotated by a concurrent request since it was read:
                    // the patch goes to the successor (within the grace).
                    if let Some(successor) = successor_of(state, session).await? {
                        data = state
                            .sessions
                            .merge_data(&successor.id_hash, patch, limit)
                            .await?;
                    }
                }
                Ok((data.ok_or(ApiError::Unauthenticated)?, None))
            }
            Self::Sealed { session, .. } => {
                let sealer = state.sealer.as_ref().ok_or(ApiError::Unauthenticated)?;
                let mut session = Session::clone(session);
                tessera_core::merge::merge_patch(&mut session.data, patch);
                let limit = SEALED_DATA_MAX_BYTES.min(state.config.session_data_max_bytes);
                if tessera_core::store::data_size(&session.data) > limit {
                    return Err(ApiError::SessionDataTooLarge(limit));
                }
                let max_age = state
                    .config
                    .policy
                    .cookie_max_age(&session, Timestamp::now());
                let cookie = state
                    .config
                    .cookie
                    .issue_sealed(sealer.seal(&session), max_age);
                Ok((session.data, Some(cookie)))
            }
            Self::Bearer { .. } => Err(ApiError::Unauthenticated),
            Self::ApiKey(_) => Err(ApiError::ApiKeyNotAccepted("session data")),
        }
    }

    /// The user's live sessions, oldest first, each marked whether it is
    /// this one. Sealed sessions have no server-side list: only this one.
    ///
    /// # Errors
    ///
    /// Store errors.
    pub async fn sessions(&self, state: &AppState) -> Result<Vec<(Session, bool)>, ApiError> {
        let (user, this) = match self {
            Self::Sealed { session, .. } => return Ok(vec![(Session::clone(session), true)]),
            Self::ApiKey(_) => return Err(ApiError::ApiKeyNotAccepted("sessions")),
            Self::Stored(session) => (session.user_id, Some(session.id_hash)),
            Self::Bearer { token, .. } => (token.user_id, None),
        };
        let sessions = state.sessions.list_for_user(user, Timestamp::now()).await?;
        Ok(sessions
            .into_iter()
            .map(|s| {
                let current = Some(s.id_hash) == this;
                (s, current)
            })
            .collect())
    }

    /// Ends the user's session named `handle`. `false` if the user has no
    /// such session.
    ///
    /// # Errors
    ///
    /// Store errors.
    pub async fn end_session(
        &self,
        state: &AppState,
        handle: &SessionHandle,
    ) -> Result<bool, ApiError> {
        let user = match self {
            Self::Sealed { session, .. } => {
                if *handle != session.handle {
                    return Ok(false);
                }
                state.tokens.revocations().end_sealed(session).await?;
                return Ok(true);
            }
            Self::ApiKey(_) => return Err(ApiError::ApiKeyNotAccepted("sessions")),
            Self::Stored(session) => session.user_id,
            Self::Bearer { token, .. } => token.user_id,
        };
        Ok(state.sessions.delete_by_handle(user, handle).await?)
    }
}
