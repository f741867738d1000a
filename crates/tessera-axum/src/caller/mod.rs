//! Who is calling: the extractor of protected routes.
//!
//! Handlers take a [`Caller`] argument. Extracting it decides, here and
//! nowhere else, which [`Credential`] the request carries: a bearer access
//! token (header, or the access-token cookie), a sealed cookie session, or a
//! session id cookie whose session lives in the store. It refuses cross-site
//! state changes made with an ambient (cookie) credential, verifies the
//! credential (an unknown, malformed, expired or revoked one is a 401, a
//! store failure a 503) and records activity at most every `touch_interval`.
//!
//! After a privilege change a stored session is marked for a fresh id.
//! Handlers finish with [`Caller::reply`], which swaps in the fresh id (or
//! sends a re-sealed cookie) on the way out, whether the handler succeeded
//! or not. Doing it at the end (rather than in a middleware around every
//! route) keeps the common path to one store read; if a request ends before
//! `reply` (e.g. its body is rejected), the old id stays marked and the next
//! request rotates it: rotation is deferred, never skipped.

pub mod credential;
pub mod memo;
pub mod sealed;

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use tessera_core::{Email, Role, SessionId, Timestamp, UserId};

pub use credential::Credential;

use crate::client_ip::Peer;
use crate::error::ApiError;
use crate::state::AppState;
use sealed::CookieSealer;

/// The authenticated caller of the current request.
#[derive(Debug, Clone)]
pub struct Caller {
    credential: Credential,
}

impl Caller {
    /// What the caller presented.
    pub fn credential(&self) -> &Credential {
        &self.credential
    }

    /// The caller's user id.
    pub fn user_id(&self) -> UserId {
        self.credential.user_id()
    }

    /// The caller's e-mail address.
    pub fn email(&self) -> &Email {
        self.credential.email()
    }

    /// The caller's roles, as their credential carries them.
    pub fn roles(&self) -> &[Role] {
        self.credential.roles()
    }

    /// Refuses the request unless the caller holds `role`.
    ///
    /// # Errors
    ///
    /// [`ApiError::Forbidden`].
    pub fn require_role(&self, role: &'static str) -> Result<(), ApiError> {
        if self.roles().iter().any(|r| r.as_str() == role) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(role))
        }
    }

    /// Finishes a protected request: carries out what the credential needs
    /// on the way out (a fresh session id after a privilege change, a
    /// re-sealed cookie after activity), unless the handler set the session
    /// cookie itself, as logout does.
    pub async fn reply(&self, state: &AppState, response: impl IntoResponse) -> Response {
        let mut response = response.into_response();
        let cookie_value = match &self.credential {
            Credential::Stored(session) if session.rotate => None,
            Credential::Sealed {
                reseal: Some(value),
                ..
            } => Some(value),
            _ => return response,
        };
        let cookie = &state.config.cookie;
        let prefix = format!("{}=", cookie.name());
        let handler_set_cookie = response
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .any(|v| v.as_bytes().starts_with(prefix.as_bytes()));
        if handler_set_cookie {
            return response;
        }
        if let Some(value) = cookie_value {
            response
                .headers_mut()
                .append(header::SET_COOKIE, value.clone());
            return response;
        }
        let Credential::Stored(session) = &self.credential else {
            return response;
        };
        let now = Timestamp::now();
        let (new_id, successor) = state.config.policy.successor(session, now);
        match state.sessions.rotate(&session.id_hash, &successor).await {
            Ok(true) => {
                tracing::info!(user = %successor.user_id, "privileges changed: session id rotated");
                let value = cookie.issue(&new_id, successor.absolute_expires_at.since(now));
                response.headers_mut().append(header::SET_COOKIE, value);
            }
            Ok(false) => {}
            Err(error) => tracing::warn!(%error, "session id rotation deferred: store error"),
        }
        response
    }
}

/// Extractable in tessera's routes and in an embedding app's own, whose
/// state gives access to tessera's (`Arc<AppState>: FromRef<S>`).
impl<S> FromRequestParts<S> for Caller
where
    Arc<AppState>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = Arc::<AppState>::from_ref(state);
        let credential = credential(parts, &state).await?;
        Ok(Self { credential })
    }
}

/// Decides what the request carries and verifies it.
async fn credential(parts: &Parts, state: &AppState) -> Result<Credential, ApiError> {
    if let Some(token) = bearer_token(&parts.headers) {
        // Not an ambient credential: no CSRF check, no store call.
        return Ok(Credential::Bearer {
            token: state.tokens.verify(token)?,
            from_cookie: false,
        });
    }
    if state.config.access_token_cookie {
        let access_cookie = state.config.cookie.access_token_cookie();
        if let Some(token) = access_cookie.read(&parts.headers) {
            // A cookie is an ambient credential: refuse cross-site changes.
            state
                .origins
                .check(&parts.method, &parts.headers, Peer::of(&parts.extensions).0)?;
            return Ok(Credential::Bearer {
                token: state.tokens.verify(token)?,
                from_cookie: true,
            });
        }
    }
    let raw = state
        .config
        .cookie
        .read(&parts.headers)
        .ok_or(ApiError::Unauthenticated)?;
    if let Some(sealer) = &state.sealer {
        state
            .origins
            .check(&parts.method, &parts.headers, Peer::of(&parts.extensions).0)?;
        return sealed_session(state, sealer, raw);
    }
    let id = SessionId::parse(raw).map_err(|_| ApiError::Unauthenticated)?;
    state
        .origins
        .check(&parts.method, &parts.headers, Peer::of(&parts.extensions).0)?;

    let now = Timestamp::now();
    let policy = &state.config.policy;
    let mut session = state
        .sessions
        .load(&id.hash(), now)
        .await?
        .ok_or(ApiError::Unauthenticated)?;
    if !session.rotate && policy.needs_touch(&session, now) {
        let expires_at = policy.expiry_after_activity(&session, now);
        if !state
            .sessions
            .touch(&session.id_hash, now, expires_at)
            .await?
        {
            return Err(ApiError::Unauthenticated);
        }
        let touched = Arc::make_mut(&mut session);
        touched.last_seen = now;
        touched.expires_at = expires_at;
    }
    Ok(Credential::Stored(session))
}

/// The token of an `Authorization: Bearer ...` header, if there is one.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Authenticates a sealed cookie session: open, check expiry and the
/// revocation list, and re-seal when activity should be recorded.
fn sealed_session(
    state: &AppState,
    sealer: &CookieSealer,
    raw: &str,
) -> Result<Credential, ApiError> {
    let policy = &state.config.policy;
    let now = Timestamp::now();
    let mut session = sealer
        .open_shared(raw, policy)
        .ok_or(ApiError::Unauthenticated)?;
    if !policy.is_live(&session, now)
        || state
            .tokens
            .revocations()
            .list()
            .is_session_revoked(&session)
    {
        return Err(ApiError::Unauthenticated);
    }
    let mut reseal: Option<HeaderValue> = None;
    if policy.needs_touch(&session, now) {
        let touched = Arc::make_mut(&mut session);
        touched.expires_at = policy.expiry_after_activity(touched, now);
        touched.last_seen = now;
        let max_age = touched.absolute_expires_at.since(now);
        reseal = Some(
            state
                .config
                .cookie
                .issue_sealed(sealer.seal(touched), max_age),
        );
    }
    Ok(Credential::Sealed { session, reseal })
}
