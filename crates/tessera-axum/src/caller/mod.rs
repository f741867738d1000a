//! Who is calling: the extractor of protected routes.
//!
//! Handlers take a [`Caller`] argument. Extracting it decides, here and
//! nowhere else, which [`Credential`] the request carries: a bearer access
//! token (header, or the access-token cookie), an API key (a bearer that
//! starts with `tsk_`), a sealed cookie session, or a session id cookie
//! whose session lives in the store. It refuses cross-site
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
//!
//! The fresh id is derived from the old one with the rotation key (see
//! [`SessionId::successor`]), and the store keeps the old id as an alias of
//! it for `session_rotation_grace`. Requests already in flight with the old
//! id (a page's parallel fetches) therefore still work: the store hands
//! them the successor, the extractor checks that it is the one derived from
//! the presented id, and `reply` gives them the successor's cookie too.
//! Concurrent rotations derive the same id and converge on it.

pub mod credential;
pub mod memo;
pub mod sealed;

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use tessera_core::{ApiKeyToken, Email, Role, Route, Session, SessionId, Timestamp, UserId};

pub use credential::Credential;

use crate::client_ip::Peer;
use crate::error::ApiError;
use crate::state::AppState;
use sealed::CookieSealer;

/// The authenticated caller of the current request.
#[derive(Debug, Clone)]
pub struct Caller {
    credential: Credential,
    /// For a stored session: its secret id (in memory only).
    stored_id: Option<StoredId>,
}

/// The secret id of a stored session, as the extractor established it.
/// `Debug` is redacted (see [`SessionId`]).
#[derive(Debug, Clone)]
struct StoredId {
    /// The id of the session as loaded: the one presented, or the successor
    /// derived from it when the request presented a rotated-away id.
    current: SessionId,
    /// The request presented a predecessor of `current` (within its grace):
    /// the response hands out `current`.
    via_predecessor: bool,
}

impl Caller {
    /// What the caller presented.
    pub fn credential(&self) -> &Credential {
        &self.credential
    }

    /// The caller's user id; `None` for an API key (a machine).
    pub fn user_id(&self) -> Option<UserId> {
        self.credential.user_id()
    }

    /// The caller's e-mail address; `None` for an API key (a machine).
    pub fn email(&self) -> Option<&Email> {
        self.credential.email()
    }

    /// The caller's user id and address, for routes only a user's
    /// credential makes sense for.
    ///
    /// # Errors
    ///
    /// [`ApiError::ApiKeyNotAccepted`] for an API key, naming `what`.
    pub fn user(&self, what: &'static str) -> Result<(UserId, &Email), ApiError> {
        match (self.user_id(), self.email()) {
            (Some(id), Some(email)) => Ok((id, email)),
            _ => Err(ApiError::ApiKeyNotAccepted(what)),
        }
    }

    /// The caller's roles, as their credential carries them.
    pub fn roles(&self) -> &[Role] {
        self.credential.roles()
    }

