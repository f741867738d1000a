//! The `ApiKeyStore` contract on PostgreSQL.

use async_trait::async_trait;
use tessera_core::{ApiKey, ApiKeyId, ApiKeyStore, Role, StoreError, Timestamp};

use super::PostgresUserStore;
use super::users::encode_roles;

const COLUMNS: &str = "id, name, roles, created_at, expires_at, last_used, secret_hash";

fn key_from_row(row: &tokio_postgres::Row) -> Result<ApiKey, StoreError> {
    let corrupt = |e: tessera_core::InvalidApiKey| StoreError::Corrupt(e.to_string());
    let id: String = row.get(0);
    let roles: String = row.get(2);
    let hash: Vec<u8> = row.get(6);
    Ok(ApiKey {
        id: ApiKeyId::parse(&id).map_err(corrupt)?,
        name: row.get(1),
        roles: roles
            .split_whitespace()
            .map(|r| Role::parse(r).map_err(|e| StoreError::Corrupt(e.to_string())))
            .collect::<Result<_, _>>()?,
        created_at: Timestamp::from_unix_millis(row.get(3)),
        expires_at: row
            .get::<_, Option<i64>>(4)
            .map(Timestamp::from_unix_millis),
        last_used: row
            .get::<_, Option<i64>>(5)
            .map(Timestamp::from_unix_millis),
        secret_hash: hash
            .try_into()
            .map_err(|_| StoreError::Corrupt("api key hash is not 32 bytes".into()))?,
    })
}

#[async_trait]
impl ApiKeyStore for PostgresUserStore {
    async fn create_api_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        let key = key.clone();
        self.with(|c| async move {
            c.execute(
                &format!("INSERT INTO api_keys ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"),
                &[
                    &key.id.as_str(),
                    &key.name,
                    &encode_roles(&key.roles),
                    &key.created_at.unix_millis(),
                    &key.expires_at.map(Timestamp::unix_millis),
                    &key.last_used.map(Timestamp::unix_millis),
                    &key.secret_hash.as_slice(),
                ],
            )
            .await
            .map(|_| ())
        })
        .await
    }

    async fn api_key(&self, id: &ApiKeyId) -> Result<Option<ApiKey>, StoreError> {
        let id = id.as_str().to_owned();
        let row = self
            .with(|c| async move {
                c.query_opt(
                    &format!("SELECT {COLUMNS} FROM api_keys WHERE id = $1"),
                    &[&id],
                )
                .await
            })
            .await?;
        row.as_ref().map(key_from_row).transpose()
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        let rows = self
            .with(|c| async move {
                c.query(
                    &format!(
                        "SELECT {COLUMNS} FROM api_keys ORDER BY created_at, id COLLATE \"C\""
                    ),
                    &[],
                )
                .await
            })
            .await?;
        rows.iter().map(key_from_row).collect()
    }

    async fn delete_api_key(&self, id: &ApiKeyId) -> Result<bool, StoreError> {
        let id = id.as_str().to_owned();
        self.with(|c| async move {
            c.execute("DELETE FROM api_keys WHERE id = $1", &[&id])
                .await
                .map(|n| n > 0)
        })
        .await
    }

    async fn touch_api_key(&self, id: &ApiKeyId, at: Timestamp) -> Result<bool, StoreError> {
        let id = id.as_str().to_owned();
        self.with(|c| async move {
            c.execute(
                "UPDATE api_keys SET last_used = $2 WHERE id = $1",
                &[&id, &at.unix_millis()],
            )
            .await
            .map(|n| n > 0)
        })
        .await
    }
}
