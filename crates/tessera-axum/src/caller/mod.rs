//! Session authentication for protected routes.
//!
//! Handlers take a [`CurrentSession`] argument. Extracting it reads the
//! session cookie, refuses cross-site state changes, loads the session (an
//! unknown, malformed or expired id is a 401, a store failure a 503) and
//! records activity at most every `touch_interval`.
//!
//! After a privilege change the session is marked for a fresh id. Handlers
//! finish with [`CurrentSession::reply`], which swaps in the fresh id and
//! sets the new cookie on the way out, whether the handler succeeded or not.
//! Doing it at the end (rather than in a middleware around every route)
//! keeps the common path to one store read; if a request ends before `reply`
//! (e.g. its body is rejected), the old id stays marked and the next request
//! rotates it: rotation is deferred, never skipped.

pub mod memo;
pub mod sealed;

use std::ops::Deref;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use tessera_core::{Session, SessionId, Timestamp};

use crate::error::ApiError;
use crate::state::AppState;

/// The authenticated caller of the current request: a cookie session, or a
/// bearer access token seen through a session-shaped view.
#[derive(Debug, Clone)]
pub struct CurrentSession {
    session: Arc<Session>,
    bearer: bool,
    /// A re-sealed cookie to send (cookie storage, activity recorded).
    pending_cookie: Option<axum::http::HeaderValue>,
}

impl Deref for CurrentSession {
    type Target = Session;
    fn deref(&self) -> &Session {
        &self.session
    }
}

impl CurrentSession {
    /// Whether the caller authenticated with a bearer access token (then
    /// `handle` is the token's family id).
    pub fn is_bearer(&self) -> bool {
        self.bearer
    }

    /// Refuses the request unless the session holds `role`.
    ///
    /// # Errors
    ///
    /// [`ApiError::Forbidden`].
    pub fn require_role(&self, role: &'static str) -> Result<(), ApiError> {
        if self.roles.iter().any(|r| r.as_str() == role) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(role))
        }
    }

    /// Finishes a protected request: if the session's privileges changed,
    /// replaces its id with a fresh one and sets the new cookie (unless the
    /// handler set the cookie itself, as logout does).
    pub async fn reply(&self, state: &AppState, response: impl IntoResponse) -> Response {
        let mut response = response.into_response();
        if !self.rotate && self.pending_cookie.is_none() {
            return response;
        }
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
        if let Some(value) = &self.pending_cookie {
            response
                .headers_mut()
                .append(header::SET_COOKIE, value.clone());
            return response;
        }
        let now = Timestamp::now();
        let (new_id, successor) = state.config.policy.successor(self, now);
        match state.sessions.rotate(&self.id_hash, &successor).await {
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

impl FromRequestParts<Arc<AppState>> for CurrentSession {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        if let Some(token) = bearer_token(&parts.headers) {
            // Not an ambient credential: no CSRF check, no store call.
            return Ok(Self {
                session: state.tokens.authenticate(token)?,
                bearer: true,
                pending_cookie: None,
            });
        }
        if state.config.access_token_cookie {
            let access_cookie = state
                .config
                .cookie
                .renamed(crate::cookies::ACCESS_TOKEN_COOKIE);
            if let Some(token) = access_cookie.read(&parts.headers) {
                // A cookie is an ambient credential: refuse cross-site changes.
                state.origins.check(&parts.method, &parts.headers)?;
                return Ok(Self {
                    session: state.tokens.authenticate(token)?,
                    bearer: true,
                    pending_cookie: None,
                });
            }
        }
        let raw = state
            .config
            .cookie
            .read(&parts.headers)
            .ok_or(ApiError::Unauthenticated)?;
        if let Some(sealer) = &state.config.cookie_sessions {
            state.origins.check(&parts.method, &parts.headers)?;
            return sealed_session(state, sealer, raw);
        }
        let id = SessionId::parse(raw).map_err(|_| ApiError::Unauthenticated)?;
        state.origins.check(&parts.method, &parts.headers)?;

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
        Ok(Self {
            session,
            bearer: false,
            pending_cookie: None,
        })
    }
}

/// The token of an `Authorization: Bearer ...` header, if there is one.
fn bearer_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Authenticates a sealed cookie session: open, check expiry and the
/// revocation list, and re-seal when activity should be recorded.
fn sealed_session(
    state: &AppState,
    sealer: &crate::caller::sealed::CookieSealer,
    raw: &str,
) -> Result<CurrentSession, ApiError> {
    let policy = &state.config.policy;
    let now = Timestamp::now();
    let mut session = sealer
        .open_shared(raw, policy)
        .ok_or(ApiError::Unauthenticated)?;
    if !policy.is_live(&session, now) || state.tokens.revocations().is_session_revoked(&session) {
        return Err(ApiError::Unauthenticated);
    }
    let mut pending_cookie = None;
    if policy.needs_touch(&session, now) {
        let touched = Arc::make_mut(&mut session);
        touched.expires_at = policy.expiry_after_activity(touched, now);
        touched.last_seen = now;
        let max_age = touched.absolute_expires_at.since(now);
        pending_cookie = Some(
            state
                .config
                .cookie
                .issue_sealed(sealer.seal(touched), max_age),
        );
    }
    Ok(CurrentSession {
        session,
        bearer: false,
        pending_cookie,
    })
}
