//! Revocations: what makes stateless credentials (access tokens, sealed
//! cookies) revocable. Each is saved in the [`TokenStore`] before it is
//! applied and acknowledged, and held in memory in a [`RevocationList`]
//! checked on every request.
//!
//! [`Revocations`] needs no key material, so the `tessera user` commands
//! build one from the token store alone and end a user's credentials exactly
//! as the admin API does (see [`crate::accounts`]).

use crate::metrics::{Metrics, RevocationKind};
use std::collections::HashMap as StdHashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tessera_core::{
    FamilyId, PerUserCap, Revocation, SealedRevocation, Session, StoreError, Timestamp,
    TokenFamily, TokenStore, UserId,
};
use tessera_token::AccessClaims;

use super::TokenConfig;

/// The maps' hasher: foldhash, seeded per process. Every token check
/// hashes three keys (SipHash was a visible share of a bearer request);
/// the keys are ids the server made (token and family ids, user ids,
/// session handles), looked up only after a signature or seal checked out,
/// so no client picks what lands in one bucket.
type HashMap<K, V> = StdHashMap<K, V, foldhash::fast::RandomState>;

/// Revoked families, tokens, per-user cutoffs and ended sealed sessions, in
/// memory. Entries expire with the credentials they concern, so the list
/// stays as small as the number of revocations within one credential
/// lifetime; a user's ended sealed sessions are bounded besides (see
/// [`Revocation::SealedBefore`]). One lock; three hash lookups per token
/// check, four per sealed cookie.
#[derive(Debug, Default)]
pub struct RevocationList {
    inner: RwLock<Revoked>,
}

#[derive(Debug, Default)]
struct Revoked {
    /// Families by id; also sealed sessions by handle, as they were saved
    /// before sealed revocations named their user.
    families: HashMap<String, Timestamp>,
    tokens: HashMap<String, Timestamp>,
    users: HashMap<UserId, Timestamp>,
    sealed: HashMap<UserId, SealedOfUser>,
}

/// A user's ended sealed sessions: by handle (login time, expiry), and the
/// cutoff the oldest were collapsed into (`through`, expiry).
#[derive(Debug, Default)]
struct SealedOfUser {
    ended: HashMap<String, (Timestamp, Timestamp)>,
    before: Option<(Timestamp, Timestamp)>,
}

impl SealedOfUser {
    fn covers(&self, login: Timestamp) -> bool {
        self.before.is_some_and(|(through, _)| login <= through)
    }
}

/// How many entries a [`RevocationList`] holds, for reporting memory use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ListSize {
    /// Revoked refresh families (and sealed sessions saved by handle only).
    pub families: usize,
    /// Revoked access tokens.
    pub tokens: usize,
    /// Per-user cutoffs ("log out everywhere").
    pub users: usize,
    /// Ended sealed cookie sessions.
    pub sealed: usize,
    /// Per-user cutoffs of sealed cookie sessions (the cap's collapses).
    pub sealed_cutoffs: usize,
}

impl RevocationList {
    /// Adds a revocation (never removes one: revocations are only undone by
    /// expiry; a sealed cutoff replaces the entries it covers).
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
            Revocation::Sealed(sealed) => {
                let of_user = revoked.sealed.entry(sealed.user).or_default();
                if !of_user.covers(sealed.login) {
                    of_user.ended.insert(
                        sealed.handle.as_str().to_owned(),
                        (sealed.login, sealed.until),
                    );
                }
            }
            Revocation::SealedBefore {
                user,
                through,
                until,
            } => {
                let of_user = revoked.sealed.entry(*user).or_default();
                let (through, until) = of_user.before.map_or((*through, *until), |(t, u)| {
                    ((*through).max(t), (*until).max(u))
                });
                of_user.before = Some((through, until));
                of_user.ended.retain(|_, (login, _)| *login > through);
            }
        }
    }

    /// Whether the access token is revoked.
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
        let handle = session.handle.as_str();
        revoked.families.contains_key(handle)
            || revoked
                .users
                .get(&session.user_id)
                .is_some_and(|cutoff| session.created_at < *cutoff)
            || revoked.sealed.get(&session.user_id).is_some_and(|of_user| {
                of_user.covers(session.created_at) || of_user.ended.contains_key(handle)
            })
    }

    /// The user's "revoked before" cutoff, if any.
    pub fn cutoff(&self, user: UserId) -> Option<Timestamp> {
        read(&self.inner).users.get(&user).copied()
    }

    /// Drops entries whose credentials have all expired (cutoffs are kept
    /// for `cutoff_lifetime` after they were set).
    pub fn prune(&self, now: Timestamp, cutoff_lifetime: Duration) {
        let mut revoked = write(&self.inner);
        revoked.families.retain(|_, until| now < *until);
        revoked.tokens.retain(|_, until| now < *until);
        revoked
            .users
            .retain(|_, cutoff| now < cutoff.plus(cutoff_lifetime));
        revoked.sealed.retain(|_, of_user| {
            of_user.ended.retain(|_, (_, until)| now < *until);
            of_user.before = of_user.before.filter(|(_, until)| now < *until);
            !of_user.ended.is_empty() || of_user.before.is_some()
        });
    }

    /// Entry counts, for reporting memory use.
    pub fn len(&self) -> ListSize {
        let revoked = read(&self.inner);
        ListSize {
            families: revoked.families.len(),
            tokens: revoked.tokens.len(),
            users: revoked.users.len(),
            sealed: revoked.sealed.values().map(|u| u.ended.len()).sum(),
            sealed_cutoffs: revoked
                .sealed
                .values()
                .filter(|u| u.before.is_some())
                .count(),
        }
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == ListSize::default()
    }
}

