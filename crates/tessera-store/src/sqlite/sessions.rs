//! The `SessionStore` contract on SQLite.

use crate::session_cache::SessionCache;
use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};
use serde_json::{Map, Value};
use tessera_core::merge::merge_patch;
use tessera_core::store::data_size;
use tessera_core::{
    PerUserCap, Session, SessionHandle, SessionIdHash, SessionStore, StoreError, Timestamp,
    UserCopy, UserId,
};

use super::rows::{encode_roles, insert_session, session_columns, session_from_row};
use super::{Affected, SqliteStore, to_store_error};

#[async_trait]
impl SessionStore for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn is_durable(&self) -> bool {
        true
    }

    async fn create(&self, session: &Session, cap: PerUserCap) -> Result<Vec<Session>, StoreError> {
        let session = session.clone();
        self.write_affecting(move |tx| {
            let ended = end_oldest(tx, &session, cap).map_err(to_store_error)?;
            insert_session(tx, &session)?;
            let affected = if ended.is_empty() {
                Affected::Nothing
            } else {
                Affected::Sessions(ended.iter().map(|s| s.id_hash).collect())
            };
            Ok((ended, affected))
        })
        .await
    }

    async fn load(
        &self,
        id: &SessionIdHash,
        now: Timestamp,
    ) -> Result<Option<Arc<Session>>, StoreError> {
        let ticket = match &self.inner.cache {
            Some(cache) => match cache.get(id, self.inner.changes.current()) {
                Ok(hit) => return Ok(Some(hit).filter(|s| now < s.expires_at)),
                Err(ticket) => Some((cache, ticket)),
            },
            None => None,
        };
        let (found, direct) = self.read(|conn| {
            let direct = conn
                .prepare_cached(concat!(
                    "SELECT ",
                    session_columns!(),
                    " FROM sessions WHERE id_hash = ?1 AND expires_at > ?2"
                ))?
                .query_row(params![id.as_bytes(), now.unix_millis()], session_from_row)
                .optional()?;
            if direct.is_some() {
                return Ok((direct, true));
            }
            // Only an id no live session has can be an alias: the common
            // path stays one point read.
            let successor = conn
                .prepare_cached(concat!(
                    "SELECT ",
                    session_columns!(),
                    " FROM sessions WHERE id_hash = \
                     (SELECT successor FROM session_aliases WHERE id_hash = ?1 AND until > ?2) \
                     AND expires_at > ?2"
                ))?
                .query_row(params![id.as_bytes(), now.unix_millis()], session_from_row)
                .optional()?;
            Ok((successor, false))
        })?;
        let found = found.map(Arc::new);
        // Only sessions read under their own hash are cached: an alias's
        // resolution is not (its window ends without any write to announce).
        if let (Some((cache, ticket)), Some(session), true) = (ticket, &found, direct) {
            cache.insert(ticket, session);
        }
        Ok(found)
    }

    async fn touch(
        &self,
        id: &SessionIdHash,
        last_seen: Timestamp,
        expires_at: Timestamp,
    ) -> Result<bool, StoreError> {
        let id = *id;
        self.write(Affected::Sessions(vec![id]), move |tx| {
            let changed = tx
                .prepare_cached(
                    "UPDATE sessions SET last_seen = ?2, expires_at = ?3 WHERE id_hash = ?1",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        id.as_bytes(),
                        last_seen.unix_millis(),
                        expires_at.unix_millis()
                    ])
                })
                .map_err(to_store_error)?;
            Ok(changed > 0)
        })
        .await
    }

    async fn merge_data(
        &self,
        id: &SessionIdHash,
        patch: &Map<String, Value>,
        limit: usize,
    ) -> Result<Option<Map<String, Value>>, StoreError> {
        let id = *id;
        let patch = patch.clone();
        self.write(Affected::Sessions(vec![id]), move |tx| {
            let current: Option<String> = tx
                .query_row(
                    "SELECT data FROM sessions WHERE id_hash = ?1",
                    [id.as_bytes()],
                    |r| r.get(0),
                )
                .optional()
                .map_err(to_store_error)?;
            let Some(current) = current else {
                return Ok(None);
            };
            let mut data = match serde_json::from_str::<Value>(&current) {
                Ok(Value::Object(map)) => map,
                _ => {
                    return Err(StoreError::Corrupt(
                        "session data is not a JSON object".into(),
                    ));
                }
            };
            merge_patch(&mut data, &patch);
            if data_size(&data) > limit {
                return Err(StoreError::DataTooLarge { limit });
            }
            let text =
                serde_json::to_string(&data).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            tx.execute(
                "UPDATE sessions SET data = ?2 WHERE id_hash = ?1",
                params![id.as_bytes(), text],
            )
            .map_err(to_store_error)?;
            Ok(Some(data))
        })
        .await
    }

    async fn rotate(
        &self,
        old: &SessionIdHash,
        successor: &Session,
        grace_until: Timestamp,
    ) -> Result<bool, StoreError> {
        let old = *old;
        let successor = successor.clone();
        self.write(Affected::Sessions(vec![old]), move |tx| {
            let now = successor.last_seen.unix_millis();
            // The row keeps what is stored now (roles, data): a role change
            // or merge since the caller read the session is not undone.
            // Only the id and the activity come from the successor.
            let moved = tx
                .prepare_cached(
                    "UPDATE sessions SET id_hash = ?1, last_seen = ?2, expires_at = ?3, rotate = 0 \
                     WHERE id_hash = ?4",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        successor.id_hash.as_bytes(),
                        now,
                        successor.expires_at.unix_millis(),
                        old.as_bytes()
                    ])
                })
                .map_err(to_store_error)?;
            if moved == 0 {
                // A concurrent rotation to the same successor got here first.
                let converged = tx
                    .prepare_cached(
                        "SELECT 1 FROM session_aliases a JOIN sessions s ON s.id_hash = a.successor \
                         WHERE a.id_hash = ?1 AND a.successor = ?2 AND a.until > ?3 \
                         AND s.expires_at > ?3",
                    )
                    .and_then(|mut s| {
                        s.exists(params![old.as_bytes(), successor.id_hash.as_bytes(), now])
                    })
                    .map_err(to_store_error)?;
                return Ok(converged);
            }
            let until = grace_until.min(successor.expires_at).unix_millis();
            if now < until {
                let alias = params![old.as_bytes(), successor.id_hash.as_bytes(), until];
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO session_aliases (id_hash, successor, until) \
                     VALUES (?1, ?2, ?3)",
                )
                .and_then(|mut s| s.execute(alias))
                .map_err(to_store_error)?;
            }
            Ok(true)
        })
        .await
    }

    async fn delete(&self, id: &SessionIdHash) -> Result<bool, StoreError> {
        let id = *id;
        self.write(Affected::Sessions(vec![id]), move |tx| {
            let removed = tx
                .execute("DELETE FROM sessions WHERE id_hash = ?1", [id.as_bytes()])
                .map_err(to_store_error)?;
            Ok(removed > 0)
        })
        .await
    }

    async fn list_for_user(
        &self,
        user: UserId,
        now: Timestamp,
    ) -> Result<Vec<Session>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(concat!(
                "SELECT ",
                session_columns!(),
                " FROM sessions WHERE user_id = ?1 AND expires_at > ?2 ORDER BY created_at"
            ))?
            .query_map(
                params![user.as_uuid().as_bytes(), now.unix_millis()],
                session_from_row,
            )?
            .collect()
        })
    }

    async fn delete_by_handle(
        &self,
        user: UserId,
        handle: &SessionHandle,
    ) -> Result<bool, StoreError> {
        let handle = handle.clone();
        self.write(Affected::All, move |tx| {
            let removed = tx
                .execute(
                    "DELETE FROM sessions WHERE user_id = ?1 AND handle = ?2",
                    params![user.as_uuid().as_bytes(), handle.as_str()],
                )
                .map_err(to_store_error)?;
            Ok(removed > 0)
        })
        .await
    }

    async fn delete_all_for_user(&self, user: UserId) -> Result<u64, StoreError> {
        self.write(Affected::All, move |tx| {
            let removed = tx
                .execute(
                    "DELETE FROM sessions WHERE user_id = ?1",
                    [user.as_uuid().as_bytes()],
                )
                .map_err(to_store_error)?;
            Ok(removed as u64)
        })
        .await
    }

    async fn update_user_copy(&self, user: UserId, copy: &UserCopy) -> Result<u64, StoreError> {
        let email = copy.email.as_str().to_owned();
        let roles = encode_roles(&copy.roles);
        let verified = copy.email_verified;
        self.write(Affected::All, move |tx| {
            let changed = tx
                .execute(
                    "UPDATE sessions SET email = ?2, roles = ?3, email_verified = ?4, rotate = 1 \
                     WHERE user_id = ?1",
                    params![user.as_uuid().as_bytes(), email, roles, verified],
                )
                .map_err(to_store_error)?;
            Ok(changed as u64)
        })
        .await
    }

    async fn purge_expired(&self, now: Timestamp) -> Result<u64, StoreError> {
        self.write(Affected::Nothing, move |tx| {
            let removed = tx
                .execute(
                    "DELETE FROM sessions WHERE expires_at <= ?1",
                    [now.unix_millis()],
                )
                .map_err(to_store_error)?;
            tx.execute(
                "DELETE FROM session_aliases WHERE until <= ?1",
                [now.unix_millis()],
            )
            .map_err(to_store_error)?;
            Ok(removed as u64)
        })
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.read(|conn| conn.query_row("SELECT 1", [], |_| Ok(())))
    }

    fn cache_stats(&self) -> Option<tessera_core::CacheStats> {
        self.inner.cache.as_ref().map(SessionCache::stats)
    }
}

