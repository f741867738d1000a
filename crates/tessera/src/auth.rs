//! Session authentication for protected routes.
//!
//! [`require_session`] runs before every protected handler: it reads the
//! session cookie, refuses cross-site state changes, loads the session (an
//! unknown, malformed or expired id is a 401, a store failure a 503), swaps in
//! a fresh id after a privilege change, records activity at most every
//! `touch_interval`, and hands the handler a [`CurrentSession`].

use std::ops::Deref;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use tessera_core::{Session, SessionId, Timestamp};

use crate::error::ApiError;
use crate::state::AppState;

/// The authenticated session of the current request.
#[derive(Debug, Clone)]
pub struct CurrentSession(Arc<Session>);

impl Deref for CurrentSession {
    type Target = Session;
    fn deref(&self) -> &Session {
        &self.0
    }
}

impl CurrentSession {
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
}

/// Middleware for protected routes. See the module documentation.
///
/// # Errors
///
/// 401 without a live session, 403 for a cross-site state change, 503 when
/// the store does not answer.
pub async fn require_session(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let cookie = &state.config.cookie;
    let raw = cookie
        .read(request.headers())
        .ok_or(ApiError::Unauthenticated)?;
    let id = SessionId::parse(raw).map_err(|_| ApiError::Unauthenticated)?;
    state.origins.check(request.method(), request.headers())?;

    let now = Timestamp::now();
    let policy = &state.config.policy;
    let mut session = state
        .sessions
        .load(&id.hash(), now)
        .await?
        .ok_or(ApiError::Unauthenticated)?;

    let mut fresh_cookie = None;
    if session.rotate {
        let (new_id, successor) = policy.successor(&session, now);
        if !state.sessions.rotate(&session.id_hash, &successor).await? {
            return Err(ApiError::Unauthenticated);
        }
        tracing::info!(user = %successor.user_id, "privileges changed: session id rotated");
        fresh_cookie = Some(cookie.issue(&new_id, successor.absolute_expires_at.since(now)));
        session = Arc::new(successor);
    } else if policy.needs_touch(&session, now) {
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

    request.extensions_mut().insert(CurrentSession(session));
    let mut response = next.run(request).await;
    if let Some(value) = fresh_cookie {
        // A handler that already set our cookie (logout clearing it) wins.
        let prefix = format!("{}=", cookie.name());
        let handler_set_it = response
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .any(|v| v.as_bytes().starts_with(prefix.as_bytes()));
        if !handler_set_it {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    Ok(response)
}
