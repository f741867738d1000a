//! `TokenStore` on Redis: refresh families and the revocation list.

use std::time::Duration;

use async_trait::async_trait;
use fred::prelude::HashesInterface;
use fred::types::Value;
use tessera_core::{
    FamilyId, PerUserCap, Revocation, Route, SealedRevocation, StoreError, Timestamp, TokenFamily,
    TokenStore, UserId,
};

use super::codec::{self, Fields};
use super::{RedisStore, unavailable};

/// See `load_revocations`.
const CLOCK_SKEW_MARGIN_MS: i64 = 10_000;

fn millis(t: Timestamp) -> Value {
    Value::Integer(t.unix_millis())
}

#[async_trait]
impl TokenStore for RedisStore {
    async fn create_family(
        &self,
        family: &TokenFamily,
        cap: PerUserCap,
    ) -> Result<Vec<TokenFamily>, StoreError> {
        let route = Route::of(family.user_id);
        let Some(key) = self
            .keys
            .family(&family.id)
            .filter(|_| family.id.route() == Some(Route::of(family.user_id)))
        else {
            return Err(StoreError::Corrupt(
                "family id does not carry its user's route".into(),
            ));
        };
        let mut args = codec::family_fields(family)?;
        args.push(millis(family.expires_at));
        args.push(Value::from(family.id.as_str()));
        args.push(millis(Timestamp::now()));
        args.push(Value::Integer(i64::from(cap.get())));
        args.push(Value::from(self.keys.family_prefix(route)));
        let answer = self
            .eval_acked(
                &self.scripts.create_family,
                vec![key.into(), self.keys.user_families(family.user_id).into()],
                args,
            )
            .await?;
        codec::records(answer)?
            .into_iter()
            .map(|(member, value)| {
                codec::decode_family(
                    codec::family_id_from_member(&member)?,
                    &Fields::from_value(value)?,
                )
            })
            .collect()
    }

    async fn load_family(
        &self,
        id: &FamilyId,
        now: Timestamp,
    ) -> Result<Option<TokenFamily>, StoreError> {
        let Some(key) = self.keys.family(id) else {
            return Ok(None);
        };
        let value: Value = self.client.hgetall(key).await.map_err(unavailable)?;
        let fields = Fields::from_value(value)?;
        if fields.is_empty() {
            return Ok(None);
        }
        let family = codec::decode_family(id.clone(), &fields)?;
        Ok((now < family.expires_at).then_some(family))
    }

    async fn advance_family(
        &self,
        id: &FamilyId,
        generation: u32,
        new_hash: [u8; 32],
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let Some(key) = self.keys.family(id) else {
            return Ok(false);
        };
        let advanced = self
            .eval_int(
                &self.scripts.advance_family,
                vec![key.into()],
                vec![
                    Value::from(generation.to_string()),
                    Value::Bytes(new_hash.to_vec().into()),
                    Value::from(now.unix_millis().to_string()),
                ],
            )
            .await?;
        Ok(advanced == 1)
    }

    async fn delete_family(&self, id: &FamilyId) -> Result<bool, StoreError> {
        let Some(key) = self.keys.family(id) else {
            return Ok(false);
        };
        let deleted = self.del_acked(key.into()).await?;
        Ok(deleted == 1)
    }

    async fn families_for_user(
        &self,
        user: UserId,
        now: Timestamp,
    ) -> Result<Vec<TokenFamily>, StoreError> {
        let records = codec::records(
            self.eval(
                &self.scripts.list_families,
                vec![self.keys.user_families(user).into()],
                vec![Value::from(self.keys.family_prefix(Route::of(user)))],
            )
            .await?,
        )?;
        let mut families = Vec::with_capacity(records.len());
        for (member, value) in records {
            let fields = Fields::from_value(value)?;
            let family = codec::decode_family(codec::family_id_from_member(&member)?, &fields)?;
            if family.user_id == user && now < family.expires_at {
                families.push(family);
            }
        }
        families.sort_by(|a, b| (a.created_at, a.id.as_str()).cmp(&(b.created_at, b.id.as_str())));
        Ok(families)
    }

    async fn delete_families_for_user(&self, user: UserId) -> Result<Vec<TokenFamily>, StoreError> {
        let records = codec::records(
            self.eval_acked(
                &self.scripts.take_families,
                vec![self.keys.user_families(user).into()],
                vec![Value::from(self.keys.family_prefix(Route::of(user)))],
            )
            .await?,
        )?;
        let mut families = Vec::with_capacity(records.len());
        for (member, value) in records {
            let fields = Fields::from_value(value)?;
            let family = codec::decode_family(codec::family_id_from_member(&member)?, &fields)?;
            if family.user_id == user {
                families.push(family);
            }
        }
        Ok(families)
    }