/// Ends the oldest of the user's other sessions live at the new session's
/// login time, so that at most `cap - 1` remain beside it; returns them,
/// oldest first. Below the cap this is one indexed count (a single
/// `DELETE ... WHERE id_hash IN (ordered subquery)` costs ~0.2 ms more on
/// every login, even when it ends nothing).
fn end_oldest(
    tx: &rusqlite::Transaction<'_>,
    session: &Session,
    cap: PerUserCap,
) -> rusqlite::Result<Vec<Session>> {
    let user = session.user_id.as_uuid().as_bytes();
    let (now, id) = (session.created_at.unix_millis(), session.id_hash.as_bytes());
    let others: u32 = tx
        .prepare_cached(
            "SELECT count(*) FROM sessions \
             WHERE user_id = ?1 AND expires_at > ?2 AND id_hash <> ?3",
        )?
        .query_row(params![user, now, id], |r| r.get(0))?;
    let excess = others.saturating_add(1).saturating_sub(cap.get());
    if excess == 0 {
        return Ok(Vec::new());
    }
    let oldest = tx
        .prepare_cached(concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions WHERE user_id = ?1 AND expires_at > ?2 AND id_hash <> ?3 \
             ORDER BY created_at, id_hash LIMIT ?4"
        ))?
        .query_map(params![user, now, id, excess], session_from_row)?
        .collect::<rusqlite::Result<Vec<Session>>>()?;
    let mut delete = tx.prepare_cached("DELETE FROM sessions WHERE id_hash = ?1")?;
    for ended in &oldest {
        delete.execute([ended.id_hash.as_bytes()])?;
    }
    Ok(oldest)
}