    /// Whether the caller's address was verified, as their credential
    /// carries it.
    pub fn email_verified(&self) -> bool {
        self.credential.email_verified()
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
    /// on the way out (a fresh session id after a privilege change, the
    /// successor's id to a request that presented a rotated-away one, a
    /// re-sealed cookie after activity), unless the handler set the session
    /// cookie itself, as logout does.
    pub async fn reply(&self, state: &AppState, response: impl IntoResponse) -> Response {
        let mut response = response.into_response();
        if state.config.access_log.is_some()
            && let Some(handle) = self.credential.handle()
        {
            response
                .extensions_mut()
                .insert(crate::observe::LoggedSession(handle.as_str().to_owned()));
        }
        let cookie_value = match (&self.credential, &self.stored_id) {
            (Credential::Stored(session), Some(id)) if session.rotate || id.via_predecessor => None,
            (
                Credential::Sealed {
                    reseal: Some(value),
                    ..
                },
                _,
            ) => Some(value),
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
        let (Credential::Stored(session), Some(id)) = (&self.credential, &self.stored_id) else {
            return response;
        };
        let now = Timestamp::now();
        let issue = match rotate(state, session, &id.current, now).await {
            Some(rotated) => Some(rotated),
            // No rotation (none needed, or deferred): a request that came
            // with a rotated-away id still learns the current one.
            None => id.via_predecessor.then(|| id.current.clone()),
        };
        if let Some(new_id) = issue {
            // The successor keeps the login time and absolute end, and with
            // them whether its cookie outlives the browser.
            let max_age = state.config.policy.cookie_max_age(session, now);
            let value = cookie.issue(&new_id, max_age);
            response.headers_mut().append(header::SET_COOKIE, value);
        }
        response
    }
}

/// Swaps in the successor of a session marked for rotation: the id derived
/// from `current` (so that concurrent rotations converge), with `current`
/// kept as an alias for the grace. The successor's id and absolute expiry,
/// or `None` if the session was not marked or the rotation did not happen.
async fn rotate(
    state: &AppState,
    session: &Session,
    current: &SessionId,
    now: Timestamp,
) -> Option<SessionId> {
    if !session.rotate {
        return None;
    }
    let key = state.tokens.session_rotation_key();
    let (new_id, successor) = state.config.policy.successor(session, current, key, now);
    let grace_until = now.plus(state.config.session_rotation_grace);
    match state
        .sessions
        .rotate(&session.id_hash, &successor, grace_until)
        .await
    {
        Ok(true) => {
            tracing::info!(user = %successor.user_id, "privileges changed: session id rotated");
            Some(new_id)
        }
        Ok(false) => None,
        Err(error) => {
            tracing::warn!(%error, "session id rotation deferred: store error");
            None
        }
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
        let (credential, stored_id) = credential(parts, &state).await?;
        Ok(Self {
            credential,
            stored_id,
        })
    }
}

/// Decides what the request carries and verifies it; for a stored session,
/// also its secret id.
async fn credential(
    parts: &Parts,
    state: &AppState,
) -> Result<(Credential, Option<StoredId>), ApiError> {
    if let Some(token) = bearer_token(&parts.headers) {
        if ApiKeyToken::looks_like(token) {
            // A machine's key: looked up on every request (a revocation
            // reaches every node at once), never mistaken for a token.
            return Ok((
                Credential::ApiKey(state.api_keys.verify(token).await?),
                None,
            ));
        }
        // Not an ambient credential: no CSRF check, no store call.
        return Ok((
            Credential::Bearer {
                token: state.tokens.verify(token)?,
                from_cookie: false,
            },
            None,
        ));
    }
    if state.config.access_token_cookie {
        let access_cookie = state.config.cookie.access_token_cookie();
        if let Some(token) = access_cookie.read(&parts.headers) {
            // A cookie is an ambient credential: refuse cross-site changes.
            state
                .origins
                .check(&parts.method, &parts.headers, Peer::of(&parts.extensions).0)?;
            return Ok((
                Credential::Bearer {
                    token: state.tokens.verify(token)?,
                    from_cookie: true,
                },
                None,
            ));
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
        return Ok((sealed_session(state, sealer, raw)?, None));
    }
    let id = SessionId::parse(raw).map_err(|_| ApiError::Unauthenticated)?;
    state
        .origins
        .check(&parts.method, &parts.headers, Peer::of(&parts.extensions).0)?;

    let now = Timestamp::now();
    let policy = &state.config.policy;
    let presented = id.hash();
    let mut session = state
        .sessions
        .load(&presented, now)
        .await?
        .ok_or(ApiError::Unauthenticated)?;
    let stored_id = if session.id_hash == presented {
        StoredId {
            current: id,
            via_predecessor: false,
        }
    } else {
        // A rotated-away id within its grace: the store followed its alias.
        // Accept it only for the successor derived from this very id (which
        // is also the only one whose cookie we can hand out).
        let successor = id.successor(
            state.tokens.session_rotation_key(),
            Route::of(session.user_id),
        );
        if successor.hash() != session.id_hash {
            return Err(ApiError::Unauthenticated);
        }
        StoredId {
            current: successor,
            via_predecessor: true,
        }
    };
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
    Ok((Credential::Stored(session), Some(stored_id)))
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
        let max_age = policy.cookie_max_age(touched, now);
        reseal = Some(
            state
                .config
                .cookie
                .issue_sealed(sealer.seal(touched), max_age),
        );
    }
    Ok(Credential::Sealed { session, reseal })
}
