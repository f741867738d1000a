//! `SessionStore` on Redis.

use std::sync::Arc;

use async_trait::async_trait;
use fred::prelude::KeysInterface;
use fred::types::Value;
use serde_json::{Map, Value as Json};
use tessera_core::merge::merge_patch;
use tessera_core::store::data_size;
use tessera_core::{
    PerUserCap, Route, Session, SessionHandle, SessionIdHash, SessionStore, StoreError, Timestamp,
    UserCopy, UserId,
};

use fred::bytes::Bytes;

use super::codec;
use super::keys::Keys;
use super::{RedisStore, unavailable};

/// Attempts at a compare-and-set data merge before giving up: only reached
/// if other writers change the same session's data this often meanwhile.
const MERGE_ATTEMPTS: usize = 32;

fn millis(t: Timestamp) -> Value {
    Value::Integer(t.unix_millis())
}

impl RedisStore {
    fn session_channel(&self) -> Value {
        Value::from(self.keys.session_channel())
    }

    /// Drops sessions this node changed from its near-cache (other nodes
    /// hear of it on the channel).
    fn forget(&self, ids: &[SessionIdHash]) {
        if let Some(near) = &self.near {
            near.cache.invalidate(ids);
        }
    }

    /// Drops the whole near-cache (after a per-user change).
    fn forget_all(&self) {
        if let Some(near) = &self.near {
            near.cache.clear();
        }
    }

    /// Sessions in the near-cache (for tests and measurements).
    pub fn near_cached_sessions(&self) -> usize {
        self.near.as_ref().map_or(0, |near| near.cache.len())
    }

    /// The live successor that `id`, a rotated-away id, names within its
    /// window, if any.
    async fn load_through_alias(
        &self,
        id: &SessionIdHash,
        now: Timestamp,
    ) -> Result<Option<Arc<Session>>, StoreError> {
        let resolved = self
            .eval(
                &self.scripts.resolve_alias,
                vec![self.keys.alias(id).into()],
                vec![Value::Bytes(self.keys.session_prefix(id.route()))],
            )
            .await?;
        let Value::Array(parts) = resolved else {
            return Ok(None);
        };
        let [alias, value]: [Value; 2] = parts
            .try_into()
            .map_err(|_| StoreError::Corrupt("redis: alias resolution".into()))?;
        let (successor, until) = codec::decode_alias(&codec::value_bytes(alias)?)?;
        if now >= until {
            return Ok(None);
        }
        let session = codec::decode_session(successor, &codec::value_bytes(value)?)?;
        Ok((now < session.expires_at).then(|| Arc::new(session)))
    }
}

/// The script arguments every write of a whole session starts with.
fn session_args(
    session: &Session,
    extra: impl IntoIterator<Item = Value>,
) -> Result<Vec<Value>, StoreError> {
    let mut args = vec![
        Value::Bytes(codec::encode_session(session)?.into()),
        millis(session.expires_at),
        millis(session.absolute_expires_at),
    ];
    args.extend(extra);
    Ok(args)
}

