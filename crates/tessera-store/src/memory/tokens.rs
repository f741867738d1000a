//! Refresh-token families and revocations in process memory.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use tessera_core::{FamilyId, Revocation, StoreError, Timestamp, TokenFamily, TokenStore, UserId};

use super::MemoryStore;
use crate::lock;

/// Token state of a [`MemoryStore`].
#[derive(Debug, Default)]
pub(crate) struct Tokens {
    families: HashMap<FamilyId, TokenFamily>,
    revocations: HashMap<String, (Revocation, Timestamp)>,
}

fn revocation_key(revocation: &Revocation) -> String {
    match revocation {
        Revocation::Family { id, .. } => format!("family:{id}"),
        Revocation::Token { jti, .. } => format!("token:{jti}"),
        Revocation::UserBefore { user, .. } => format!("user:{user}"),
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
    async fn create_family(&self, family: &TokenFamily) -> Result<(), StoreError> {
        let mut tokens = self.tokens();
        if tokens.families.contains_key(&family.id) {
            return Err(StoreError::Conflict);
        }
        tokens.families.insert(family.id.clone(), family.clone());
        Ok(())
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
        Ok(self.tokens().families.remove(id).is_some())
    }

    async fn delete_families_for_user(&self, user: UserId) -> Result<Vec<TokenFamily>, StoreError> {
        let mut tokens = self.tokens();
        let ids: Vec<FamilyId> = tokens
            .families
            .values()
            .filter(|f| f.user_id == user)
            .map(|f| f.id.clone())
            .collect();
        Ok(ids
            .iter()
            .filter_map(|id| tokens.families.remove(id))
            .collect())
    }

    async fn save_revocation(&self, revocation: &Revocation) -> Result<(), StoreError> {
        let mut tokens = self.tokens();
        let key = revocation_key(revocation);
        let keep_existing = matches!(
            (tokens.revocations.get(&key), revocation),
            (Some((Revocation::UserBefore { before: old, .. }, _)), Revocation::UserBefore { before: new, .. })
                if old > new
        );
        if !keep_existing {
            tokens
                .revocations
                .insert(key, (revocation.clone(), Timestamp::now()));
        }
        Ok(())
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
        tokens.families.retain(|_, f| now < f.expires_at);
        tokens.revocations.retain(|_, (r, _)| now < r.until());
        Ok((before - tokens.families.len() - tokens.revocations.len()) as u64)
    }
}
