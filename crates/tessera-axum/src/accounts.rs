//! Account changes, with every effect they must have.
//!
//! The one place that changes an account: `PATCH /admin/users/{email}`,
//! the `tessera user` commands (and the self-service flows to come) all call
//! [`Accounts`], so a role change, a disable or a new password has the same
//! effect whichever way it comes: the user record, the user's server-side
//! sessions, refresh families and access tokens, and sealed cookie sessions,
//! refused by a cutoff kept as long as the longest-lived of them.

use std::sync::Arc;

use tessera_core::{Email, PasswordHash, Role, SessionStore, StoreError, User, UserId, UserStore};

use crate::tokens::Revocations;

/// What an account change did.
#[derive(Debug, Clone)]
pub struct AccountChange {
    /// The user after the change.
    pub user: User,
    /// Server-side sessions updated (roles) or ended (disable, password).
    pub sessions_affected: u64,
    /// Refresh families ended, with their access tokens (and, if a cutoff
    /// was set, every sealed cookie session of the user).
    pub families_ended: u64,
}

/// Account operations over the user store, the session store and the
/// revocations.
#[derive(Clone)]
pub struct Accounts {
    users: Arc<dyn UserStore>,
    sessions: Arc<dyn SessionStore>,
    revocations: Arc<Revocations>,
    sealed_sessions: bool,
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accounts")
            .field("sealed_sessions", &self.sealed_sessions)
            .finish_non_exhaustive()
    }
}

impl Accounts {
    /// Operations over these stores. `sealed_sessions`: sessions live in
    /// sealed cookies (`session_storage = cookie`), which cannot be updated
    /// from here, only refused.
    pub fn new(
        users: Arc<dyn UserStore>,
        sessions: Arc<dyn SessionStore>,
        revocations: Arc<Revocations>,
        sealed_sessions: bool,
    ) -> Self {
        Self {
            users,
            sessions,
            revocations,
            sealed_sessions,
        }
    }

    /// Replaces the user's roles. Live server-side sessions get the new
    /// roles on their next request, under a fresh session id; sealed cookie
    /// sessions are ended (the new roles apply from the next login).
    /// `Ok(None)` if no such user.
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
        let families_ended = if self.sealed_sessions {
            self.revocations.end_user(user.id).await?
        } else {
            0
        };
        Ok(Some(AccountChange {
            user,
            sessions_affected,
            families_ended,
        }))
    }

    /// Disables the user, ending every session, refresh family, access token
    /// and sealed cookie at once; or re-enables them. `Ok(None)` if no such
    /// user.
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
        let (sessions_affected, families_ended) = if disabled {
            self.end_everything(user.id).await?
        } else {
            (0, 0)
        };
        Ok(Some(AccountChange {
            user,
            sessions_affected,
            families_ended,
        }))
    }

    /// Sets a new password hash and ends every session, refresh family,
    /// access token and sealed cookie of the user (OWASP: a password change
    /// invalidates existing sessions). `Ok(None)` if no such user.
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
        let (sessions_affected, families_ended) = self.end_everything(user.id).await?;
        Ok(Some(AccountChange {
            user,
            sessions_affected,
            families_ended,
        }))
    }

    /// "Log out everywhere": ends every credential of the user. Returns the
    /// server-side sessions and the refresh families ended.
    ///
    /// # Errors
    ///
    /// Store errors.
    pub async fn end_everything(&self, user: UserId) -> Result<(u64, u64), StoreError> {
        let sessions = self.sessions.delete_all_for_user(user).await?;
        let families = self.revocations.end_user(user).await?;
        Ok((sessions, families))
    }
}

/// Logs a warning (the user id, never the address) when the user's address
/// mixes scripts (UTS #39), the mark of an address made to look like
/// another's. For operators to review; nothing is refused. Called at login
/// and wherever an account is created.
pub fn warn_if_mixed_script(user: &tessera_core::User) {
    if user.email.mixed_script() {
        tracing::warn!(user = %user.id, "the account's e-mail address mixes scripts (possible look-alike)");
    }
}