#[async_trait]
impl SessionStore for RedisStore {
    fn backend(&self) -> &'static str {
        "redis"
    }

    fn is_durable(&self) -> bool {
        // Sessions outlive tessera processes; whether they outlive a Redis
        // restart is the Redis server's persistence setting.
        true
    }

    async fn create(&self, session: &Session, cap: PerUserCap) -> Result<Vec<Session>, StoreError> {
        let route = Route::of(session.user_id);
        if session.id_hash.route() != route {
            return Err(StoreError::Corrupt(
                "session id does not carry its user's route".into(),
            ));
        }
        let member = Keys::session_member(&session.id_hash);
        let args = session_args(
            session,
            [
                Value::Bytes(member),
                millis(Timestamp::now()),
                Value::Integer(i64::from(cap.get())),
                Value::Bytes(self.keys.session_prefix(route)),
                self.session_channel(),
            ],
        )?;
        let answer = self
            .eval_acked(
                &self.scripts.create_session,
                vec![
                    self.keys.session(&session.id_hash).into(),
                    self.keys.user_sessions(session.user_id).into(),
                ],
                args,
            )
            .await;
        let ended = answer.and_then(|answer| {
            codec::records(answer)?
                .into_iter()
                .map(|(member, value)| {
                    let id = codec::session_id_from_member(&member)?;
                    codec::decode_session(id, &codec::value_bytes(value)?)
                })
                .collect::<Result<Vec<Session>, StoreError>>()
        });
        match &ended {
            Ok(ended) => self.forget(&ended.iter().map(|s| s.id_hash).collect::<Vec<_>>()),
            // The outcome is unknown (a timeout) or unreadable: some of
            // the user's sessions may have ended. Other nodes hear of it
            // on the channel.
            Err(_) => self.forget_all(),
        }
        ended
    }

    async fn load(
        &self,
        id: &SessionIdHash,
        now: Timestamp,
    ) -> Result<Option<Arc<Session>>, StoreError> {
        let ticket = match &self.near {
            Some(near) => match near.cache.get(id, near.view()) {
                Ok(session) if now < session.expires_at => return Ok(Some(session)),
                // Cached but past its expiry: another node may have
                // extended it, so read it again.
                Ok(_) => {
                    near.cache.invalidate(&[*id]);
                    near.cache.get(id, near.view()).err()
                }
                Err(ticket) => Some(ticket),
            },
            None => None,
        };
        let value: Option<Bytes> = self
            .client
            .get(self.keys.session(id))
            .await
            .map_err(unavailable)?;
        let Some(value) = value else {
            // Only an id no session has can be an alias: a live session
            // still costs one GET. The resolution is not near-cached (an
            // alias's window ends without an announcement).
            return self.load_through_alias(id, now).await;
        };
        let session = Arc::new(codec::decode_session(*id, &value)?);
        if let (Some(near), Some(ticket)) = (&self.near, ticket) {
            near.cache.insert(ticket, &session);
        }
        Ok((now < session.expires_at).then_some(session))
    }

    async fn touch(
        &self,
        id: &SessionIdHash,
        last_seen: Timestamp,
        expires_at: Timestamp,
    ) -> Result<bool, StoreError> {
        let touched = self
            .eval_int(
                &self.scripts.touch_session,
                vec![self.keys.session(id).into()],
                vec![
                    codec::touch_field(last_seen, expires_at),
                    millis(expires_at),
                    self.session_channel(),
                    Value::Bytes(Keys::session_member(id)),
                ],
            )
            .await;
        // Even when the outcome is unknown (a timeout), drop the cached copy.
        self.forget(&[*id]);
        let touched = touched?;
        Ok(touched == 1)
    }

    async fn merge_data(
        &self,
        id: &SessionIdHash,
        patch: &Map<String, Json>,
        limit: usize,
    ) -> Result<Option<Map<String, Json>>, StoreError> {
        let key = self.keys.session(id);
        for _ in 0..MERGE_ATTEMPTS {
            let old: Option<Bytes> = self.client.get(key.clone()).await.map_err(unavailable)?;
            let Some(old) = old else {
                return Ok(None);
            };
            let mut session = codec::decode_session(*id, &old)?;
            merge_patch(&mut session.data, patch);
            if data_size(&session.data) > limit {
                return Err(StoreError::DataTooLarge { limit });
            }
            let new = codec::encode_session(&session)?;
            match self
                .eval_int(
                    &self.scripts.swap_session,
                    vec![key.clone().into()],
                    vec![
                        Value::Bytes(old),
                        Value::Bytes(new.into()),
                        self.session_channel(),
                        Value::Bytes(Keys::session_member(id)),
                    ],
                )
                .await?
            {
                1 => {
                    self.forget(&[*id]);
                    return Ok(Some(session.data));
                }
                -1 => return Ok(None),
                _ => continue,
            }
        }
        Err(StoreError::Unavailable(
            "redis: session data kept changing during the merge".into(),
        ))
    }

    async fn rotate(
        &self,
        old: &SessionIdHash,
        successor: &Session,
        grace_until: Timestamp,
    ) -> Result<bool, StoreError> {
        // The successor is built from what is stored now, not from the
        // caller's (possibly cached) copy: a role change or data merge made
        // meanwhile carries over. Only the new id and activity come from the
        // caller.
        let key = self.keys.session(old);
        let now = successor.last_seen;
        let alias_until = grace_until.min(successor.expires_at);
        let alias_until = if now < alias_until {
            codec::alias_until(alias_until)
        } else {
            Value::from("")
        };
        let result = async {
            for _ in 0..MERGE_ATTEMPTS {
                let current: Option<Bytes> =
                    self.client.get(key.clone()).await.map_err(unavailable)?;
                let Some(current) = current else {
                    // Perhaps a concurrent rotation to the same successor.
                    let done = self
                        .eval_int(
                            &self.scripts.already_rotated,
                            vec![
                                self.keys.alias(old).into(),
                                self.keys.session(&successor.id_hash).into(),
                            ],
                            vec![
                                Value::Bytes(Keys::session_member(&successor.id_hash)),
                                millis(now),
                            ],
                        )
                        .await?;
                    return Ok(done == 1);
                };
                let stored = codec::decode_session(*old, &current)?;
                let next = Session {
                    id_hash: successor.id_hash,
                    last_seen: successor.last_seen,
                    expires_at: successor.expires_at,
                    rotate: false,
                    ..stored
                };
                let args = session_args(
                    &next,
                    [
                        Value::Bytes(Keys::session_member(old)),
                        Value::Bytes(Keys::session_member(&next.id_hash)),
                        self.session_channel(),
                        Value::Bytes(current),
                        millis(now),
                        alias_until.clone(),
                    ],
                )?;
                let rotated = self
                    .eval_int(
                        &self.scripts.rotate_session,
                        vec![
                            key.clone().into(),
                            self.keys.session(&next.id_hash).into(),
                            self.keys.user_sessions(next.user_id).into(),
                            self.keys.alias(old).into(),
                        ],
                        args,
                    )
                    .await?;
                match rotated {
                    1 => return Ok(true),
                    0 => return Ok(false),
                    _ => continue,
                }
            }
            Err(StoreError::Unavailable(
                "redis: session kept changing during the rotation".into(),
            ))
        }
        .await;
        // Even when the outcome is unknown (a timeout), drop the cached copy.
        self.forget(&[*old]);
        result
    }

    async fn delete(&self, id: &SessionIdHash) -> Result<bool, StoreError> {
        // The index entry goes lazily, the next time the user's index is read.
        let deleted = self
            .eval_int_acked(
                &self.scripts.delete_session,
                vec![self.keys.session(id).into()],
                vec![
                    self.session_channel(),
                    Value::Bytes(Keys::session_member(id)),
                ],
            )
            .await;
        // Even when the outcome is unknown (a timeout), drop the cached copy.
        self.forget(&[*id]);
        let deleted = deleted?;
        Ok(deleted == 1)
    }

    async fn list_for_user(
        &self,
        user: UserId,
        now: Timestamp,
    ) -> Result<Vec<Session>, StoreError> {
        let records = codec::records(
            self.eval(
                &self.scripts.list_sessions,
                vec![self.keys.user_sessions(user).into()],
                vec![Value::Bytes(self.keys.session_prefix(Route::of(user)))],
            )
            .await?,
        )?;
        let mut sessions = Vec::with_capacity(records.len());
        for (member, value) in records {
            let id = codec::session_id_from_member(&member)?;
            let session = codec::decode_session(id, &codec::value_bytes(value)?)?;
            if now < session.expires_at && session.user_id == user {
                sessions.push(session);
            }
        }
        sessions.sort_by_key(|s| s.created_at);
        Ok(sessions)
    }

    async fn delete_by_handle(
        &self,
        user: UserId,
        handle: &SessionHandle,
    ) -> Result<bool, StoreError> {
        // A handle no session can have (too long to store) names nothing.
        let Ok(section) = codec::handle_section(handle) else {
            return Ok(false);
        };
        let deleted = self
            .eval_int_acked(
                &self.scripts.delete_by_handle,
                vec![self.keys.user_sessions(user).into()],
                vec![
                    Value::Bytes(self.keys.session_prefix(Route::of(user))),
                    Value::Bytes(section.into()),
                    self.session_channel(),
                ],
            )
            .await;
        // Even when the outcome is unknown (a timeout), drop the cached copy.
        self.forget_all();
        let deleted = deleted?;
        Ok(deleted == 1)
    }

    async fn delete_all_for_user(&self, user: UserId) -> Result<u64, StoreError> {
        let deleted = self
            .eval_int_acked(
                &self.scripts.delete_all,
                vec![self.keys.user_sessions(user).into()],
                vec![
                    Value::Bytes(self.keys.session_prefix(Route::of(user))),
                    self.session_channel(),
                ],
            )
            .await;
        // Even when the outcome is unknown (a timeout), drop the cached copy.
        self.forget_all();
        let deleted = deleted?;
        Ok(u64::try_from(deleted).unwrap_or(0))
    }

    async fn update_user_copy(&self, user: UserId, copy: &UserCopy) -> Result<u64, StoreError> {
        let changed = self
            .eval_int_acked(
                &self.scripts.set_user_copy,
                vec![self.keys.user_sessions(user).into()],
                vec![
                    Value::Bytes(self.keys.session_prefix(Route::of(user))),
                    Value::from(codec::roles_section(true, copy.email_verified, &copy.roles)),
                    Value::Bytes(codec::email_field(&copy.email)?.into()),
                    self.session_channel(),
                ],
            )
            .await;
        // Even when the outcome is unknown (a timeout), drop the cached copy.
        self.forget_all();
        let changed = changed?;
        Ok(u64::try_from(changed).unwrap_or(0))
    }

    async fn purge_expired(&self, _now: Timestamp) -> Result<u64, StoreError> {
        // Redis expires sessions itself (their TTL follows `expires_at`).
        Ok(0)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.ping_redis().await
    }

    fn cache_stats(&self) -> Option<tessera_core::CacheStats> {
        self.near.as_ref().map(|near| near.cache.stats())
    }
}
