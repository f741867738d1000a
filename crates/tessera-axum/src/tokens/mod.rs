//! Stateless access tokens and the state that makes them revocable:
//! refresh-token families with rotation and reuse detection, and an
//! in-memory revocation list checked in O(1) on every verification.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};
use tessera_core::{
    ChainKey, Email, FamilyId, Presented, RefreshToken, Revocation, Role, Session, SessionHandle,
    SessionIdHash, StoreError, Timestamp, TokenFamily, TokenStore, User, UserId, UserStore,
};
use tessera_token::claims::Audience;
use tessera_token::jwk::Jwks;
use tessera_token::{AccessClaims, KeySet, TokenError, Validation};

use crate::error::ApiError;

/// Token lifetimes and names.
#[derive(Debug, Clone)]
pub struct TokenConfig {
    /// `iss` of issued tokens, required on verification.
    pub issuer: String,
    /// `aud` of issued tokens, required on verification.
    pub audience: String,
    /// Access-token lifetime.
    pub access_ttl: Duration,
    /// Absolute lifetime of a refresh family.
    pub refresh_ttl: Duration,
    /// Clock skew allowed on `exp`, `nbf`, `iat`.
    pub leeway: Duration,
    /// How long a just-rotated refresh token still yields the same successor.
    pub grace: Duration,
    /// How long a per-user cutoff ("log out everywhere") must be kept: the
    /// longest lifetime of anything it revokes (access tokens, and sealed
    /// cookie sessions up to their absolute timeout).
    pub cutoff_lifetime: Duration,
}

impl Default for TokenConfig {
    fn default() -> Self {
        Self {
            issuer: "tessera".into(),
            audience: "tessera".into(),
            access_ttl: Duration::from_secs(900),
            refresh_ttl: Duration::from_secs(30 * 24 * 3600),
            leeway: Duration::from_secs(30),
            grace: Duration::from_secs(10),
            cutoff_lifetime: Duration::from_secs(24 * 3600),
        }
    }
}

/// The OAuth 2.0 token response (RFC 6749 §5.1).
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    /// Absent when the access token travels in an `HttpOnly` cookie instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    access_token: Option<String>,
    token_type: &'static str,
    expires_in: u64,
    refresh_token: String,
}

impl TokenResponse {
    /// Takes the access token out of the body (to send it as a cookie).
    pub fn take_access_token(&mut self) -> Option<String> {
        self.access_token.take()
    }

    /// Lifetime of the access token.
    pub fn expires_in(&self) -> Duration {
        Duration::from_secs(self.expires_in)
    }
}

/// Revoked families, tokens and per-user cutoffs, in memory. Entries expire
/// with the tokens they concern, so the list stays as small as the number of
/// revocations within one access-token lifetime. One lock, three hash lookups
/// per check.
#[derive(Debug, Default)]
pub struct RevocationList {
    inner: RwLock<Revoked>,
}

#[derive(Debug, Default)]
struct Revoked {
    families: HashMap<String, Timestamp>,
    tokens: HashMap<String, Timestamp>,
    users: HashMap<UserId, Timestamp>,
}

impl RevocationList {
    /// Adds a revocation (never removes one: revocations are only undone by expiry).
    pub fn apply(&self, revocation: &Revocation) {
        let mut revoked = write(&self.inner);
        match revocation {
            Revocation::Family { id, until } => {
                revoked.families.insert(id.to_string(), *until);
            }
            Revocation::Token { jti, until } => {
                revoked.tokens.insert(jti.clone(), *until);
            }
            Revocation::UserBefore { user, before, .. } => {
                let cutoff = revoked.users.entry(*user).or_insert(*before);
                *cutoff = (*cutoff).max(*before);
            }
        }
    }

    /// Whether the token is revoked.
    pub fn is_revoked(&self, claims: &AccessClaims, user: UserId) -> bool {
        let revoked = read(&self.inner);
        revoked.families.contains_key(&claims.sid)
            || revoked.tokens.contains_key(&claims.jti)
            || revoked
                .users
                .get(&user)
                .is_some_and(|cutoff| claims.iat.saturating_mul(1000) < cutoff.unix_millis())
    }

