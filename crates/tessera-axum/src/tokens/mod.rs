//! Stateless access tokens and the state that makes them revocable:
//! refresh-token families with rotation and reuse detection
//! ([`TokenService`]), and revocations checked in O(1) on every
//! verification ([`revocations`]). [`access`] is what a verified token says.

pub mod access;
pub mod revocations;

use crate::metrics::{Metrics, RefreshResult};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tessera_core::{
    ChainKey, FamilyId, PerUserCap, Presented, RefreshToken, RotationKey, StoreError, Timestamp,
    TokenFamily, TokenStore, User, UserId, UserStore,
};
use tessera_token::claims::Audience;
use tessera_token::jwk::Jwks;
use tessera_token::{AccessClaims, KeySet, TokenError, Validation};

use crate::audit::{AuditContext, AuditTrail};
use crate::caller::memo::VerifiedCache;
pub use access::AccessToken;
pub use revocations::{ListSize, RevocationLifetimes, RevocationList, Revocations};

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
    /// Live refresh families one user may have; a `POST /token` past it
    /// ends the user's oldest (and refuses their access tokens).
    pub max_refresh_families_per_user: PerUserCap,
    /// Ended sealed cookie sessions one user may have on the revocation
    /// list; past it the oldest are collapsed into a cutoff that refuses
    /// every sealed session of the user logged in until then.
    pub max_sealed_revocations_per_user: PerUserCap,
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
            // What Auth0 keeps per user and application.
            max_refresh_families_per_user: PerUserCap::new(200).expect("not 0"),
            max_sealed_revocations_per_user: PerUserCap::new(100).expect("not 0"),
        }
    }
}

/// Why a token operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bearer token that is malformed, forged, expired or revoked.
    #[error("invalid access token: {0}")]
    InvalidToken(TokenError),
    /// A refresh token that is unknown, expired, revoked or reused.
    #[error("invalid or expired refresh token")]
    InvalidGrant,
    /// The token store did not answer.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The signing key failed (a bug or a broken key).
    #[error("signing failed: {0}")]
    Signing(String),
}

/// Tokens just issued: a signed access token and the refresh token that
/// continues its family.
#[derive(Debug)]
pub struct IssuedTokens {
    /// The signed access token.
    pub access_token: String,
    /// Lifetime of the access token.
    pub expires_in: Duration,
    /// The refresh token (shown once; only its hash is stored).
    pub refresh_token: String,
    /// The public name of the family (`sid`), as `GET /sessions` shows it.
    pub handle: tessera_core::SessionHandle,
}

/// Issues, verifies, refreshes and revokes tokens.
pub struct TokenService {
    config: TokenConfig,
    keys: RwLock<Arc<KeySet>>,
    verified: VerifiedCache<AccessToken>,
    chain: ChainKey,
    /// Derived from `chain`: every node sharing the chain key derives the
    /// same session id successors.
    rotation: RotationKey,
    store: Arc<dyn TokenStore>,
    revocations: Arc<Revocations>,
    validation: Validation,
    /// Where security events go (`None`: only logged).
    audit: Option<AuditTrail>,
    metrics: Metrics,
}