    async fn save_revocation(&self, revocation: &Revocation) -> Result<(), StoreError> {
        let before = match revocation {
            Revocation::UserBefore { before, .. } => before.unix_millis().to_string(),
            Revocation::SealedBefore { through, .. } => through.unix_millis().to_string(),
            Revocation::Sealed(sealed) => {
                // Indexed like every sealed entry, so that a later capped
                // save counts it.
                return self
                    .save_sealed_revocation(sealed, PerUserCap::UNBOUNDED, Duration::ZERO)
                    .await
                    .map(drop);
            }
            Revocation::Family { .. } | Revocation::Token { .. } => String::new(),
        };
        self.eval_acked(
            &self.scripts.save_revocation,
            self.keys.revocations().map(Into::into).to_vec(),
            vec![
                Value::from(codec::revocation_id(revocation)),
                Value::from(codec::encode_revocation(revocation)),
                millis(revocation.until()),
                Value::from(self.keys.revocation_channel()),
                Value::from(before),
            ],
        )
        .await
        .map(drop)
    }

    async fn save_sealed_revocation(
        &self,
        revocation: &SealedRevocation,
        cap: PerUserCap,
        session_lifetime: Duration,
    ) -> Result<Option<Revocation>, StoreError> {
        let [data, saved, until] = self.keys.revocations();
        let entry = Revocation::Sealed(revocation.clone());
        let cutoff = Revocation::SealedBefore {
            user: revocation.user,
            through: revocation.login,
            until: revocation.until,
        };
        let lifetime = i64::try_from(session_lifetime.as_millis()).unwrap_or(i64::MAX / 2);
        let answer = self
            .eval_acked(
                &self.scripts.save_sealed_revocation,
                vec![
                    data.into(),
                    saved.into(),
                    until.into(),
                    self.keys.user_sealed_revocations(revocation.user).into(),
                ],
                vec![
                    Value::from(codec::revocation_id(&entry)),
                    Value::from(codec::encode_revocation(&entry)),
                    millis(revocation.until),
                    Value::from(self.keys.revocation_channel()),
                    millis(revocation.login),
                    Value::Integer(i64::from(cap.get())),
                    Value::from(codec::revocation_id(&cutoff)),
                    Value::from(revocation.user.to_string()),
                    Value::Integer(lifetime),
                ],
            )
            .await?;
        match answer {
            Value::Null => Ok(None),
            other => {
                let bytes = codec::value_bytes(other)?;
                codec::decode_revocation(&bytes).map(Some)
            }
        }
    }

    async fn load_revocations(
        &self,
        now: Timestamp,
        changed_since: Option<Timestamp>,
    ) -> Result<Vec<Revocation>, StoreError> {
        let [data, saved, _] = self.keys.revocations();
        // Save times are Redis's clock, `changed_since` is the caller's: ten
        // seconds of overlap absorb the skew of synchronised clocks (entries
        // read twice are applied twice, harmlessly).
        let since = changed_since.map_or_else(String::new, |t| {
            (t.unix_millis() - CLOCK_SKEW_MARGIN_MS).to_string()
        });
        let values = match self
            .eval(
                &self.scripts.load_revocations,
                vec![data.into(), saved.into()],
                vec![Value::from(since)],
            )
            .await?
        {
            Value::Array(values) => values,
            Value::Null => Vec::new(),
            other => {
                return Err(StoreError::Corrupt(format!(
                    "redis revocations: {:?}",
                    other.kind()
                )));
            }
        };
        let mut revocations = Vec::with_capacity(values.len());
        for value in values {
            let Some(bytes) = value.as_bytes() else {
                continue;
            };
            let revocation = codec::decode_revocation(bytes)?;
            if now < revocation.until() {
                revocations.push(revocation);
            }
        }
        Ok(revocations)
    }

    async fn purge_expired_tokens(&self, now: Timestamp) -> Result<u64, StoreError> {
        // Families expire through their TTL; the revocation list is purged here.
        let purged = self
            .eval_int(
                &self.scripts.purge_revocations,
                self.keys.revocations().map(Into::into).to_vec(),
                vec![millis(now)],
            )
            .await?;
        Ok(u64::try_from(purged).unwrap_or(0))
    }
}