    /// Whether a sealed cookie session (by handle, user and login time) is revoked.
    pub fn is_session_revoked(&self, session: &Session) -> bool {
        let revoked = read(&self.inner);
        revoked.families.contains_key(session.handle.as_str())
            || revoked
                .users
                .get(&session.user_id)
                .is_some_and(|cutoff| session.created_at < *cutoff)
    }

    /// The user's "revoked before" cutoff, if any.
    pub fn cutoff(&self, user: UserId) -> Option<Timestamp> {
        read(&self.inner).users.get(&user).copied()
    }

    /// Drops entries whose tokens have all expired (cutoffs are kept for
    /// one access-token lifetime after they were set).
    pub fn prune(&self, now: Timestamp, access_ttl: Duration) {
        let mut revoked = write(&self.inner);
        revoked.families.retain(|_, until| now < *until);
        revoked.tokens.retain(|_, until| now < *until);
        revoked
            .users
            .retain(|_, cutoff| now < cutoff.plus(access_ttl));
    }

    /// Entry counts (families, tokens, users), for reporting memory use.
    pub fn len(&self) -> (usize, usize, usize) {
        let revoked = read(&self.inner);
        (
            revoked.families.len(),
            revoked.tokens.len(),
            revoked.users.len(),
        )
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == (0, 0, 0)
    }
}

#[derive(Debug)]
struct Verified {
    claims: AccessClaims,
    user: UserId,
    session: Arc<Session>,
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

/// Issues, verifies, refreshes and revokes tokens.
pub struct TokenService {
    config: TokenConfig,
    keys: RwLock<Arc<KeySet>>,
    verified: crate::caller::memo::VerifiedCache<Verified>,
    last_sync: std::sync::Mutex<Option<Timestamp>>,
    chain: ChainKey,
    store: Arc<dyn TokenStore>,
    revoked: RevocationList,
    validation: Validation,
}

impl std::fmt::Debug for TokenService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenService")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn unix_secs(t: Timestamp) -> i64 {
    t.unix_seconds()
}

impl TokenService {
    /// A service signing with `keys`, deriving refresh successors with
    /// `chain`, keeping families and revocations in `store`.
    pub fn new(
        config: TokenConfig,
        keys: KeySet,
        chain: ChainKey,
        store: Arc<dyn TokenStore>,
    ) -> Self {
        let validation = Validation {
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            leeway_secs: i64::try_from(config.leeway.as_secs()).unwrap_or(i64::MAX),
        };
        Self {
            config,
            keys: RwLock::new(Arc::new(keys)),
            verified: crate::caller::memo::VerifiedCache::default(),
            last_sync: std::sync::Mutex::new(None),
            chain,
            store,
            revoked: RevocationList::default(),
            validation,
        }
    }

    /// The settings.
    pub fn config(&self) -> &TokenConfig {
        &self.config
    }

    /// The current key set.
    pub fn keys(&self) -> Arc<KeySet> {
        Arc::clone(&read(&self.keys))
    }

    /// Replaces the key set (after `tessera keys rotate` changed the file).
    pub fn replace_keys(&self, keys: KeySet) {
        *write(&self.keys) = Arc::new(keys);
        self.verified.clear();
    }

    /// The public keys.
    pub fn jwks(&self) -> Jwks {
        self.keys().jwks()
    }

    /// The in-memory revocation list.
    pub fn revocations(&self) -> &RevocationList {
        &self.revoked
    }

    /// Loads persisted revocations into memory (at start-up, and
    /// periodically so that other processes' revocations arrive).
    ///
    /// # Errors
    ///
    /// Store errors.
    pub async fn sync_revocations(&self) -> Result<usize, StoreError> {
        let now = Timestamp::now();
        // After the first full load, fetch only what was saved since the last
        // sync, overlapping it by a few seconds so that a revocation saved by
        // another process just before that read is not missed.
        let since = self
            .last_sync
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map(|t| Timestamp::from_unix_millis(t.unix_millis() - 5_000));
        let loaded = self.store.load_revocations(now, since).await?;
        for r in &loaded {
            self.revoked.apply(r);
        }
        *self.last_sync.lock().unwrap_or_else(|e| e.into_inner()) = Some(now);
        Ok(loaded.len())
    }