/// How long revocations must be kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevocationLifetimes {
    /// The longest an access token is accepted: its lifetime plus the leeway.
    pub access: Duration,
    /// The longest anything a per-user cutoff revokes is accepted: access
    /// tokens and sealed cookie sessions up to their absolute timeout.
    pub cutoff: Duration,
}

impl RevocationLifetimes {
    /// The lifetimes implied by token settings and the absolute lifetime of
    /// sealed cookie sessions.
    pub fn new(tokens: &TokenConfig, session_lifetime: Duration) -> Self {
        let access = tokens.access_ttl + tokens.leeway;
        Self {
            access,
            cutoff: session_lifetime.max(access),
        }
    }
}

/// Durable revocations and the in-memory list they feed.
pub struct Revocations {
    store: Arc<dyn TokenStore>,
    list: RevocationList,
    lifetimes: RevocationLifetimes,
    sealed_cap: PerUserCap,
    last_sync: Mutex<Option<Timestamp>>,
    metrics: Metrics,
}

impl std::fmt::Debug for Revocations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Revocations")
            .field("lifetimes", &self.lifetimes)
            .field("sealed_cap", &self.sealed_cap)
            .field("list", &self.list.len())
            .finish_non_exhaustive()
    }
}

impl Revocations {
    /// Revocations saved in `store`, kept as long as `lifetimes` say, with
    /// the default cap on each user's ended sealed sessions.
    pub fn new(store: Arc<dyn TokenStore>, lifetimes: RevocationLifetimes) -> Self {
        Self {
            store,
            list: RevocationList::default(),
            lifetimes,
            sealed_cap: TokenConfig::default().max_sealed_revocations_per_user,
            last_sync: Mutex::new(None),
            metrics: Metrics::disabled(),
        }
    }

