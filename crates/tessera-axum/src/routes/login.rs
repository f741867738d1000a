//! `POST /login` and `POST /logout`.

use crate::metrics::LoginResult;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::response::{AppendHeaders, IntoResponse, Response};
use serde::Deserialize;
use tessera_core::{
    Actor, AuditEvent, AuditKind, Email, Password, SessionHandle, SessionId, SessionMeta,
    Timestamp, User, Verification,
};
use utoipa::ToSchema;

use crate::audit::AuditContext;
use crate::caller::Caller;
use crate::client_ip::client_ip;
use crate::error::{ApiError, ErrorBody};
use crate::json::{ApiJson, Json, OptionalJson};
use crate::openapi::{
    PayloadTooLarge, RequestTimeout, TooManyRequests, Unauthorized, Unavailable,
    UnsupportedMediaType,
};
use crate::routes::{SessionBody, SessionsEnded};
use crate::state::AppState;
use crate::throttle::Refusal;

/// At most one `login_throttled` audit event per client this often.
const THROTTLED_SAMPLE: Duration = Duration::from_secs(10);

/// Credentials. `Debug` never shows the password (see [`Password`]).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "alice@example.com", "password": "an example passphrase 42"}))]
pub struct Credentials {
    /// The account's address (any spelling of it).
    email: String,
    /// The password; never logged.
    #[schema(format = Password)]
    password: String,
    /// "Remember me" (default `true`): `false` gives a browser-session
    /// cookie and the shorter transient lifetime (tokens: a refresh family
    /// that lives no longer than that).
    #[serde(default = "remembered")]
    remember: bool,
}

fn remembered() -> bool {
    true
}

impl Credentials {
    /// Credentials typed again by a logged-in user to confirm a change.
    pub fn confirming(email: &Email, password: String) -> Self {
        Self {
            email: email.as_str().to_owned(),
            password,
            remember: true,
        }
    }

    /// Whether the client asked to be remembered.
    pub fn remember(&self) -> bool {
        self.remember
    }
}

/// Where a login request comes from: refused if it is a cross-site request
/// (login CSRF), else the client's address for throttling and the session.
///
/// # Errors
///
/// 403 for another site's request.
pub fn login_origin(
    state: &AppState,
    peer: SocketAddr,
    method: &Method,
    headers: &HeaderMap,
) -> Result<std::net::IpAddr, ApiError> {
    state.origins.check(method, headers, Some(peer))?;
    Ok(client_ip(peer, headers, &state.config.trusted_proxies))
}

/// A successful login: the user, and the device cookie that keeps this
/// client's own login budget for the account from now on.
#[derive(Debug)]
pub struct Authenticated {
    /// Who logged in.
    pub user: User,
    /// `Set-Cookie` value of a fresh device cookie.
    pub device_cookie: HeaderValue,
    /// Where the login came from, for its audit events.
    pub context: AuditContext,
}

impl Authenticated {
    /// Records the `login_succeeded` event, naming the session (or token
    /// family) the login started.
    pub fn record_login(&self, state: &AppState, how: &str, handle: &SessionHandle) {
        state.audit.record(
            self.context
                .event_about(AuditKind::LoginSucceeded, self.user.id)
                .session(Some(handle.as_str()))
                .detail(how),
        );
    }
}

/// Checks credentials with throttling, bounded hashing and no enumeration:
/// unknown user, wrong password and disabled user give the same error after
/// the same amount of work. A client with a device cookie for the account
/// draws from its own budget (see [`crate::throttle`]). Shared by every way
/// of logging in.
///
/// # Errors
///
/// 401 invalid credentials, 429 throttled, 503 busy or store down.
pub async fn authenticate(
    state: &AppState,
    ip: std::net::IpAddr,
    headers: &HeaderMap,
    credentials: Credentials,
) -> Result<Authenticated, ApiError> {
    let mut result = LoginResult::Unavailable;
    let outcome = authenticate_counted(state, ip, headers, credentials, &mut result).await;
    state.metrics().login(result);
    outcome
}

