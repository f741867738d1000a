//! Revocations: what makes stateless credentials (access tokens, sealed
//! cookies) revocable. Each is saved in the [`TokenStore`] before it is
//! applied and acknowledged, and held in memory in a [`RevocationList`]
//! checked on every request.
//!
//! [`Revocations`] needs no key material, so the `tessera user` commands
//! build one from the token store alone and end a user's credentials exactly
//! as the admin API does (see [`crate::accounts`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tessera_core::{FamilyId, Revocation, Session, StoreError, Timestamp, TokenStore, UserId};
use tessera_token::AccessClaims;

use super::TokenConfig;

/// Revoked families, tokens and per-user cutoffs, in memory. Entries expire
/// with the credentials they concern, so the list stays as small as the
/// number of revocations within one credential lifetime. One lock, three
/// hash lookups per check.
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

    /// Drops entries whose credentials have all expired (cutoffs are kept
    /// for `cutoff_lifetime` after they were set).
    pub fn prune(&self, now: Timestamp, cutoff_lifetime: Duration) {
        let mut revoked = write(&self.inner);
        revoked.families.retain(|_, until| now < *until);
        revoked.tokens.retain(|_, until| now < *until);
        revoked
            .users
            .retain(|_, cutoff| now < cutoff.plus(cutoff_lifetime));
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
    last_sync: Mutex<Option<Timestamp>>,
}

impl std::fmt::Debug for Revocations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Revocations")
            .field("lifetimes", &self.lifetimes)
            .field("list", &self.list.len())
            .finish_non_exhaustive()
    }
}

impl Revocations {
    /// Revocations saved in `store`, kept as long as `lifetimes` say.
    pub fn new(store: Arc<dyn TokenStore>, lifetimes: RevocationLifetimes) -> Self {
        Self {
            store,
            list: RevocationList::default(),
            lifetimes,
            last_sync: Mutex::new(None),
        }
    }

    /// The in-memory list.
    pub fn list(&self) -> &RevocationList {
        &self.list
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

    /// Refuses one sealed cookie session (by its handle) until it would
    /// have expired anyway.
    ///
    /// # Errors
    ///
    /// Store errors.
    pub async fn end_sealed(&self, session: &Session) -> Result<(), StoreError> {
        self.save(Revocation::Family {
            id: FamilyId::new(session.handle.as_str()),
            until: session.absolute_expires_at,
        })
        .await
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
