//! Refresh-token families and revocations in SQLite.

use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Row, params};
use tessera_core::{
    Email, FamilyId, PerUserCap, Revocation, SealedRevocation, SessionHandle, StoreError,
    Timestamp, TokenFamily, TokenStore, UserId,
};

use super::rows::{corrupt, decode_roles, decode_uuid_blob, encode_roles};
use super::{Affected, SqliteStore, to_store_error};

const FAMILY_COLUMNS: &str = "id, user_id, email, roles, created_at, expires_at, generation, current_hash, previous_hash, rotated_at";

fn family_from_row(row: &Row<'_>) -> rusqlite::Result<TokenFamily> {
    let user_id: Vec<u8> = row.get(1)?;
    let email: String = row.get(2)?;
    let roles: String = row.get(3)?;
    Ok(TokenFamily {
        id: FamilyId::new(row.get::<_, String>(0)?),
        user_id: decode_uuid_blob(&user_id)?,
        email: Email::from_sealed(email),
        roles: decode_roles(&roles)?,
        created_at: Timestamp::from_unix_millis(row.get(4)?),
        expires_at: Timestamp::from_unix_millis(row.get(5)?),
        generation: row.get(6)?,
        current_hash: row.get(7)?,
        previous_hash: row.get(8)?,
        rotated_at: Timestamp::from_unix_millis(row.get(9)?),
    })
}

fn revocation_from_row(row: &Row<'_>) -> rusqlite::Result<Revocation> {
    let kind: String = row.get(0)?;
    let subject: String = row.get(1)?;
    let cutoff = Timestamp::from_unix_millis(row.get(2)?);
    let until = Timestamp::from_unix_millis(row.get(3)?);
    Ok(match kind.as_str() {
        "family" => Revocation::Family {
            id: FamilyId::new(subject),
            until,
        },
        "token" => Revocation::Token {
            jti: subject,
            until,
        },
        "user" => Revocation::UserBefore {
            user: subject
                .parse()
                .map_err(|e: uuid::Error| corrupt("user id")(e.to_string()))?,
            before: cutoff,
            until,
        },
        "sealed" => Revocation::Sealed(SealedRevocation {
            user: row
                .get::<_, Option<String>>(4)?
                .unwrap_or_default()
                .parse()
                .map_err(|e: uuid::Error| corrupt("user id")(e.to_string()))?,
            handle: SessionHandle::new(subject),
            login: cutoff,
            until,
        }),
        "sealed_user" => Revocation::SealedBefore {
            user: subject
                .parse()
                .map_err(|e: uuid::Error| corrupt("user id")(e.to_string()))?,
            through: cutoff,
            until,
        },
        other => return Err(corrupt("revocation kind")(other.to_owned())),
    })
}

/// Inserts a revocation, or moves its entry on (a cutoff never moves back).
fn insert_revocation(
    tx: &rusqlite::Transaction<'_>,
    revocation: &Revocation,
    saved: Timestamp,
) -> Result<(), StoreError> {
    let (kind, subject, cutoff, user) = match revocation {
        Revocation::Family { id, .. } => ("family", id.to_string(), 0, None),
        Revocation::Token { jti, .. } => ("token", jti.clone(), 0, None),
        Revocation::UserBefore { user, before, .. } => {
            ("user", user.to_string(), before.unix_millis(), None)
        }
        Revocation::Sealed(sealed) => (
            "sealed",
            sealed.handle.as_str().to_owned(),
            sealed.login.unix_millis(),
            Some(sealed.user.to_string()),
        ),
        Revocation::SealedBefore { user, through, .. } => {
            ("sealed_user", user.to_string(), through.unix_millis(), None)
        }
    };
    tx.prepare_cached(
        "INSERT INTO revocations (kind, subject, cutoff, until, saved, user_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (kind, subject) DO UPDATE SET
             cutoff = max(cutoff, excluded.cutoff), until = max(until, excluded.until),
             saved = excluded.saved",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            kind,
            subject,
            cutoff,
            revocation.until().unix_millis(),
            saved.unix_millis(),
            user
        ])
    })
    .map_err(to_store_error)?;
    Ok(())
}

