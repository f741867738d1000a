//! The `UserStore` contract (users and the audit log) on SQLite.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};
use tessera_core::{
    Email, PasswordHash, Role, SessionStore, StoreError, Timestamp, User, UserId, UserStore,
};

use super::rows::{encode_roles, user_columns, user_from_row};
use super::{Affected, SqliteStore, to_store_error};

#[async_trait]
impl UserStore for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn create(&self, user: &User) -> Result<(), StoreError> {
        let user = user.clone();
        self.write(Affected::Nothing, move |tx| {
            tx.execute(
                concat!(
                    "INSERT INTO users (",
                    user_columns!(),
                    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                ),
                params![
                    user.id.to_string(),
                    user.email.as_str(),
                    encode_roles(&user.roles),
                    user.disabled,
                    user.password_hash.as_str(),
                    user.created_at.unix_millis(),
                    user.email_verified,
                ],
            )
            .map_err(to_store_error)?;
            Ok(())
        })
        .await
    }

    async fn by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(concat!(
                "SELECT ",
                user_columns!(),
                " FROM users WHERE email = ?1"
            ))?
            .query_row([email.as_str()], user_from_row)
            .optional()
        })
    }

    async fn by_id(&self, id: UserId) -> Result<Option<User>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(concat!(
                "SELECT ",
                user_columns!(),
                " FROM users WHERE id = ?1"
            ))?
            .query_row([id.to_string()], user_from_row)
            .optional()
        })
    }

    async fn list(&self) -> Result<Vec<User>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(concat!(
                "SELECT ",
                user_columns!(),
                " FROM users ORDER BY email"
            ))?
            .query_map([], user_from_row)?
            .collect()
        })
    }

    async fn set_roles(&self, id: UserId, roles: &[Role]) -> Result<bool, StoreError> {
        let roles = encode_roles(&tessera_core::user::normalise_roles(roles.to_vec()));
        self.update_user(id, "roles", rusqlite::types::Value::Text(roles))
            .await
    }

    async fn set_disabled(&self, id: UserId, disabled: bool) -> Result<bool, StoreError> {
        self.update_user(
            id,
            "disabled",
            rusqlite::types::Value::Integer(disabled.into()),
        )
        .await
    }

    async fn set_email_verified(&self, id: UserId, verified: bool) -> Result<bool, StoreError> {
        self.update_user(
            id,
            "email_verified",
            rusqlite::types::Value::Integer(verified.into()),
        )
        .await
    }

    async fn set_password_hash(&self, id: UserId, hash: &PasswordHash) -> Result<bool, StoreError> {
        self.update_user(
            id,
            "password_hash",
            rusqlite::types::Value::Text(hash.as_str().to_owned()),
        )
        .await
    }

    async fn record_audit(&self, event: &tessera_core::AuditEvent) -> Result<(), StoreError> {
        self.append_audit(vec![event.clone()]).await
    }

    async fn record_audit_batch(
        &self,
        events: &[tessera_core::AuditEvent],
    ) -> Result<(), StoreError> {
        self.append_audit(events.to_vec()).await
    }

    async fn audit_events(
        &self,
        query: &tessera_core::AuditQuery,
    ) -> Result<tessera_core::AuditPage, StoreError> {
        self.audit_page(query)
    }

    async fn purge_audit(&self, before: Timestamp) -> Result<u64, StoreError> {
        self.purge_audit_before(before).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        SessionStore::ping(self).await
    }
}

impl SqliteStore {
    async fn update_user(
        &self,
        id: UserId,
        column: &'static str,
        value: rusqlite::types::Value,
    ) -> Result<bool, StoreError> {
        self.write(Affected::Nothing, move |tx| {
            let changed = tx
                .execute(
                    &format!("UPDATE users SET {column} = ?2 WHERE id = ?1"),
                    params![id.to_string(), value],
                )
                .map_err(to_store_error)?;
            Ok(changed > 0)
        })
        .await
    }
}
