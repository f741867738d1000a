//! The `UserStore` contract (users and the audit log) on SQLite.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};
use tessera_core::{
    Email, PasswordHash, Role, SessionStore, StoreError, Timestamp, User, UserId, UserPage,
    UserQuery, UserStore,
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

    async fn list_page(&self, query: &UserQuery) -> Result<UserPage, StoreError> {
        use rusqlite::types::Value;
        let size = query.page_size();
        let mut sql = String::from(concat!("SELECT ", user_columns!(), " FROM users WHERE 1"));
        let mut args: Vec<Value> = Vec::new();
        // Appends `clause`, its `?` numbered as the argument it adds.
        fn arg(sql: &mut String, args: &mut Vec<Value>, clause: &str, value: Value) {
            args.push(value);
            sql.push_str(&clause.replace('?', &format!("?{}", args.len())));
        }
        if let Some(prefix) = &query.email_prefix {
            // Literal, byte for byte (LIKE would treat % and _ as wildcards
            // and ignore ASCII case); the range lets the e-mail index help.
            arg(
                &mut sql,
                &mut args,
                " AND email >= ?",
                Value::Text(prefix.clone()),
            );
            let n = args.len();
            sql.push_str(&format!(" AND substr(email, 1, length(?{n})) = ?{n}"));
        }
        if let Some(role) = &query.role {
            arg(
                &mut sql,
                &mut args,
                " AND instr(' ' || roles || ' ', ?) > 0",
                Value::Text(format!(" {} ", role.as_str())),
            );
        }
        if let Some(disabled) = query.disabled {
            arg(
                &mut sql,
                &mut args,
                " AND disabled = ?",
                Value::Integer(disabled.into()),
            );
        }
        if let Some(verified) = query.verified {
            arg(
                &mut sql,
                &mut args,
                " AND email_verified = ?",
                Value::Integer(verified.into()),
            );
        }
        if let Some(after) = &query.after {
            arg(
                &mut sql,
                &mut args,
                " AND (email, id) > (?",
                Value::Text(after.email.clone()),
            );
            arg(
                &mut sql,
                &mut args,
                ", ?)",
                Value::Text(after.id.to_string()),
            );
        }
        arg(
            &mut sql,
            &mut args,
            " ORDER BY email, id LIMIT ?",
            Value::Integer(i64::try_from(size + 1).unwrap_or(i64::MAX)),
        );
        let rows = self.read(|conn| {
            conn.prepare_cached(&sql)?
                .query_map(rusqlite::params_from_iter(args), user_from_row)?
                .collect::<rusqlite::Result<Vec<User>>>()
        })?;
        Ok(UserPage::from_rows(rows, size))
    }

    async fn delete_user(&self, id: UserId) -> Result<bool, StoreError> {
        self.write(Affected::Nothing, move |tx| {
            let n = tx
                .execute("DELETE FROM users WHERE id = ?1", [id.to_string()])
                .map_err(to_store_error)?;
            Ok(n > 0)
        })
        .await
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

    async fn set_email(&self, id: UserId, email: &Email) -> Result<bool, StoreError> {
        self.update_user(
            id,
            "email",
            rusqlite::types::Value::Text(email.as_str().to_owned()),
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
