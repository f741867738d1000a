//! The `UserStore` contract (users and the audit log) on PostgreSQL.

use async_trait::async_trait;
use tessera_core::{
    AuditEvent, Email, PasswordHash, Role, StoreError, Timestamp, User, UserId, UserPage,
    UserQuery, UserStore,
};

use super::PostgresUserStore;

const USER_COLUMNS: &str = "id, email, roles, disabled, password_hash, created_at, email_verified";

fn user_from_row(row: &tokio_postgres::Row) -> Result<User, StoreError> {
    let email: String = row.get(1);
    let roles: String = row.get(2);
    Ok(User {
        id: UserId::from_uuid(row.get(0)),
        email: Email::from_sealed(email),
        roles: roles
            .split_whitespace()
            .map(|r| Role::parse(r).map_err(|e| StoreError::Corrupt(e.to_string())))
            .collect::<Result<_, _>>()?,
        disabled: row.get(3),
        password_hash: PasswordHash::from_trusted(row.get(4)),
        created_at: Timestamp::from_unix_millis(row.get(5)),
        email_verified: row.get(6),
    })
}

pub(super) fn encode_roles(roles: &[Role]) -> String {
    roles.iter().map(Role::as_str).collect::<Vec<_>>().join(" ")
}

#[async_trait]
impl UserStore for PostgresUserStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn create(&self, user: &User) -> Result<(), StoreError> {
        let user = user.clone();
        self.with(|c| async move {
            c.execute(
                &format!("INSERT INTO users ({USER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"),
                &[
                    user.id.as_uuid(),
                    &user.email.as_str(),
                    &encode_roles(&user.roles),
                    &user.disabled,
                    &user.password_hash.as_str(),
                    &user.created_at.unix_millis(),
                    &user.email_verified,
                ],
            )
            .await
            .map(|_| ())
        })
        .await
    }

    async fn by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
        let email = email.as_str().to_owned();
        let row = self
            .with(|c| async move {
                c.query_opt(
                    &format!("SELECT {USER_COLUMNS} FROM users WHERE email = $1"),
                    &[&email],
                )
                .await
            })
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn by_id(&self, id: UserId) -> Result<Option<User>, StoreError> {
        let row = self
            .with(|c| async move {
                c.query_opt(
                    &format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"),
                    &[id.as_uuid()],
                )
                .await
            })
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn list(&self) -> Result<Vec<User>, StoreError> {
        let rows = self
            .with(|c| async move {
                c.query(
                    &format!("SELECT {USER_COLUMNS} FROM users ORDER BY email"),
                    &[],
                )
                .await
            })
            .await?;
        rows.iter().map(user_from_row).collect()
    }

    async fn list_page(&self, query: &UserQuery) -> Result<UserPage, StoreError> {
        use tokio_postgres::types::ToSql;
        let size = query.page_size();
        let limit = i64::try_from(size + 1).unwrap_or(i64::MAX);
        let prefix = query.email_prefix.clone();
        let role = query.role.as_ref().map(|r| format!(" {} ", r.as_str()));
        let after_email = query.after.as_ref().map(|c| c.email.clone());
        let after_id = query.after.as_ref().map(|c| *c.id.as_uuid());
        let (disabled, verified) = (query.disabled, query.verified);
        // Byte order (COLLATE "C"), as the other stores and the cursor
        // compare; the prefix is literal (starts_with, no LIKE wildcards).
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM users
             WHERE ($1::TEXT IS NULL OR starts_with(email, $1))
               AND ($2::TEXT IS NULL OR position($2 IN ' ' || roles || ' ') > 0)
               AND ($3::BOOLEAN IS NULL OR disabled = $3)
               AND ($4::BOOLEAN IS NULL OR email_verified = $4)
               AND ($5::TEXT IS NULL OR (email COLLATE \"C\", id) > ($5 COLLATE \"C\", $6::UUID))
             ORDER BY email COLLATE \"C\", id
             LIMIT $7"
        );
        let rows = self
            .with(|c| async move {
                let args: [&(dyn ToSql + Sync); 7] = [
                    &prefix,
                    &role,
                    &disabled,
                    &verified,
                    &after_email,
                    &after_id,
                    &limit,
                ];
                c.query(&sql, &args).await
            })
            .await?;
        let users = rows.iter().map(user_from_row).collect::<Result<_, _>>()?;
        Ok(UserPage::from_rows(users, size))
    }

    async fn delete_user(&self, id: UserId) -> Result<bool, StoreError> {
        self.with(|c| async move {
            c.execute("DELETE FROM users WHERE id = $1", &[id.as_uuid()])
                .await
                .map(|n| n > 0)
        })
        .await
    }

    async fn set_roles(&self, id: UserId, roles: &[Role]) -> Result<bool, StoreError> {
        let roles = encode_roles(&tessera_core::user::normalise_roles(roles.to_vec()));
        self.with(|c| async move {
            c.execute(
                "UPDATE users SET roles = $2 WHERE id = $1",
                &[id.as_uuid(), &roles],
            )
            .await
            .map(|n| n > 0)
        })
        .await
    }

    async fn set_disabled(&self, id: UserId, disabled: bool) -> Result<bool, StoreError> {
        self.with(|c| async move {
            c.execute(
                "UPDATE users SET disabled = $2 WHERE id = $1",
                &[id.as_uuid(), &disabled],
            )
            .await
            .map(|n| n > 0)
        })
        .await
    }

    async fn set_email(&self, id: UserId, email: &Email) -> Result<bool, StoreError> {
        let email = email.as_str().to_owned();
        self.with(|c| async move {
            c.execute(
                "UPDATE users SET email = $2 WHERE id = $1",
                &[id.as_uuid(), &email],
            )
            .await
            .map(|n| n > 0)
        })
        .await
    }

    async fn set_email_verified(&self, id: UserId, verified: bool) -> Result<bool, StoreError> {
        self.with(|c| async move {
            c.execute(
                "UPDATE users SET email_verified = $2 WHERE id = $1",
                &[id.as_uuid(), &verified],
            )
            .await
            .map(|n| n > 0)
        })
        .await
    }

    async fn set_password_hash(&self, id: UserId, hash: &PasswordHash) -> Result<bool, StoreError> {
        let hash = hash.as_str().to_owned();
        self.with(|c| async move {
            c.execute(
                "UPDATE users SET password_hash = $2 WHERE id = $1",
                &[id.as_uuid(), &hash],
            )
            .await
            .map(|n| n > 0)
        })
        .await
    }

    async fn record_audit(&self, event: &AuditEvent) -> Result<(), StoreError> {
        self.append_audit(vec![event.clone()]).await
    }

    async fn record_audit_batch(&self, events: &[AuditEvent]) -> Result<(), StoreError> {
        self.append_audit(events.to_vec()).await
    }

    async fn audit_events(
        &self,
        query: &tessera_core::AuditQuery,
    ) -> Result<tessera_core::AuditPage, StoreError> {
        self.audit_page(query).await
    }

    async fn purge_audit(&self, before: Timestamp) -> Result<u64, StoreError> {
        self.purge_audit_before(before).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.with(|c| async move { c.execute("SELECT 1", &[]).await.map(|_| ()) })
            .await
    }
}
