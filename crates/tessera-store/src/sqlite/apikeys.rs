//! The `ApiKeyStore` contract on SQLite.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Row, params};
use tessera_core::{ApiKey, ApiKeyId, ApiKeyStore, StoreError, Timestamp};

use super::rows::{corrupt, decode_roles, encode_roles};
use super::{Affected, SqliteStore, to_store_error};

const COLUMNS: &str = "id, name, roles, created_at, expires_at, last_used, secret_hash";

fn key_from_row(row: &Row<'_>) -> rusqlite::Result<ApiKey> {
    let id: String = row.get(0)?;
    let roles: String = row.get(2)?;
    Ok(ApiKey {
        id: ApiKeyId::parse(&id).map_err(|e| corrupt("api key id")(e.to_string()))?,
        name: row.get(1)?,
        roles: decode_roles(&roles)?,
        created_at: Timestamp::from_unix_millis(row.get(3)?),
        expires_at: row
            .get::<_, Option<i64>>(4)?
            .map(Timestamp::from_unix_millis),
        last_used: row
            .get::<_, Option<i64>>(5)?
            .map(Timestamp::from_unix_millis),
        secret_hash: row.get(6)?,
    })
}

#[async_trait]
impl ApiKeyStore for SqliteStore {
    async fn create_api_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        let key = key.clone();
        self.write(Affected::Nothing, move |tx| {
            tx.execute(
                &format!("INSERT INTO api_keys ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"),
                params![
                    key.id.as_str(),
                    key.name,
                    encode_roles(&key.roles),
                    key.created_at.unix_millis(),
                    key.expires_at.map(Timestamp::unix_millis),
                    key.last_used.map(Timestamp::unix_millis),
                    key.secret_hash.as_slice(),
                ],
            )
            .map_err(to_store_error)?;
            Ok(())
        })
        .await
    }

    async fn api_key(&self, id: &ApiKeyId) -> Result<Option<ApiKey>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT id, name, roles, created_at, expires_at, last_used, secret_hash \
                 FROM api_keys WHERE id = ?1",
            )?
            .query_row([id.as_str()], key_from_row)
            .optional()
        })
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM api_keys ORDER BY created_at, id"
            ))?
            .query_map([], key_from_row)?
            .collect()
        })
    }

    async fn delete_api_key(&self, id: &ApiKeyId) -> Result<bool, StoreError> {
        let id = id.as_str().to_owned();
        self.write(Affected::Nothing, move |tx| {
            let n = tx
                .execute("DELETE FROM api_keys WHERE id = ?1", [id])
                .map_err(to_store_error)?;
            Ok(n > 0)
        })
        .await
    }

    async fn touch_api_key(&self, id: &ApiKeyId, at: Timestamp) -> Result<bool, StoreError> {
        let id = id.as_str().to_owned();
        self.write(Affected::Nothing, move |tx| {
            let n = tx
                .execute(
                    "UPDATE api_keys SET last_used = ?2 WHERE id = ?1",
                    params![id, at.unix_millis()],
                )
                .map_err(to_store_error)?;
            Ok(n > 0)
        })
        .await
    }
}
