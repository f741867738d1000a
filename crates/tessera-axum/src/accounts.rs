//! Account changes, with every effect they must have.
//!
//! The one place that changes an account: `PATCH /admin/users/{email}`,
//! the `tessera user` commands (and the self-service flows to come) all call
//! [`Accounts`], so a role change, a disable or a new password has the same
//! effect whichever way it comes: the user record, the user's server-side
//! sessions, refresh families and access tokens, and sealed cookie sessions,
//! refused by a cutoff kept as long as the longest-lived of them.
//!
//! Each change records one audit event ([`AuditContext`] says who made it
//! and from where), so every entry point leaves the same trace.

use std::sync::Arc;

use tessera_core::{
    AuditKind, Email, PasswordHash, Role, SessionStore, StoreError, User, UserId, UserStore,
};

use crate::audit::{AuditContext, AuditTrail};
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
    audit: AuditTrail,
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
    /// from here, only refused. Changes are recorded in `audit`.
    pub fn new(
        users: Arc<dyn UserStore>,
        sessions: Arc<dyn SessionStore>,
        revocations: Arc<Revocations>,
        sealed_sessions: bool,
        audit: AuditTrail,
    ) -> Self {
        Self {
            users,
            sessions,
            revocations,
            sealed_sessions,
            audit,
        }
    }

    /// Where the changes are recorded.
    pub fn audit(&self) -> &AuditTrail {
        &self.audit
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
        context: &AuditContext,
        email: &Email,
        roles: &[Role],
    ) -> Result<Option<AccountChange>, StoreError> {
        let Some(user) = self.users.by_email(email).await? else {
            return Ok(None);
        };
        let before = role_list(&user.roles);
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
        self.audit
            .record_now(
                context
                    .event_about(AuditKind::RolesChanged, user.id)
                    .detail(format!(
                        "roles: {} (were: {before})",
                        role_list(&user.roles)
                    )),
            )
            .await?;
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
        context: &AuditContext,
        email: &Email,
        disabled: bool,
    ) -> Result<Option<AccountChange>, StoreError> {
        let Some(mut user) = self.users.by_email(email).await? else {
            return Ok(None);
        };
        self.users.set_disabled(user.id, disabled).await?;
        user.disabled = disabled;
        let (sessions_affected, families_ended) = if disabled {
            self.end_credentials(user.id).await?
        } else {
            (0, 0)
        };
        let (kind, detail) = if disabled {
            (
                AuditKind::UserDisabled,
                ended(sessions_affected, families_ended),
            )
        } else {
            (AuditKind::UserEnabled, String::new())
        };
        self.audit
            .record_now(context.event_about(kind, user.id).detail(detail))
            .await?;
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
        context: &AuditContext,
        email: &Email,
        hash: &PasswordHash,
    ) -> Result<Option<AccountChange>, StoreError> {
        let Some(mut user) = self.users.by_email(email).await? else {
            return Ok(None);
        };
        self.users.set_password_hash(user.id, hash).await?;
        user.password_hash = hash.clone();
        let (sessions_affected, families_ended) = self.end_credentials(user.id).await?;
        self.audit
            .record_now(
                context
                    .event_about(AuditKind::PasswordChanged, user.id)
                    .detail(ended(sessions_affected, families_ended)),
            )
            .await?;
        Ok(Some(AccountChange {
            user,
            sessions_affected,
            families_ended,
        }))
    }

    /// "Log out everywhere": ends every credential of the user (recorded as
    /// `session_ended`). Returns the server-side sessions and the refresh
    /// families ended.
    ///
    /// # Errors
    ///
    /// Store errors.
    pub async fn end_everything(
        &self,
        context: &AuditContext,
        user: UserId,
    ) -> Result<(u64, u64), StoreError> {
        let (sessions, families) = self.end_credentials(user).await?;
        self.audit
            .record_now(
                context
                    .event_about(AuditKind::SessionEnded, user)
                    .detail(format!("everywhere: {}", ended(sessions, families))),
            )
            .await?;
        Ok((sessions, families))
    }

    /// Ends every credential of the user, recording nothing (the caller
    /// records the change that required it).
    async fn end_credentials(&self, user: UserId) -> Result<(u64, u64), StoreError> {
        let sessions = self.sessions.delete_all_for_user(user).await?;
        let families = self.revocations.end_user(user).await?;
        Ok((sessions, families))
    }
}

fn role_list(roles: &[Role]) -> String {
    if roles.is_empty() {
        "-".into()
    } else {
        roles.iter().map(Role::as_str).collect::<Vec<_>>().join(",")
    }
}

fn ended(sessions: u64, families: u64) -> String {
    format!("{sessions} sessions and {families} token families ended")
}