    /// Reloads the whole revocation list from the store (after a lost
    /// subscription, when announcements may have been missed).
    ///
    /// # Errors
    ///
    /// Store errors.
    pub async fn reload_revocations(&self) -> Result<usize, StoreError> {
        *self.last_sync.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.sync_revocations().await
    }

    async fn revoke(&self, revocation: Revocation) -> Result<(), ApiError> {
        // Persist first: a revocation is acknowledged only once it is durable.
        self.store.save_revocation(&revocation).await?;
        self.revoked.apply(&revocation);
        Ok(())
    }

    fn sign_access(
        &self,
        user_id: UserId,
        email: &Email,
        roles: &[Role],
        family: &FamilyId,
        now: Timestamp,
    ) -> Result<String, ApiError> {
        // `iat` has whole seconds. A token issued in the same second as a
        // "log out everywhere" must not fall under its cutoff: start at the
        // cutoff's second then (within the leeway, so still valid).
        let floor = self.revoked.cutoff(user_id).map_or(i64::MIN, |cutoff| {
            cutoff.unix_millis().div_euclid(1000) + i64::from(cutoff.unix_millis() % 1000 != 0)
        });
        let iat = unix_secs(now).max(floor);
        let mut jti = [0u8; 16];
        tessera_core::secret::fill_random(&mut jti);
        let claims = AccessClaims {
            iss: self.config.issuer.clone(),
            sub: user_id.to_string(),
            aud: Audience::One(self.config.audience.clone()),
            exp: iat + i64::try_from(self.config.access_ttl.as_secs()).unwrap_or(i64::MAX / 2),
            iat,
            nbf: iat,
            jti: base64_url(&jti),
            sid: family.to_string(),
            roles: roles.iter().map(|r| r.as_str().to_owned()).collect(),
            email: Some(email.to_string()),
        };
        self.keys()
            .sign(&claims)
            .map_err(|e| ApiError::Internal(format!("signing failed: {e}")))
    }

    fn response(&self, access_token: String, refresh: &RefreshToken) -> TokenResponse {
        TokenResponse {
            access_token: Some(access_token),
            token_type: "Bearer",
            expires_in: self.config.access_ttl.as_secs(),
            refresh_token: refresh.expose(),
        }
    }

    /// Starts a family for `user` and returns its first tokens.
    ///
    /// # Errors
    ///
    /// 503 if the family cannot be stored.
    pub async fn issue(&self, user: &User) -> Result<TokenResponse, ApiError> {
        let now = Timestamp::now();
        let id = FamilyId::generate_for(tessera_core::Route::of(user.id));
        let first = RefreshToken::first(&id);
        let family = TokenFamily {
            id: id.clone(),
            user_id: user.id,
            email: user.email.clone(),
            roles: user.roles.clone(),
            created_at: now,
            expires_at: now.plus(self.config.refresh_ttl),
            generation: 0,
            current_hash: first.hash(),
            previous_hash: None,
            rotated_at: now,
        };
        self.store.create_family(&family).await?;
        let access = self.sign_access(user.id, &user.email, &user.roles, &id, now)?;
        tracing::info!(user = %user.id, family = %id, "tokens issued");
        Ok(self.response(access, &first))
    }

    /// Verifies an access token: signature and claims, then the revocation
    /// list. No store call.
    ///
    /// # Errors
    ///
    /// [`ApiError::InvalidToken`] with the reason.
    pub fn verify_access(&self, token: &str) -> Result<(AccessClaims, UserId), ApiError> {
        let verified = self.verify(token)?;
        Ok((verified.claims.clone(), verified.user))
    }

    /// As [`TokenService::verify_access`], returning the session-shaped view
    /// handlers use (shared, so a repeated token costs no allocation).
    ///
    /// # Errors
    ///
    /// [`ApiError::InvalidToken`] with the reason.
    pub fn authenticate(&self, token: &str) -> Result<Arc<Session>, ApiError> {
        Ok(Arc::clone(&self.verify(token)?.session))
    }

