//! Refresh-token families and revocations in process memory.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use tessera_core::{
    FamilyId, PerUserCap, Revocation, SealedRevocation, StoreError, Timestamp, TokenFamily,
    TokenStore, UserId,
};

use super::MemoryStore;
use crate::lock;

/// Token state of a [`MemoryStore`].
#[derive(Debug, Default)]
pub(crate) struct Tokens {
    families: HashMap<FamilyId, TokenFamily>,
    /// The families of each user, for the cap and per-user ends.
    families_by_user: HashMap<UserId, HashSet<FamilyId>>,
    revocations: HashMap<String, (Revocation, Timestamp)>,
    /// Each user's `Sealed` entries by login time, then handle (their keys
    /// in `revocations` follow from the handle).
    sealed_by_user: HashMap<UserId, BTreeSet<(Timestamp, String)>>,
}

fn revocation_key(revocation: &Revocation) -> String {
    match revocation {
        Revocation::Family { id, .. } => format!("family:{id}"),
        Revocation::Token { jti, .. } => format!("token:{jti}"),
        Revocation::UserBefore { user, .. } => format!("user:{user}"),
        Revocation::Sealed(sealed) => sealed_key(sealed.handle.as_str()),
        Revocation::SealedBefore { user, .. } => format!("sealed-user:{user}"),
    }
}

fn sealed_key(handle: &str) -> String {
    format!("sealed:{handle}")
}

impl Tokens {
    fn insert_family(&mut self, family: TokenFamily) {
        self.families_by_user
            .entry(family.user_id)
            .or_default()
            .insert(family.id.clone());
        self.families.insert(family.id.clone(), family);
    }

    fn remove_family(&mut self, id: &FamilyId) -> Option<TokenFamily> {
        let family = self.families.remove(id)?;
        if let Some(ids) = self.families_by_user.get_mut(&family.user_id) {
            ids.remove(id);
            if ids.is_empty() {
                self.families_by_user.remove(&family.user_id);
            }
        }
        Some(family)
    }

    fn user_family_ids(&self, user: UserId) -> Vec<FamilyId> {
        self.families_by_user
            .get(&user)
            .map(|ids| ids.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Saves a revocation; a cutoff never moves back.
    fn save(&mut self, revocation: &Revocation, now: Timestamp) {
        let key = revocation_key(revocation);
        let keep_existing = match (self.revocations.get(&key), revocation) {
            (
                Some((Revocation::UserBefore { before: old, .. }, _)),
                Revocation::UserBefore { before: new, .. },
            ) => old > new,
            (
                Some((Revocation::SealedBefore { through: old, .. }, _)),
                Revocation::SealedBefore { through: new, .. },
            ) => old > new,
            _ => false,
        };
        if keep_existing {
            return;
        }
        if let Revocation::Sealed(sealed) = revocation {
            self.sealed_by_user
                .entry(sealed.user)
                .or_default()
                .insert((sealed.login, sealed.handle.as_str().to_owned()));
        }
        self.revocations.insert(key, (revocation.clone(), now));
    }

    fn sealed_cutoff(&self, user: UserId, now: Timestamp) -> Option<(Timestamp, Timestamp)> {
        match self.revocations.get(&format!("sealed-user:{user}")) {
            Some((Revocation::SealedBefore { through, until, .. }, _)) if now < *until => {
                Some((*through, *until))
            }
            _ => None,
        }
    }

    /// Drops the user's `Sealed` entries that are gone, lapsed or at or
    /// before `through`; the rest, oldest first.
    fn live_sealed(
        &mut self,
        user: UserId,
        through: Option<Timestamp>,
        now: Timestamp,
    ) -> Vec<(Timestamp, String)> {
        let Some(index) = self.sealed_by_user.get_mut(&user) else {
            return Vec::new();
        };
        let revocations = &mut self.revocations;
        index.retain(|(login, handle)| {
            let key = sealed_key(handle);
            let live = revocations.get(&key).is_some_and(|(r, _)| now < r.until())
                && through.is_none_or(|t| *login > t);
            if !live {
                revocations.remove(&key);
            }
            live
        });
        let live: Vec<_> = index.iter().cloned().collect();
        if live.is_empty() {
            self.sealed_by_user.remove(&user);
        }
        live
    }
}

impl MemoryStore {
    fn tokens(&self) -> std::sync::MutexGuard<'_, Tokens> {
        lock::lock(&self.tokens)
    }
}

/// The field type `MemoryStore` keeps its token state in.
pub(crate) type TokenState = Mutex<Tokens>;

#[async_trait]
impl TokenStore for MemoryStore {
    async fn create_family(
        &self,
        family: &TokenFamily,
        cap: PerUserCap,
    ) -> Result<Vec<TokenFamily>, StoreError> {
        let mut tokens = self.tokens();
        if tokens.families.contains_key(&family.id) {
            return Err(StoreError::Conflict);
        }
        let mut live: Vec<&TokenFamily> = tokens
            .user_family_ids(family.user_id)
            .iter()
            .filter_map(|id| tokens.families.get(id))
            .filter(|f| family.created_at < f.expires_at)
            .collect();
        live.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        let excess = (live.len() + 1).saturating_sub(cap.as_usize());
        let oldest: Vec<FamilyId> = live[..excess].iter().map(|f| f.id.clone()).collect();
        let ended = oldest
            .iter()
            .filter_map(|id| tokens.remove_family(id))
            .collect();
        tokens.insert_family(family.clone());
        Ok(ended)
    }

