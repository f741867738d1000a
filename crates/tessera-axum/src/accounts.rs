//! Account administration that must keep users and sessions in step.
//!
//! Used by both `PATCH /admin/users/{email}` and the `tessera user` commands,
//! so a role change or a disable has the same effect whichever way it comes.

use std::sync::Arc;

use tessera_core::{Email, PasswordHash, Role, SessionStore, StoreError, User, UserStore};

/// What an account change did.
#[derive(Debug, Clone)]
pub struct AccountChange {
    /// The user after the change.
    pub user: User,
    /// Sessions that were updated (roles) or ended (disable, password).
    pub sessions_affected: u64,
}

/// Account operations over a user store and a session store.
#[derive(Clone)]
pub struct Accounts {
    users: Arc<dyn UserStore>,
    sessions: Arc<dyn SessionStore>,
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accounts").finish_non_exhaustive()
    }
}

impl Accounts {
    /// Operations over these stores.
    pub fn new(users: Arc<dyn UserStore>, sessions: Arc<dyn SessionStore>) -> Self {
        Self { users, sessions }
    }

    /// Replaces the user's roles. Live sessions get the new roles on their
    /// next request, under a fresh session id. `Ok(None)` if no such user.
    ///
    /// # Errors
    ///
    /// Store errors.
    pub async fn set_roles(
        &self,
        email: &Email,
        roles: &[Role],
    ) -> Result<Option<AccountChange>, StoreError> {
        let Some(user) = self.users.by_email(email).await? else {
            return Ok(None);
        };
        self.users.set_roles(user.id, roles).await?;
        let user = self
            .users
            .by_id(user.id)
            .await?
            .ok_or(StoreError::Conflict)?;
        let sessions_affected = self
            .sessions
            .set_roles_for_user(user.id, &user.roles)
            .await?;
        Ok(Some(AccountChange {
            user,
            sessions_affected,
        }))
    }

    /// Disables (ending every session at once) or re-enables the user.
    /// `Ok(None)` if no such user.
    ///
    /// # Errors
    ///
    /// Store errors.
    pub async fn set_disabled(
        &self,
        email: &Email,
        disabled: bool,
    ) -> Result<Option<AccountChange>, StoreError> {
        let Some(mut user) = self.users.by_email(email).await? else {
            return Ok(None);
        };
        self.users.set_disabled(user.id, disabled).await?;
        user.disabled = disabled;
        let sessions_affected = if disabled {
            self.sessions.delete_all_for_user(user.id).await?
        } else {
            0
        };
        Ok(Some(AccountChange {
            user,
            sessions_affected,
        }))
    }

    /// Sets a new password hash and ends every session of the user (OWASP:
    /// a password change invalidates existing sessions). `Ok(None)` if no such user.
    ///
    /// # Errors
    ///
    /// Store errors.
    pub async fn set_password(
        &self,
        email: &Email,
        hash: &PasswordHash,
    ) -> Result<Option<AccountChange>, StoreError> {
        let Some(mut user) = self.users.by_email(email).await? else {
            return Ok(None);
        };
        self.users.set_password_hash(user.id, hash).await?;
        user.password_hash = hash.clone();
        let sessions_affected = self.sessions.delete_all_for_user(user.id).await?;
        Ok(Some(AccountChange {
            user,
            sessions_affected,
        }))
    }
}