/// [`authenticate`], saying in `result` how it ended.
async fn authenticate_counted(
    state: &AppState,
    ip: std::net::IpAddr,
    headers: &HeaderMap,
    credentials: Credentials,
    result: &mut LoginResult,
) -> Result<Authenticated, ApiError> {
    let Credentials {
        email, password, ..
    } = credentials;
    let context = AuditContext::request(Some(ip), headers);
    let device = state.config.cookie.device_cookie();
    let attempt = state.throttle.attempt(ip, &email, device.read(headers));
    state
        .throttle
        .begin(&attempt)
        .await
        .map_err(|refusal| match refusal {
            Refusal::Wait(retry_after) => {
                // Refusals cost an attacker no hashing: at most one event
                // per client every THROTTLED_SAMPLE, with a count, and a
                // channel send (under a flood the bounded queue drops and
                // counts). The account is not looked up for it.
                state.audit.record_sampled(
                    attempt.client(),
                    THROTTLED_SAMPLE,
                    context.event(AuditKind::LoginThrottled).detail(format!(
                        "refused before any check; retry after {} s",
                        retry_after.as_secs()
                    )),
                );
                *result = LoginResult::Throttled;
                ApiError::Throttled { retry_after }
            }
            Refusal::Unavailable(e) => ApiError::from(e),
        })?;
    let user = match Email::parse(&email) {
        Ok(email) => state.users.by_email(&email).await?,
        Err(_) => None,
    };
    let stored = user.as_ref().map(|u| u.password_hash.clone());
    let password = Password::new(password);
    let (verification, password) = state
        .hashing
        .run_for(attempt.client(), move |hasher| {
            (hasher.verify(&password, stored.as_ref()), password)
        })
        .await
        .map_err(|_| {
            *result = LoginResult::Busy;
            ApiError::Busy {
                retry_after: Duration::from_secs(1),
            }
        })?;
    let user = match (user, verification) {
        (Some(user), Verification::Valid { needs_rehash }) if !user.disabled => {
            if needs_rehash {
                upgrade_hash(state, &user, password);
            }
            crate::accounts::warn_if_mixed_script(&user);
            user
        }
        (user, verification) => {
            let (subject, why) = match (&user, verification) {
                (None, _) => (None, "no such account"),
                (Some(u), Verification::Valid { .. }) if u.disabled => {
                    *result = LoginResult::Disabled;
                    (Some(u.id), "account disabled")
                }
                (Some(u), _) => (Some(u.id), "wrong password"),
            };
            if *result != LoginResult::Disabled {
                *result = LoginResult::BadCredentials;
            }
            state.audit.record(
                context
                    .event(AuditKind::LoginFailed)
                    .subject(subject)
                    .detail(why),
            );
            return Err(ApiError::InvalidCredentials);
        }
    };
    let token = state.throttle.finish_success(&attempt).await;
    // Only now, with the password checked: a guesser learns nothing.
    if state.config.self_service.require_verified_email && !user.email_verified {
        *result = LoginResult::EmailNotVerified;
        return Err(ApiError::EmailNotVerified);
    }
    *result = LoginResult::Ok;
    let device_cookie = device.issue_sealed(token, Some(state.throttle.device_lifetime()));
    Ok(Authenticated {
        user,
        device_cookie,
        context,
    })
}

/// Replaces an outdated hash (e.g. imported bcrypt) after a successful login,
/// in the background: the login does not wait for it.
fn upgrade_hash(state: &AppState, user: &User, password: Password) {
    let hashing = state.hashing.clone();
    let users = Arc::clone(&state.users);
    let id = user.id;
    tokio::spawn(async move {
        match hashing.run(move |hasher| hasher.hash(&password)).await {
            Ok(Ok(hash)) => match users.set_password_hash(id, &hash).await {
                Ok(_) => tracing::info!(user = %id, "password rehashed to argon2id"),
                Err(error) => {
                    tracing::warn!(user = %id, %error, "could not store the upgraded hash")
                }
            },
            Ok(Err(error)) => tracing::warn!(user = %id, %error, "rehash failed"),
            Err(_) => {
                tracing::debug!(user = %id, "hashing busy; rehash deferred to the next login")
            }
        }
    });
}