#[async_trait]
impl TokenStore for SqliteStore {
    async fn create_family(
        &self,
        family: &TokenFamily,
        cap: PerUserCap,
    ) -> Result<Vec<TokenFamily>, StoreError> {
        let f = family.clone();
        self.write(Affected::Nothing, move |tx| {
            // The user's live families at the new one's login, newest first:
            // those past the first `cap - 1` end.
            let ended = tx
                .prepare_cached(&format!(
                    "SELECT {FAMILY_COLUMNS} FROM token_families
                     WHERE user_id = ?1 AND expires_at > ?2 AND id != ?3
                     ORDER BY created_at DESC, id DESC LIMIT -1 OFFSET ?4"
                ))
                .and_then(|mut stmt| {
                    stmt.query_map(
                        params![
                            f.user_id.as_uuid().as_bytes(),
                            f.created_at.unix_millis(),
                            f.id.as_str(),
                            cap.get() - 1,
                        ],
                        family_from_row,
                    )?
                    .collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(to_store_error)?;
            for old in &ended {
                tx.execute("DELETE FROM token_families WHERE id = ?1", [old.id.as_str()])
                    .map_err(to_store_error)?;
            }
            tx.execute(
                &format!("INSERT INTO token_families ({FAMILY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"),
                params![
                    f.id.as_str(),
                    f.user_id.as_uuid().as_bytes(),
                    f.email.as_str(),
                    encode_roles(&f.roles),
                    f.created_at.unix_millis(),
                    f.expires_at.unix_millis(),
                    f.generation,
                    f.current_hash,
                    f.previous_hash,
                    f.rotated_at.unix_millis(),
                ],
            )
            .map_err(to_store_error)?;
            Ok(ended.into_iter().rev().collect())
        })
        .await
    }

    async fn load_family(
        &self,
        id: &FamilyId,
        now: Timestamp,
    ) -> Result<Option<TokenFamily>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(&format!(
                "SELECT {FAMILY_COLUMNS} FROM token_families WHERE id = ?1 AND expires_at > ?2"
            ))?
            .query_row(params![id.as_str(), now.unix_millis()], family_from_row)
            .optional()
        })
    }

    async fn advance_family(
        &self,
        id: &FamilyId,
        generation: u32,
        new_hash: [u8; 32],
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let id = id.clone();
        self.write(Affected::Nothing, move |tx| {
            let changed = tx
                .execute(
                    "UPDATE token_families SET previous_hash = current_hash, current_hash = ?3,
                         generation = generation + 1, rotated_at = ?4
                     WHERE id = ?1 AND generation = ?2",
                    params![id.as_str(), generation, new_hash, now.unix_millis()],
                )
                .map_err(to_store_error)?;
            Ok(changed == 1)
        })
        .await
    }

    async fn delete_family(&self, id: &FamilyId) -> Result<bool, StoreError> {
        let id = id.clone();
        self.write(Affected::Nothing, move |tx| {
            let removed = tx
                .execute("DELETE FROM token_families WHERE id = ?1", [id.as_str()])
                .map_err(to_store_error)?;
            Ok(removed > 0)
        })
        .await
    }

    async fn families_for_user(
        &self,
        user: UserId,
        now: Timestamp,
    ) -> Result<Vec<TokenFamily>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(&format!(
                "SELECT {FAMILY_COLUMNS} FROM token_families
                 WHERE user_id = ?1 AND expires_at > ?2 ORDER BY created_at, id"
            ))?
            .query_map(
                params![user.as_uuid().as_bytes(), now.unix_millis()],
                family_from_row,
            )?
            .collect()
        })
    }

    async fn delete_families_for_user(&self, user: UserId) -> Result<Vec<TokenFamily>, StoreError> {
        self.write(Affected::Nothing, move |tx| {
            let families = tx
                .prepare(&format!(
                    "SELECT {FAMILY_COLUMNS} FROM token_families WHERE user_id = ?1"
                ))
                .and_then(|mut stmt| {
                    stmt.query_map([user.as_uuid().as_bytes()], family_from_row)?
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(to_store_error)?;
            tx.execute(
                "DELETE FROM token_families WHERE user_id = ?1",
                [user.as_uuid().as_bytes()],
            )
            .map_err(to_store_error)?;
            Ok(families)
        })
        .await
    }

    async fn save_revocation(&self, revocation: &Revocation) -> Result<(), StoreError> {
        let revocation = revocation.clone();
        let saved = Timestamp::now();
        self.write(Affected::Nothing, move |tx| {
            insert_revocation(tx, &revocation, saved)
        })
        .await
    }

    async fn save_sealed_revocation(
        &self,
        revocation: &SealedRevocation,
        cap: PerUserCap,
        session_lifetime: Duration,
    ) -> Result<Option<Revocation>, StoreError> {
        let sealed = revocation.clone();
        let now = Timestamp::now();
        self.write(Affected::Nothing, move |tx| {
            let user = sealed.user.to_string();
            let cutoff: Option<(i64, i64)> = tx
                .query_row(
                    "SELECT cutoff, until FROM revocations
                     WHERE kind = 'sealed_user' AND subject = ?1 AND until > ?2",
                    params![user, now.unix_millis()],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()
                .map_err(to_store_error)?;
            let covered = cutoff.map_or(i64::MIN, |(through, _)| through);
            if sealed.login.unix_millis() <= covered {
                return Ok(None);
            }
            insert_revocation(tx, &Revocation::Sealed(sealed.clone()), now)?;
            // The newest login among the entries past the `cap` newest.
            let through: Option<i64> = tx
                .query_row(
                    "SELECT cutoff FROM revocations
                     WHERE user_id = ?1 AND kind = 'sealed' AND until > ?2 AND cutoff > ?3
                     ORDER BY cutoff DESC, subject DESC LIMIT 1 OFFSET ?4",
                    params![user, now.unix_millis(), covered, cap.get()],
                    |row| row.get(0),
                )
                .optional()
                .map_err(to_store_error)?;
            let Some(through) = through.map(Timestamp::from_unix_millis) else {
                return Ok(None);
            };
            let until = cutoff.map_or(i64::MIN, |(_, until)| until);
            let collapsed = Revocation::SealedBefore {
                user: sealed.user,
                through,
                until: Timestamp::from_unix_millis(until).max(through.plus(session_lifetime)),
            };
            insert_revocation(tx, &collapsed, now)?;
            tx.execute(
                "DELETE FROM revocations WHERE user_id = ?1 AND kind = 'sealed' AND cutoff <= ?2",
                params![user, through.unix_millis()],
            )
            .map_err(to_store_error)?;
            Ok(Some(collapsed))
        })
        .await
    }

    async fn load_revocations(
        &self,
        now: Timestamp,
        changed_since: Option<Timestamp>,
    ) -> Result<Vec<Revocation>, StoreError> {
        let since = changed_since.map_or(i64::MIN, Timestamp::unix_millis);
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT kind, subject, cutoff, until, user_id FROM revocations WHERE until > ?1 AND saved >= ?2",
            )?
            .query_map([now.unix_millis(), since], revocation_from_row)?
            .collect()
        })
    }

    async fn purge_expired_tokens(&self, now: Timestamp) -> Result<u64, StoreError> {
        self.write(Affected::Nothing, move |tx| {
            let families = tx
                .execute(
                    "DELETE FROM token_families WHERE expires_at <= ?1",
                    [now.unix_millis()],
                )
                .map_err(to_store_error)?;
            let revocations = tx
                .execute(
                    "DELETE FROM revocations WHERE until <= ?1",
                    [now.unix_millis()],
                )
                .map_err(to_store_error)?;
            Ok((families + revocations) as u64)
        })
        .await
    }
}