impl std::fmt::Debug for TokenService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenService")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl TokenService {
    /// A service signing with `keys`, deriving refresh successors with
    /// `chain`, keeping families in `store` and checking `revocations`.
    pub fn new(
        config: TokenConfig,
        keys: KeySet,
        chain: ChainKey,
        store: Arc<dyn TokenStore>,
        revocations: Arc<Revocations>,
    ) -> Self {
        let validation = Validation {
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            leeway_secs: i64::try_from(config.leeway.as_secs()).unwrap_or(i64::MAX),
        };
        Self {
            config,
            keys: RwLock::new(Arc::new(keys)),
            verified: VerifiedCache::default(),
            rotation: RotationKey::derive(&chain),
            chain,
            store,
            revocations,
            validation,
            audit: None,
            metrics: Metrics::disabled(),
        }
    }

    /// Records security events (refresh-token reuse) in `audit`.
    #[must_use]
    pub fn with_audit(mut self, audit: AuditTrail) -> Self {
        self.audit = Some(audit);
        self
    }

    /// Counts refreshes by result in `metrics`.
    #[must_use]
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// The settings.
    pub fn config(&self) -> &TokenConfig {
        &self.config
    }

    /// The key that derives the successor of a rotated session id (see
    /// [`tessera_core::SessionId::successor`]): derived from the chain key,
    /// which every node of a cluster shares, under a label of its own.
    pub fn session_rotation_key(&self) -> &RotationKey {
        &self.rotation
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

    /// The user's live refresh families, oldest first (for the admin API).
    ///
    /// # Errors
    ///
    /// Store errors.
    pub async fn families_of(
        &self,
        user: UserId,
        now: Timestamp,
    ) -> Result<Vec<TokenFamily>, StoreError> {
        self.store.families_for_user(user, now).await
    }

    /// Ends the user's refresh family named `handle` and refuses its access
    /// tokens. `false` if the user has no live family of that name.
    ///
    /// # Errors
    ///
    /// Store errors.
    pub async fn end_family_of(&self, user: UserId, handle: &str) -> Result<bool, StoreError> {
        let id = FamilyId::new(handle);
        match self.store.load_family(&id, Timestamp::now()).await? {
            Some(family) if family.user_id == user => {
                self.revocations.end_family(&id).await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// The revocations every credential is checked against.
    pub fn revocations(&self) -> &Arc<Revocations> {
        &self.revocations
    }

    /// Signs an access token carrying `user`'s id, e-mail, roles and
    /// `email_verified` as they are now (at login, or re-read from the user
    /// record at each refresh).
    fn sign_access(&self, user: &User, family: &FamilyId, now: Timestamp) -> Result<String, Error> {
        let user_id = user.id;
        // `iat` has whole seconds. A token issued in the same second as a
        // "log out everywhere" must not fall under its cutoff: start at the
        // cutoff's second then (within the leeway, so still valid).
        let floor = self
            .revocations
            .list()
            .cutoff(user_id)
            .map_or(i64::MIN, |cutoff| {
                cutoff.unix_millis().div_euclid(1000) + i64::from(cutoff.unix_millis() % 1000 != 0)
            });
        let iat = now.unix_seconds().max(floor);
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
            roles: user.roles.iter().map(|r| r.as_str().to_owned()).collect(),
            email: Some(user.email.to_string()),
            email_verified: Some(user.email_verified),
        };
        self.keys()
            .sign(&claims)
            .map_err(|e| Error::Signing(e.to_string()))
    }

    fn issued(&self, access_token: String, refresh: &RefreshToken) -> IssuedTokens {
        IssuedTokens {
            access_token,
            expires_in: self.config.access_ttl,
            refresh_token: refresh.expose(),
            handle: tessera_core::SessionHandle::new(refresh.family().to_string()),
        }
    }

    /// Starts a family for `user` and returns its first tokens. The family
    /// lives `lifetime` (at most `refresh_ttl`; `None`: `refresh_ttl`).
    ///
    /// # Errors
    ///
    /// The family cannot be stored, or signing failed.
    pub async fn issue(
        &self,
        user: &User,
        lifetime: Option<Duration>,
    ) -> Result<IssuedTokens, Error> {
        let lifetime = lifetime.map_or(self.config.refresh_ttl, |l| l.min(self.config.refresh_ttl));
        let now = Timestamp::now();
        let id = FamilyId::generate_for(tessera_core::Route::of(user.id));
        let first = RefreshToken::first(&id);
        let family = TokenFamily {
            id: id.clone(),
            user_id: user.id,
            email: user.email.clone(),
            roles: user.roles.clone(),
            created_at: now,
            expires_at: now.plus(lifetime),
            generation: 0,
            current_hash: first.hash(),
            previous_hash: None,
            rotated_at: now,
        };
        let ended = self
            .store
            .create_family(&family, self.config.max_refresh_families_per_user)
            .await?;
        if !ended.is_empty() {
            self.revocations.end_ended_families(&ended).await?;
            for old in &ended {
                tracing::info!(
                    user = %user.id,
                    family = %old.id,
                    cap = self.config.max_refresh_families_per_user.get(),
                    "oldest refresh family ended: the user passed the cap"
                );
                if let Some(audit) = &self.audit {
                    audit.record(
                        tessera_core::AuditEvent::new(
                            tessera_core::AuditKind::SessionEnded,
                            tessera_core::Actor::System,
                        )
                        .subject(user.id)
                        .session(Some(old.id.to_string()))
                        .detail(format!(
                            "the oldest refresh family past max_refresh_families_per_user ({}), \
                             at a new login",
                            self.config.max_refresh_families_per_user.get()
                        )),
                    );
                }
            }
        }
        let access = self.sign_access(user, &id, now)?;
        tracing::info!(user = %user.id, family = %id, "tokens issued");
        Ok(self.issued(access, &first))
    }

    /// Verifies an access token: signature and claims (remembered for the
    /// next request with the same token), then the revocation list on every
    /// call. No store call.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidToken`] with the reason.
    pub fn verify(&self, token: &str) -> Result<Arc<AccessToken>, Error> {
        let now = Timestamp::now();
        let verified = match self.verified.get(token) {
            Some(hit) => {
                let leeway = i64::try_from(self.config.leeway.as_secs()).unwrap_or(0);
                if now.unix_seconds() >= hit.claims.exp.saturating_add(leeway) {
                    return Err(Error::InvalidToken(TokenError::Expired));
                }
                hit
            }
            None => {
                let claims = self
                    .keys()
                    .verify(token, &self.validation, now.unix_seconds())
                    .map_err(Error::InvalidToken)?;
                let verified =
                    Arc::new(AccessToken::from_claims(claims).map_err(Error::InvalidToken)?);
                self.verified.insert(token, Arc::clone(&verified));
                verified
            }
        };
        if self
            .revocations
            .list()
            .is_revoked(&verified.claims, verified.user_id)
        {
            return Err(Error::InvalidToken(TokenError::Revoked));
        }
        Ok(verified)
    }

    /// Exchanges a refresh token for new tokens (see `tessera_core::family`).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidGrant`] for unknown, expired, revoked or reused
    /// tokens; reuse also revokes the whole family.
    pub async fn refresh(&self, text: &str, users: &dyn UserStore) -> Result<IssuedTokens, Error> {
        self.refresh_from(text, users, &AuditContext::system())
            .await
    }

    /// [`TokenService::refresh`] for a request: a reused token is recorded
    /// (`refresh_token_reused`) with where it came from.
    ///
    /// # Errors
    ///
    /// As [`TokenService::refresh`].
    pub async fn refresh_from(
        &self,
        text: &str,
        users: &dyn UserStore,
        context: &AuditContext,
    ) -> Result<IssuedTokens, Error> {
        let mut result = RefreshResult::Unknown;
        let outcome = self
            .refresh_counted(text, users, context, &mut result)
            .await;
        // A store failure (503) is no answer about the token: not counted.
        if !matches!(outcome, Err(Error::Store(_))) {
            self.metrics.refresh(result);
        }
        outcome
    }

    /// [`TokenService::refresh_from`], saying in `result` how it ended.
    async fn refresh_counted(
        &self,
        text: &str,
        users: &dyn UserStore,
        context: &AuditContext,
        result: &mut RefreshResult,
    ) -> Result<IssuedTokens, Error> {
        let token = RefreshToken::parse(text).map_err(|_| Error::InvalidGrant)?;
        let id = token.family();
        let now = Timestamp::now();
        // Two attempts: a lost compare-and-set means a concurrent refresh won,
        // and this token is now the previous one (within the grace window).
        for _ in 0..2 {
            let family = self
                .store
                .load_family(&id, now)
                .await?
                .ok_or(Error::InvalidGrant)?;
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
                    *result = RefreshResult::Rotated;
                    next
                }
                Presented::PreviousInGrace => {
                    *result = RefreshResult::Grace;
                    token.successor(&self.chain)
                }
                Presented::Reused => {
                    *result = RefreshResult::Reused;
                    let event = context
                        .event(tessera_core::AuditKind::RefreshTokenReused)
                        .at(now)
                        .subject(family.user_id)
                        .session(Some(id.to_string()))
                        .detail(format!(
                            "a refresh token was presented after it had been rotated \
                         (generation {}); the family and its access tokens were revoked",
                            family.generation
                        ));
                    match &self.audit {
                        Some(audit) => audit.record(event),
                        None => tracing::debug!("no audit trail: reuse not recorded"),
                    }
                    tracing::warn!(
                        target: "tessera::audit",
                        user = %family.user_id,
                        family = %id,
                        cause = "refresh token reused after rotation",
                        "token family revoked"
                    );
                    self.revocations.end_family(&family.id).await?;
                    return Err(Error::InvalidGrant);
                }
                Presented::Unknown => return Err(Error::InvalidGrant),
            };
            let user = users.by_id(family.user_id).await?;
            let Some(user) = user.filter(|u| !u.disabled) else {
                *result = RefreshResult::Unknown;
                self.revocations.end_family(&family.id).await?;
                return Err(Error::InvalidGrant);
            };
            let access = self.sign_access(&user, &id, now)?;
            return Ok(self.issued(access, &successor));
        }
        Err(Error::InvalidGrant)
    }

    /// RFC 7009 revocation: a refresh token ends its family; an access token
    /// is revoked by `jti`. Anything else is ignored (the caller answers 200
    /// regardless).
    ///
    /// # Errors
    ///
    /// The revocation cannot be stored.
    pub async fn revoke_token(&self, text: &str) -> Result<(), Error> {
        let now = Timestamp::now();
        if let Ok(token) = RefreshToken::parse(text) {
            let id = token.family();
            if let Some(family) = self.store.load_family(&id, now).await?
                && family.classify(&token, &self.chain, now, self.config.grace)
                    != Presented::Unknown
            {
                self.revocations.end_family(&family.id).await?;
            }
            return Ok(());
        }
        if let Ok(verified) = self.verify(text) {
            self.revocations
                .end_access_token(&verified.claims, self.config.leeway)
                .await?;
        }
        Ok(())
    }

    /// Drops retired signing keys whose tokens have all expired, and
    /// expired families and revocations from the store and memory.
    ///
    /// # Errors
    ///
    /// Store errors.
    pub async fn purge(&self) -> Result<u64, StoreError> {
        let now = Timestamp::now();
        let mut keys = KeySet::clone(&self.keys());
        let lifetime =
            i64::try_from(self.revocations.lifetimes().access.as_secs()).unwrap_or(i64::MAX);
        let dropped = keys.prune(now.unix_seconds(), lifetime);
        if !dropped.is_empty() {
            tracing::info!(
                ?dropped,
                "retired signing keys dropped: their tokens have expired"
            );
            self.replace_keys(keys);
        }
        self.revocations.purge(now).await
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_core::{Email, NewUser, PasswordHash, Role};
    use tessera_store::MemoryStore;

    struct Fixture {
        service: TokenService,
        store: Arc<MemoryStore>,
        user: User,
    }

    async fn fixture(config: TokenConfig) -> Fixture {
        let store = Arc::new(MemoryStore::new());
        let user = NewUser {
            email: Email::parse("alice@example.com").unwrap(),
            roles: vec![Role::parse("admin").unwrap()],
            password_hash: PasswordHash::from_trusted(String::new()),
            email_verified: true,
        }
        .into_user(Timestamp::now());
        UserStore::create(store.as_ref(), &user).await.unwrap();
        let revocations = Arc::new(Revocations::new(
            Arc::clone(&store) as Arc<dyn TokenStore>,
            RevocationLifetimes::new(&config, Duration::from_secs(3600)),
        ));
        let keys = KeySet::generate(
            tessera_token::Algorithm::EdDSA,
            Timestamp::now().unix_seconds(),
        )
        .unwrap();
        let service = TokenService::new(
            config,
            keys,
            ChainKey::generate(),
            Arc::clone(&store) as Arc<dyn TokenStore>,
            revocations,
        );
        Fixture {
            service,
            store,
            user,
        }
    }

    #[tokio::test]
    async fn an_issued_access_token_verifies_to_its_user_and_family() {
        let f = fixture(TokenConfig::default()).await;
        let issued = f.service.issue(&f.user, None).await.unwrap();
        let token = f.service.verify(&issued.access_token).unwrap();
        assert_eq!(token.user_id, f.user.id);
        assert_eq!(token.email, f.user.email);
        assert_eq!(token.roles, f.user.roles);
        assert_eq!(
            token.family,
            RefreshToken::parse(&issued.refresh_token).unwrap().family()
        );
        // The memo answers the second time; the revocation list is still checked.
        f.service
            .revocations()
            .end_family(&token.family)
            .await
            .unwrap();
        assert!(matches!(
            f.service.verify(&issued.access_token),
            Err(Error::InvalidToken(TokenError::Revoked))
        ));
    }

    #[tokio::test]
    async fn a_refresh_rotates_and_a_replayed_token_ends_the_family() {
        let f = fixture(TokenConfig::default()).await;
        let first = f.service.issue(&f.user, None).await.unwrap();
        let second = f
            .service
            .refresh(&first.refresh_token, f.store.as_ref())
            .await
            .unwrap();
        assert_ne!(second.refresh_token, first.refresh_token);
        let third = f
            .service
            .refresh(&second.refresh_token, f.store.as_ref())
            .await
            .unwrap();
        // Two rotations back: no grace window covers it, it is reuse.
        let replay = f
            .service
            .refresh(&first.refresh_token, f.store.as_ref())
            .await;
        assert!(matches!(replay, Err(Error::InvalidGrant)));
        // The reuse ended the family: the current token is refused too, and
        // so are the family's access tokens.
        let current = f
            .service
            .refresh(&third.refresh_token, f.store.as_ref())
            .await;
        assert!(matches!(current, Err(Error::InvalidGrant)));
        assert!(f.service.verify(&third.access_token).is_err());
    }

    #[tokio::test]
    async fn access_tokens_carry_email_verified_and_a_refresh_reads_it_afresh() {
        let f = fixture(TokenConfig::default()).await;
        UserStore::set_email_verified(f.store.as_ref(), f.user.id, false)
            .await
            .unwrap();
        let user = UserStore::by_id(f.store.as_ref(), f.user.id)
            .await
            .unwrap()
            .unwrap();
        let first = f.service.issue(&user, None).await.unwrap();
        let token = f.service.verify(&first.access_token).unwrap();
        assert!(!token.email_verified);
        assert_eq!(token.claims.email_verified, Some(false));
        UserStore::set_email_verified(f.store.as_ref(), f.user.id, true)
            .await
            .unwrap();
        let second = f
            .service
            .refresh(&first.refresh_token, f.store.as_ref())
            .await
            .unwrap();
        let token = f.service.verify(&second.access_token).unwrap();
        assert!(token.email_verified, "the refresh read the user record");
        assert_eq!(token.claims.email_verified, Some(true));
    }

    #[tokio::test]
    async fn a_disabled_user_gets_no_new_tokens() {
        let f = fixture(TokenConfig::default()).await;
        let issued = f.service.issue(&f.user, None).await.unwrap();
        UserStore::set_disabled(f.store.as_ref(), f.user.id, true)
            .await
            .unwrap();
        let refreshed = f
            .service
            .refresh(&issued.refresh_token, f.store.as_ref())
            .await;
        assert!(matches!(refreshed, Err(Error::InvalidGrant)));
    }

    #[tokio::test]
    async fn revoking_an_access_token_refuses_it_and_ignores_garbage() {
        let f = fixture(TokenConfig::default()).await;
        let issued = f.service.issue(&f.user, None).await.unwrap();
        f.service.revoke_token("not a token").await.unwrap();
        assert!(f.service.verify(&issued.access_token).is_ok());
        f.service.revoke_token(&issued.access_token).await.unwrap();
        assert!(matches!(
            f.service.verify(&issued.access_token),
            Err(Error::InvalidToken(TokenError::Revoked))
        ));
        // The refresh token was not touched by revoking the access token.
        assert!(
            f.service
                .refresh(&issued.refresh_token, f.store.as_ref())
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn past_the_family_cap_the_oldest_family_ends_with_its_access_tokens() {
        let f = fixture(TokenConfig {
            max_refresh_families_per_user: PerUserCap::new(2).unwrap(),
            ..TokenConfig::default()
        })
        .await;
        let mut issued = Vec::new();
        for _ in 0..3 {
            issued.push(f.service.issue(&f.user, None).await.unwrap());
            // Distinct login times.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert!(matches!(
            f.service.verify(&issued[0].access_token),
            Err(Error::InvalidToken(TokenError::Revoked))
        ));
        assert!(matches!(
            f.service
                .refresh(&issued[0].refresh_token, f.store.as_ref())
                .await,
            Err(Error::InvalidGrant)
        ));
        for newer in &issued[1..] {
            assert!(f.service.verify(&newer.access_token).is_ok());
            assert!(
                f.service
                    .refresh(&newer.refresh_token, f.store.as_ref())
                    .await
                    .is_ok()
            );
        }
    }

    #[tokio::test]
    async fn tokens_issued_after_a_user_cutoff_are_accepted() {
        let f = fixture(TokenConfig::default()).await;
        let before = f.service.issue(&f.user, None).await.unwrap();
        f.service.revocations().end_user(f.user.id).await.unwrap();
        assert!(f.service.verify(&before.access_token).is_err());
        let after = f.service.issue(&f.user, None).await.unwrap();
        assert!(f.service.verify(&after.access_token).is_ok());
    }
}