    fn verify(&self, token: &str) -> Result<Arc<Verified>, ApiError> {
        let now = Timestamp::now();
        let verified = match self.verified.get(token) {
            Some(hit) => {
                let leeway = i64::try_from(self.config.leeway.as_secs()).unwrap_or(0);
                if now.unix_seconds() >= hit.claims.exp.saturating_add(leeway) {
                    return Err(ApiError::InvalidToken(TokenError::Expired));
                }
                hit
            }
            None => {
                let claims = self
                    .keys()
                    .verify(token, &self.validation, unix_secs(now))
                    .map_err(ApiError::InvalidToken)?;
                let user: UserId = claims
                    .sub
                    .parse()
                    .map_err(|_| ApiError::InvalidToken(TokenError::Claims))?;
                let session = Arc::new(session_of(&claims, user)?);
                let verified = Arc::new(Verified {
                    claims,
                    user,
                    session,
                });
                self.verified.insert(token, Arc::clone(&verified));
                verified
            }
        };
        if self.revoked.is_revoked(&verified.claims, verified.user) {
            return Err(ApiError::InvalidToken(TokenError::Revoked));
        }
        Ok(verified)
    }

    /// Exchanges a refresh token for new tokens (see `tessera_core::family`).
    ///
    /// # Errors
    ///
    /// 401 `invalid_grant` for unknown, expired, revoked or reused tokens;
    /// reuse also revokes the whole family.
    pub async fn refresh(
        &self,
        text: &str,
        users: &dyn UserStore,
    ) -> Result<TokenResponse, ApiError> {
        let token = RefreshToken::parse(text).map_err(|_| ApiError::InvalidGrant)?;
        let id = token.family();
        let now = Timestamp::now();
        // Two attempts: a lost compare-and-set means a concurrent refresh won,
        // and this token is now the previous one (within the grace window).
        for _ in 0..2 {
            let family = self
                .store
                .load_family(&id, now)
                .await?
                .ok_or(ApiError::InvalidGrant)?;
            let successor = match family.classify(&token, &self.chain, now, self.config.grace) {
                Presented::Current => {
                    let next = token.successor(&self.chain);
                    if !self
                        .store
                        .advance_family(&id, family.generation, next.hash(), now)
                        .await?
                    {
                        continue;
                    }
                    next
                }
                Presented::PreviousInGrace => token.successor(&self.chain),
                Presented::Reused => {
                    let event = tessera_core::AuditEvent {
                        at: now,
                        kind: "refresh_token_reused".into(),
                        user: Some(family.user_id),
                        detail: format!(
                            "a refresh token of family {id} was presented after it had been rotated \
                             (generation {}); the family and its access tokens were revoked",
                            family.generation
                        ),
                    };
                    if let Err(error) = users.record_audit(&event).await {
                        tracing::error!(%error, "could not write the audit log");
                    }
                    tracing::warn!(
                        target: "tessera::audit",
                        user = %family.user_id,
                        family = %id,
                        cause = "refresh token reused after rotation",
                        "token family revoked"
                    );
                    self.end_family_by_id(&family.id).await?;
                    return Err(ApiError::InvalidGrant);
                }
                Presented::Unknown => return Err(ApiError::InvalidGrant),
            };
            let user = users.by_id(family.user_id).await?;
            let Some(user) = user.filter(|u| !u.disabled) else {
                self.end_family_by_id(&family.id).await?;
                return Err(ApiError::InvalidGrant);
            };
            let access = self.sign_access(user.id, &user.email, &user.roles, &id, now)?;
            return Ok(self.response(access, &successor));
        }
        Err(ApiError::InvalidGrant)
    }

    /// Ends the family `id` (logout with a bearer token).
    ///
    /// # Errors
    ///
    /// 503 if the revocation cannot be stored.
    pub async fn end_family_by_id(&self, id: &FamilyId) -> Result<(), ApiError> {
        let now = Timestamp::now();
        self.store.delete_family(id).await?;
        self.revoke(Revocation::Family {
            id: id.clone(),
            until: now.plus(self.config.access_ttl).plus(self.config.leeway),
        })
        .await
    }

    fn cutoff_lifetime(&self) -> Duration {
        self.config
            .cutoff_lifetime
            .max(self.config.access_ttl + self.config.leeway)
    }