    async fn load_family(
        &self,
        id: &FamilyId,
        now: Timestamp,
    ) -> Result<Option<TokenFamily>, StoreError> {
        Ok(self
            .tokens()
            .families
            .get(id)
            .filter(|f| now < f.expires_at)
            .cloned())
    }

    async fn advance_family(
        &self,
        id: &FamilyId,
        generation: u32,
        new_hash: [u8; 32],
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut tokens = self.tokens();
        let Some(family) = tokens
            .families
            .get_mut(id)
            .filter(|f| f.generation == generation)
        else {
            return Ok(false);
        };
        family.previous_hash = Some(family.current_hash);
        family.current_hash = new_hash;
        family.generation += 1;
        family.rotated_at = now;
        Ok(true)
    }

    async fn delete_family(&self, id: &FamilyId) -> Result<bool, StoreError> {
        Ok(self.tokens().remove_family(id).is_some())
    }

    async fn families_for_user(
        &self,
        user: UserId,
        now: Timestamp,
    ) -> Result<Vec<TokenFamily>, StoreError> {
        let tokens = self.tokens();
        let mut live: Vec<TokenFamily> = tokens
            .user_family_ids(user)
            .iter()
            .filter_map(|id| tokens.families.get(id))
            .filter(|f| now < f.expires_at)
            .cloned()
            .collect();
        live.sort_by(|a, b| (a.created_at, a.id.as_str()).cmp(&(b.created_at, b.id.as_str())));
        Ok(live)
    }

    async fn delete_families_for_user(&self, user: UserId) -> Result<Vec<TokenFamily>, StoreError> {
        let mut tokens = self.tokens();
        let ids = tokens.user_family_ids(user);
        Ok(ids
            .iter()
            .filter_map(|id| tokens.remove_family(id))
            .collect())
    }

    async fn save_revocation(&self, revocation: &Revocation) -> Result<(), StoreError> {
        self.tokens().save(revocation, Timestamp::now());
        Ok(())
    }

    async fn save_sealed_revocation(
        &self,
        revocation: &SealedRevocation,
        cap: PerUserCap,
        session_lifetime: Duration,
    ) -> Result<Option<Revocation>, StoreError> {
        let now = Timestamp::now();
        let mut tokens = self.tokens();
        let user = revocation.user;
        let cutoff = tokens.sealed_cutoff(user, now);
        if cutoff.is_some_and(|(through, _)| revocation.login <= through) {
            return Ok(None);
        }
        tokens.save(&Revocation::Sealed(revocation.clone()), now);
        let live = tokens.live_sealed(user, cutoff.map(|(through, _)| through), now);
        let Some(excess) = live.len().checked_sub(cap.as_usize()).filter(|n| *n > 0) else {
            return Ok(None);
        };
        let through = live[excess - 1].0;
        let until = cutoff.map_or(Timestamp::from_unix_millis(i64::MIN), |(_, until)| until);
        let collapsed = Revocation::SealedBefore {
            user,
            through,
            until: until.max(through.plus(session_lifetime)),
        };
        tokens.save(&collapsed, now);
        tokens.live_sealed(user, Some(through), now);
        Ok(Some(collapsed))
    }

    async fn load_revocations(
        &self,
        now: Timestamp,
        changed_since: Option<Timestamp>,
    ) -> Result<Vec<Revocation>, StoreError> {
        Ok(self
            .tokens()
            .revocations
            .values()
            .filter(|(r, saved)| {
                now < r.until() && changed_since.is_none_or(|since| *saved >= since)
            })
            .map(|(r, _)| r.clone())
            .collect())
    }

    async fn purge_expired_tokens(&self, now: Timestamp) -> Result<u64, StoreError> {
        let mut tokens = self.tokens();
        let before = tokens.families.len() + tokens.revocations.len();
        let expired: Vec<FamilyId> = tokens
            .families
            .values()
            .filter(|f| now >= f.expires_at)
            .map(|f| f.id.clone())
            .collect();
        for id in &expired {
            tokens.remove_family(id);
        }
        tokens.revocations.retain(|_, (r, _)| now < r.until());
        let Tokens {
            revocations,
            sealed_by_user,
            ..
        } = &mut *tokens;
        sealed_by_user.retain(|_, index| {
            index.retain(|(_, handle)| revocations.contains_key(&sealed_key(handle)));
            !index.is_empty()
        });
        Ok((before - tokens.families.len() - tokens.revocations.len()) as u64)
    }
}
