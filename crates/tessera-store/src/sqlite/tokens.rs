//! Refresh-token families and revocations in SQLite.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Row, params};
use tessera_core::{
    Email, FamilyId, Revocation, StoreError, Timestamp, TokenFamily, TokenStore, UserId,
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
        email: Email::parse(&email).map_err(|e| corrupt("email")(e.to_string()))?,
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
        other => return Err(corrupt("revocation kind")(other.to_owned())),
    })
}

#[async_trait]
impl TokenStore for SqliteStore {
    async fn create_family(&self, family: &TokenFamily) -> Result<(), StoreError> {
        let f = family.clone();
        self.write(Affected::Nothing, move |tx| {
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
            Ok(())
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
        let (kind, subject, cutoff) = match revocation {
            Revocation::Family { id, .. } => ("family", id.to_string(), 0),
            Revocation::Token { jti, .. } => ("token", jti.clone(), 0),
            Revocation::UserBefore { user, before, .. } => {
                ("user", user.to_string(), before.unix_millis())
            }
        };
        let until = revocation.until().unix_millis();
        let saved = Timestamp::now().unix_millis();
        self.write(Affected::Nothing, move |tx| {
            tx.execute(
                "INSERT INTO revocations (kind, subject, cutoff, until, saved) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (kind, subject) DO UPDATE SET
                     cutoff = max(cutoff, excluded.cutoff), until = max(until, excluded.until),
                     saved = excluded.saved",
                params![kind, subject, cutoff, until, saved],
            )
            .map_err(to_store_error)?;
            Ok(())
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
                "SELECT kind, subject, cutoff, until FROM revocations WHERE until > ?1 AND saved >= ?2",
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