    /// Revokes one sealed cookie session (by its handle) until it would have
    /// expired anyway.
    ///
    /// # Errors
    ///
    /// 503 if the revocation cannot be stored.
    pub async fn revoke_cookie_session(&self, session: &Session) -> Result<(), ApiError> {
        self.revoke(Revocation::Family {
            id: FamilyId::new(session.handle.as_str()),
            until: session.absolute_expires_at,
        })
        .await
    }

    /// Ends every family of the user and refuses every token issued so far.
    ///
    /// # Errors
    ///
    /// 503 if the store does not answer.
    pub async fn end_user(&self, user: UserId) -> Result<u64, ApiError> {
        let now = Timestamp::now();
        let ended = self.store.delete_families_for_user(user).await?;
        self.revoke(Revocation::UserBefore {
            user,
            // Tokens carry whole seconds: cut off the current second too.
            before: Timestamp::from_unix_millis((now.unix_seconds() + 1) * 1000),
            until: now.plus(self.cutoff_lifetime()),
        })
        .await?;
        Ok(ended.len() as u64)
    }

    /// RFC 7009 revocation: a refresh token ends its family; an access token
    /// is revoked by `jti`. Anything else is ignored (the caller answers 200
    /// regardless).
    ///
    /// # Errors
    ///
    /// 503 if the revocation cannot be stored.
    pub async fn revoke_token(&self, text: &str) -> Result<(), ApiError> {
        let now = Timestamp::now();
        if let Ok(token) = RefreshToken::parse(text) {
            let id = token.family();
            if let Some(family) = self.store.load_family(&id, now).await?
                && family.classify(&token, &self.chain, now, self.config.grace)
                    != Presented::Unknown
            {
                self.end_family_by_id(&family.id).await?;
            }
            return Ok(());
        }
        if let Ok((claims, _)) = self.verify_access(text) {
            self.revoke(Revocation::Token {
                jti: claims.jti.clone(),
                until: Timestamp::from_unix_millis(claims.exp.saturating_mul(1000))
                    .plus(self.config.leeway),
            })
            .await?;
        }
        Ok(())
    }

    /// Drops expired families and revocations from the store and memory.
    ///
    /// # Errors
    ///
    /// Store errors.
    pub async fn purge(&self) -> Result<u64, StoreError> {
        let now = Timestamp::now();
        // Retired signing keys stop verifying once every token they signed
        // has expired.
        let mut keys = KeySet::clone(&self.keys());
        let lifetime = i64::try_from((self.config.access_ttl + self.config.leeway).as_secs())
            .unwrap_or(i64::MAX);
        let dropped = keys.prune(now.unix_seconds(), lifetime);
        if !dropped.is_empty() {
            tracing::info!(
                ?dropped,
                "retired signing keys dropped: their tokens have expired"
            );
            self.replace_keys(keys);
        }
        self.revoked.prune(now, self.cutoff_lifetime());
        self.store.purge_expired_tokens(now).await
    }
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A session-shaped view of a verified access token, so that handlers serve
/// bearer and cookie callers alike. It exists only for this request.
pub fn session_of(claims: &AccessClaims, user: UserId) -> Result<Session, ApiError> {
    let email = claims
        .email
        .as_deref()
        .and_then(|e| Email::parse(e).ok())
        .ok_or(ApiError::InvalidToken(TokenError::Claims))?;
    let roles = claims
        .roles
        .iter()
        .map(|r| Role::parse(r))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| ApiError::InvalidToken(TokenError::Claims))?;
    let issued = Timestamp::from_unix_millis(claims.iat.saturating_mul(1000));
    let expires = Timestamp::from_unix_millis(claims.exp.saturating_mul(1000));
    Ok(Session {
        id_hash: SessionIdHash::from_bytes(Sha256::digest(claims.jti.as_bytes()).into()),
        handle: SessionHandle::new(claims.sid.clone()),
        user_id: user,
        email,
        roles,
        created_at: issued,
        last_seen: issued,
        expires_at: expires,
        absolute_expires_at: expires,
        ip: None,
        user_agent: None,
        data: serde_json::Map::new(),
        rotate: false,
    })
}