/// `POST /login`: `{"email", "password"}` → 200 with the user and a fresh
/// session cookie. Any session cookie the client sent is ended, never adopted.
///
/// # Errors
///
/// See [`authenticate`]; 403 for a cross-site login attempt.
#[utoipa::path(
    post,
    path = "/login",
    operation_id = "login",
    tag = "sessions",
    request_body = Credentials,
    responses(
        (status = 200, description = "Logged in: the session cookie (and a device cookie) in `Set-Cookie`.", body = SessionBody,
            headers(("Set-Cookie" = String, description = "The session cookie, then the device cookie."))),
        (status = 400, description = "`invalid_json`: the body is not the credentials object.", body = ErrorBody),
        (status = 401, description = "`invalid_credentials`: unknown address, wrong password or disabled account (one answer for all).", body = ErrorBody),
        (status = 403, description = "`cross_site_request` (another site's login), `email_not_verified` (with `require_verified_email`, after the password checked out).", body = ErrorBody),
        (status = 408, response = RequestTimeout),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn login(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
    ApiJson(credentials): ApiJson<Credentials>,
) -> Result<Response, ApiError> {
    let ip = login_origin(&state, peer, &method, &headers)?;
    let remember = credentials.remember();
    let authenticated = authenticate(&state, ip, &headers, credentials).await?;
    let user = &authenticated.user;

    end_presented_session(&state, &headers).await?;
    let (cookie, session) = start_session(&state, user, ip, &headers, remember).await?;
    tracing::info!(user = %user.id, session = %session.handle.as_str(), "login");
    authenticated.record_login(&state, "session", &session.handle);
    let body = SessionBody::of(&session);
    let cookies = AppendHeaders([
        (header::SET_COOKIE, cookie),
        (header::SET_COOKIE, authenticated.device_cookie),
    ]);
    Ok((cookies, body).into_response())
}

/// Starts a session for `user` (as a login does: a fresh id, the user's
/// oldest sessions ended past `max_sessions_per_user`) and returns its
/// `Set-Cookie` value. Sealed-cookie mode stores nothing.
///
/// # Errors
///
/// 503 when the session store does not answer.
pub async fn start_session(
    state: &AppState,
    user: &User,
    ip: std::net::IpAddr,
    headers: &HeaderMap,
    remember: bool,
) -> Result<(HeaderValue, tessera_core::Session), ApiError> {
    let mut now = Timestamp::now();
    if state.sealer.is_some() {
        // A "revoked before" cutoff set within this second (a password
        // change, "log out everywhere") is rounded up to the next whole
        // second: a sealed session logged in before then would be refused
        // at once. Its login time starts at the cutoff.
        if let Some(cutoff) = state.tokens.revocations().list().cutoff(user.id) {
            now = now.max(cutoff);
        }
    }
    let meta = SessionMeta {
        ip: Some(ip.to_string()),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    };
    let policy = &state.config.policy;
    let (id, session) = if remember {
        policy.start(user, meta, now)
    } else {
        policy.start_transient(user, meta, now)
    };
    let max_age = policy.cookie_max_age(&session, now);
    let cookie = match &state.sealer {
        Some(sealer) => state
            .config
            .cookie
            .issue_sealed(sealer.seal(&session), max_age),
        None => {
            let cap = state.config.max_sessions_per_user;
            for old in state.sessions.create(&session, cap).await? {
                tracing::info!(
                    user = %user.id,
                    session = %old.handle.as_str(),
                    max = cap.get(),
                    "session ended: past max_sessions_per_user"
                );
                state.audit.record(
                    AuditEvent::new(AuditKind::SessionEnded, Actor::System)
                        .subject(user.id)
                        .ip(ip)
                        .user_agent(session.user_agent.clone())
                        .session(Some(old.handle.as_str()))
                        .detail(format!(
                            "the oldest past max_sessions_per_user ({}), at a new login",
                            cap.get()
                        )),
                );
            }
            state.config.cookie.issue(&id, max_age)
        }
    };
    Ok((cookie, session))
}

/// Ends the session whose cookie came with a login request: a login always
/// starts a fresh session and never adopts or keeps the presented one.
async fn end_presented_session(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(raw) = state.config.cookie.read(headers) else {
        return Ok(());
    };
    match &state.sealer {
        Some(sealer) => {
            if let Some(old) = sealer.open(raw, &state.config.policy) {
                state.tokens.revocations().end_sealed(&old).await?;
            }
        }
        None => {
            // A replaced id still within its grace names its successor:
            // end the session it names, not only its own hash.
            if let Ok(old) = SessionId::parse(raw)
                && let Some(session) = state.sessions.load(&old.hash(), Timestamp::now()).await?
            {
                state.sessions.delete(&session.id_hash).await?;
            }
        }
    }
    Ok(())
}

/// Body of `POST /logout` (optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogoutRequest {
    /// End every session and token of the user, not only this one.
    #[serde(default)]
    everywhere: bool,
}

/// `POST /logout`: ends this session (or, with `{"everywhere": true}`, all of
/// the user's sessions and tokens) and clears the cookie. 503 if the store
/// cannot record the logout: the client is then not told it succeeded.
#[utoipa::path(
    post,
    path = "/logout",
    operation_id = "logout",
    tag = "sessions",
    request_body(content = LogoutRequest, description = "Optional (the document marks it so): no body ends this session only."),
    security(("session_cookie" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Ended; the cookie is cleared.", body = SessionsEnded),
        (status = 400, description = "`invalid_json`.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, description = "`cross_site_request` (a cookie caller's request from another site), `api_key_not_accepted`.", body = ErrorBody),
        (status = 408, response = RequestTimeout),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn logout(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    context: AuditContext,
    OptionalJson(request): OptionalJson<LogoutRequest>,
) -> Response {
    let context = context.by(&caller);
    let result = end_sessions(&state, &caller, &context, &request).await;
    caller.reply(&state, result).await
}

async fn end_sessions(
    state: &AppState,
    caller: &Caller,
    context: &AuditContext,
    request: &LogoutRequest,
) -> Result<Response, ApiError> {
    let (user, _) = caller.user("logout")?;
    let ended = if request.everywhere {
        let (sessions, families) = state.accounts.end_everything(context, user).await?;
        sessions + families
    } else {
        let ended = caller.credential().end(state).await?.0;
        state.audit.record(
            context
                .event_about(AuditKind::LoggedOut, user)
                .detail(format!("{ended} ended")),
        );
        ended
    };
    tracing::info!(%user, ended, everywhere = request.everywhere, "logout");
    let mut response = (
        [(header::SET_COOKIE, state.config.cookie.clear())],
        Json(SessionsEnded {
            sessions_ended: ended,
        }),
    )
        .into_response();
    if state.config.access_token_cookie {
        let access_cookie = state.config.cookie.access_token_cookie();
        response
            .headers_mut()
            .append(header::SET_COOKIE, access_cookie.clear());
    }
    Ok(response)
}