    /// Counts saved revocations by kind in `metrics`.
    #[must_use]
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Keeps each user within `cap` ended sealed sessions (see
    /// [`Revocations::end_sealed`]).
    #[must_use]
    pub fn with_sealed_cap(mut self, cap: PerUserCap) -> Self {
        self.sealed_cap = cap;
        self
    }

    /// The in-memory list.
    pub fn list(&self) -> &RevocationList {
        &self.list
    }

    /// Whether the list holds the store's revocations: a full load
    /// succeeded and no reload since has failed (a failed reload, after
    /// announcements may have been missed, leaves it `false` until the next
    /// sync succeeds). `/health/ready` fails while it is `false`.
    pub fn is_loaded(&self) -> bool {
        lock(&self.last_sync).is_some()
    }

    /// How long revocations are kept.
    pub fn lifetimes(&self) -> RevocationLifetimes {
        self.lifetimes
    }

    /// Saves a revocation, then applies it: it is acknowledged only once durable.
    ///
    /// # Errors
    ///
    /// Store errors (nothing is applied then).
    pub async fn save(&self, revocation: Revocation) -> Result<(), StoreError> {
        self.store.save_revocation(&revocation).await?;
        self.metrics.revocation(RevocationKind::of(&revocation));
        self.list.apply(&revocation);
        Ok(())
    }

    /// Ends a refresh family and refuses its access tokens.
    ///
    /// # Errors
    ///
    /// Store errors.
    pub async fn end_family(&self, id: &FamilyId) -> Result<(), StoreError> {
        let now = Timestamp::now();
        self.store.delete_family(id).await?;
        self.save(Revocation::Family {
            id: id.clone(),
            until: now.plus(self.lifetimes.access),
        })
        .await
    }

    /// Refuses the access tokens of refresh families the store has already
    /// ended (the oldest of a user past the cap), as [`Self::end_family`]
    /// does for one.
    ///
    /// # Errors
    ///
    /// Store errors (the families stay ended; their access tokens are then
    /// accepted until they expire).
    pub async fn end_ended_families(&self, ended: &[TokenFamily]) -> Result<(), StoreError> {
        let until = Timestamp::now().plus(self.lifetimes.access);
        for family in ended {
            self.save(Revocation::Family {
                id: family.id.clone(),
                until,
            })
            .await?;
        }
        Ok(())
    }

    /// Refuses one sealed cookie session (by its handle) until it would
    /// have expired anyway. Past the user's cap of ended sealed sessions,
    /// the store collapses the oldest into a cutoff that refuses every
    /// sealed session of the user logged in until then (and only those:
    /// access tokens and refresh families are untouched).
    ///
    /// # Errors
    ///
    /// Store errors.
    pub async fn end_sealed(&self, session: &Session) -> Result<(), StoreError> {
        let ended = SealedRevocation {
            user: session.user_id,
            handle: session.handle.clone(),
            login: session.created_at,
            until: session.absolute_expires_at,
        };
        let collapsed = self
            .store
            .save_sealed_revocation(&ended, self.sealed_cap, self.lifetimes.cutoff)
            .await?;
        self.list.apply(&Revocation::Sealed(ended));
        self.metrics.revocation(RevocationKind::Sealed);
        if let Some(cutoff) = collapsed {
            if let Revocation::SealedBefore { user, through, .. } = &cutoff {
                tracing::info!(
                    %user,
                    through = %through.to_rfc3339(),
                    cap = self.sealed_cap.get(),
                    "oldest ended sealed sessions collapsed into a cutoff: \
                     the user's sealed sessions logged in until then are refused"
                );
            }
            self.list.apply(&cutoff);
        }
        Ok(())
    }

    /// Refuses one access token (by `jti`) until it expires.
    ///
    /// # Errors
    ///
    /// Store errors.
    pub async fn end_access_token(
        &self,
        claims: &AccessClaims,
        leeway: Duration,
    ) -> Result<(), StoreError> {
        self.save(Revocation::Token {
            jti: claims.jti.clone(),
            until: Timestamp::from_unix_millis(claims.exp.saturating_mul(1000)).plus(leeway),
        })
        .await
    }

    /// Ends every refresh family of the user and refuses every access token
    /// and sealed cookie issued to them so far. The cutoff is kept for the
    /// longest lifetime of anything it refuses. Returns the families ended.
    ///
    /// # Errors
    ///
    /// Store errors.
    pub async fn end_user(&self, user: UserId) -> Result<u64, StoreError> {
        let now = Timestamp::now();
        let ended = self.store.delete_families_for_user(user).await?;
        self.save(Revocation::UserBefore {
            user,
            // Tokens carry whole seconds: cut off the current second too.
            before: Timestamp::from_unix_millis((now.unix_seconds() + 1) * 1000),
            until: now.plus(self.lifetimes.cutoff),
        })
        .await?;
        Ok(ended.len() as u64)
    }

    /// Loads persisted revocations into memory (at start-up, and
    /// periodically so that other processes' revocations arrive).
    ///
    /// # Errors
    ///
    /// Store errors.
    pub async fn sync(&self) -> Result<usize, StoreError> {
        let now = Timestamp::now();
        // After the first full load, fetch only what was saved since the last
        // sync, overlapping it by a few seconds so that a revocation saved by
        // another process just before that read is not missed.
        let since =
            lock(&self.last_sync).map(|t| Timestamp::from_unix_millis(t.unix_millis() - 5_000));
        let loaded = self.store.load_revocations(now, since).await?;
        for r in &loaded {
            self.list.apply(r);
        }
        *lock(&self.last_sync) = Some(now);
        Ok(loaded.len())
    }

    /// Reloads the whole list from the store (after a lost subscription,
    /// when announcements may have been missed).
    ///
    /// # Errors
    ///
    /// Store errors.
    pub async fn reload(&self) -> Result<usize, StoreError> {
        *lock(&self.last_sync) = None;
        self.sync().await
    }

    /// Drops expired entries from memory and expired token state from the store.
    ///
    /// # Errors
    ///
    /// Store errors.
    pub async fn purge(&self, now: Timestamp) -> Result<u64, StoreError> {
        self.list.prune(now, self.lifetimes.cutoff);
        self.store.purge_expired_tokens(now).await
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_store::MemoryStore;

    fn revocations(config: &TokenConfig) -> (Arc<MemoryStore>, Revocations) {
        let store = Arc::new(MemoryStore::new());
        let revocations = Revocations::new(
            Arc::clone(&store) as Arc<dyn TokenStore>,
            RevocationLifetimes::new(config, Duration::from_secs(24 * 3600)),
        );
        (store, revocations)
    }

    #[test]
    fn a_user_cutoff_lasts_as_long_as_the_longest_credential_it_refuses() {
        let config = TokenConfig {
            access_ttl: Duration::from_secs(60),
            leeway: Duration::from_secs(5),
            ..TokenConfig::default()
        };
        let sealed_for_an_hour = RevocationLifetimes::new(&config, Duration::from_secs(3600));
        assert_eq!(sealed_for_an_hour.cutoff, Duration::from_secs(3600));
        assert_eq!(sealed_for_an_hour.access, Duration::from_secs(65));
        assert_eq!(
            RevocationLifetimes::new(&config, Duration::from_secs(10)).cutoff,
            Duration::from_secs(65),
            "never shorter than an access token"
        );
    }

    #[tokio::test]
    async fn an_ended_user_is_saved_before_it_is_applied_and_survives_a_reload() {
        let config = TokenConfig::default();
        let (store, first) = revocations(&config);
        let user = UserId::generate();
        first.end_user(user).await.unwrap();
        assert!(first.list().cutoff(user).is_some());
        // Another process (a node started later) loads it from the store.
        let second = Revocations::new(store, first.lifetimes());
        assert_eq!(second.sync().await.unwrap(), 1);
        assert_eq!(second.list().cutoff(user), first.list().cutoff(user));
    }

    fn sealed_session(user: &tessera_core::User, login: Timestamp) -> Session {
        let meta = tessera_core::SessionMeta {
            ip: None,
            user_agent: None,
        };
        tessera_core::SessionPolicy::default()
            .start(user, meta, login)
            .1
    }

    #[tokio::test]
    async fn ended_sealed_sessions_past_the_cap_stay_refused_in_a_bounded_list() {
        let config = TokenConfig::default();
        let (store, revocations) = revocations(&config);
        let revocations = revocations.with_sealed_cap(PerUserCap::new(2).unwrap());
        let user = tessera_core::NewUser {
            email: tessera_core::Email::parse("a@example.com").unwrap(),
            roles: vec![],
            password_hash: tessera_core::PasswordHash::from_trusted(String::new()),
            email_verified: true,
        }
        .into_user(Timestamp::now());
        let now = Timestamp::now();
        let sessions: Vec<Session> = (0..5)
            .map(|i| {
                sealed_session(
                    &user,
                    Timestamp::from_unix_millis(now.unix_millis() - 1000 + i),
                )
            })
            .collect();
        for ended in &sessions[..4] {
            revocations.end_sealed(ended).await.unwrap();
        }
        let (ended, live) = sessions.split_at(4);
        let check = |list: &RevocationList| {
            let size = list.len();
            assert_eq!((size.sealed, size.sealed_cutoffs), (2, 1), "{size:?}");
            assert!(ended.iter().all(|s| list.is_session_revoked(s)));
            assert!(!list.is_session_revoked(&live[0]));
        };
        check(revocations.list());
        // A node started later, or one that syncs, ends up with the same list.
        let other = Revocations::new(store, revocations.lifetimes());
        other.sync().await.unwrap();
        check(other.list());
    }

    #[tokio::test]
    async fn the_stored_cutoff_is_kept_for_the_cutoff_lifetime() {
        let config = TokenConfig {
            access_ttl: Duration::from_secs(1),
            leeway: Duration::ZERO,
            ..TokenConfig::default()
        };
        let (store, revocations) = revocations(&config);
        let user = UserId::generate();
        revocations.end_user(user).await.unwrap();
        let later = Timestamp::now().plus(Duration::from_secs(120));
        revocations.purge(later).await.unwrap();
        let loaded = store.load_revocations(later, None).await.unwrap();
        assert_eq!(loaded.len(), 1, "still needed for sealed cookies");
        assert!(revocations.list().cutoff(user).is_some());
    }
}
