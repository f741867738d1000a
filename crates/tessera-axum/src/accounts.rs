//! Account changes, with every effect they must have.
//!
//! The one place that changes an account: the admin API, the `tessera
//! user` commands and the self-service flows all call [`Accounts`], so a role change, a disable or a new password has the same
//! effect whichever way it comes: the user record, the user's server-side
//! sessions, refresh families and access tokens, and sealed cookie sessions,
//! refused by a cutoff kept as long as the longest-lived of them.
//!
//! Each change records one audit event ([`AuditContext`] says who made it
//! and from where), so every entry point leaves the same trace.

use std::sync::Arc;

use tessera_core::{
    AuditKind, Email, NewUser, Notice, OutgoingMail, PasswordHash, Role, SessionStore, StoreError,
    TicketPurpose, TicketStore, Timestamp, User, UserCopy, UserId, UserStore,
};

use crate::audit::{AuditContext, AuditTrail};
use crate::mail::Mail;
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

/// How a password changes ([`Accounts::change_password`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordChange {
    /// Set by the user, an admin or an operator: every credential of the
    /// user ends (`password_changed`).
    Changed,
    /// Set by the user, who asked to stay logged in elsewhere
    /// (`password_changed`).
    KeepingSessions,
    /// Set through a mailed recovery link: every credential ends
    /// (`password_reset`).
    Reset,
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
    tickets: Option<Arc<dyn TicketStore>>,
    mail: Option<Mail>,
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
            tickets: None,
            mail: None,
        }
    }

    /// The same, also mailing the security notices a change calls for (the
    /// password changed, the address changed, the account deleted), from
    /// every entry point alike.
    #[must_use]
    pub fn with_mail(mut self, mail: Mail) -> Self {
        self.mail = Some(mail);
        self
    }

    /// Queues a security notice to `to` (nothing without a mailer).
    async fn notify(&self, to: &Email, notice: Notice) -> Result<(), StoreError> {
        match &self.mail {
            Some(mail) => {
                mail.send(OutgoingMail {
                    to: to.clone(),
                    notice,
                })
                .await
            }
            None => Ok(()),
        }
    }

    /// The same, also ending the user's outstanding mailed links (tickets)
    /// that a change makes dangerous: a password change or reset ends the
    /// reset and address-change links (one of them may be an attacker's),
    /// an address change ends every link made for the old address, a
    /// deletion ends all.
    #[must_use]
    pub fn with_tickets(mut self, tickets: Arc<dyn TicketStore>) -> Self {
        self.tickets = Some(tickets);
        self
    }

    /// Ends the user's tickets of these purposes.
    async fn revoke_tickets(
        &self,
        user: UserId,
        purposes: &[TicketPurpose],
    ) -> Result<(), StoreError> {
        if let Some(tickets) = &self.tickets {
            for purpose in purposes {
                tickets.revoke_tickets(user, *purpose).await?;
            }
        }
        Ok(())
    }

    /// Where the changes are recorded.
    pub fn audit(&self) -> &AuditTrail {
        &self.audit
    }

    /// Creates a user (recorded as `user_created`). `Ok(None)` if the
    /// address is taken.
    ///
    /// # Errors
    ///
    /// Store errors.
    pub async fn create_user(
        &self,
        context: &AuditContext,
        new_user: NewUser,
    ) -> Result<Option<User>, StoreError> {
        self.create(context, new_user, AuditKind::UserCreated).await
    }

    /// Creates the account of someone signing up (recorded as
    /// `signed_up`). `Ok(None)` if the address is taken.
    ///
    /// # Errors
    ///
    /// Store errors.
    pub async fn sign_up(
        &self,
        context: &AuditContext,
        new_user: NewUser,
    ) -> Result<Option<User>, StoreError> {
        self.create(context, new_user, AuditKind::SignedUp).await
    }

    async fn create(
        &self,
        context: &AuditContext,
        new_user: NewUser,
        kind: AuditKind,
    ) -> Result<Option<User>, StoreError> {
        let user = new_user.into_user(Timestamp::now());
        match self.users.create(&user).await {
            Ok(()) => {}
            Err(StoreError::Conflict) => return Ok(None),
            Err(other) => return Err(other),
        }
        warn_if_mixed_script(&user);
        self.audit
            .record_now(context.event_about(kind, user.id).detail(format!(
                "roles: {}; email_verified: {}",
                role_list(&user.roles),
                user.email_verified
            )))
            .await?;
        Ok(Some(user))
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
        match self.users.by_email(email).await? {
            Some(user) => self.set_roles_of(context, user.id, roles).await,
            None => Ok(None),
        }
    }

    /// [`Accounts::set_roles`] for the user with this id.
    ///
    /// # Errors
    ///
    /// Store errors.
    pub async fn set_roles_of(
        &self,
        context: &AuditContext,
        id: UserId,
        roles: &[Role],
    ) -> Result<Option<AccountChange>, StoreError> {
        let Some(user) = self.users.by_id(id).await? else {
            return Ok(None);
        };
        let before = role_list(&user.roles);
        if !self.users.set_roles(id, roles).await? {
            return Ok(None);
        }
        let Some(user) = self.users.by_id(id).await? else {
            return Ok(None);
        };
        let sessions_affected = self.refresh_user_copy(&user).await?;
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
        match self.users.by_email(email).await? {
            Some(user) => self.set_disabled_of(context, user.id, disabled).await,
            None => Ok(None),
        }
    }

    /// [`Accounts::set_disabled`] for the user with this id.
    ///
    /// # Errors
    ///
    /// Store errors.
    pub async fn set_disabled_of(
        &self,
        context: &AuditContext,
        id: UserId,
        disabled: bool,
    ) -> Result<Option<AccountChange>, StoreError> {
        if !self.users.set_disabled(id, disabled).await? {
            return Ok(None);
        }
        let Some(user) = self.users.by_id(id).await? else {
            return Ok(None);
        };
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
        self.change_password(context, email, hash, PasswordChange::Changed)
            .await
    }

    /// Sets a new password hash, recorded and with the effects `how` says.
    /// `Ok(None)` if no such user.
    ///
    /// # Errors
    ///
    /// Store errors.
    pub async fn change_password(
        &self,
        context: &AuditContext,
        email: &Email,
        hash: &PasswordHash,
        how: PasswordChange,
    ) -> Result<Option<AccountChange>, StoreError> {
        let Some(mut user) = self.users.by_email(email).await? else {
            return Ok(None);
        };
        self.users.set_password_hash(user.id, hash).await?;
        user.password_hash = hash.clone();
        self.revoke_tickets(
            user.id,
            &[TicketPurpose::ResetPassword, TicketPurpose::ChangeEmail],
        )
        .await?;
        let (sessions_affected, families_ended) = match how {
            PasswordChange::KeepingSessions => (0, 0),
            PasswordChange::Changed | PasswordChange::Reset => {
                self.end_credentials(user.id).await?
            }
        };
        let (kind, detail) = match how {
            PasswordChange::Reset => (
                AuditKind::PasswordReset,
                ended(sessions_affected, families_ended),
            ),
            PasswordChange::Changed => (
                AuditKind::PasswordChanged,
                ended(sessions_affected, families_ended),
            ),
            PasswordChange::KeepingSessions => {
                (AuditKind::PasswordChanged, "sessions kept".to_owned())
            }
        };
        self.audit
            .record_now(context.event_about(kind, user.id).detail(detail))
            .await?;
        self.notify(&user.email, Notice::PasswordChanged).await?;
        Ok(Some(AccountChange {
            user,
            sessions_affected,
            families_ended,
        }))
    }

    /// Gives the user a new address (already normalised by [`Email`]) and
    /// ends every session, refresh family, access token and sealed cookie
    /// of the user: each carries the old address (the name apps were told
    /// in `/profile` and forward-auth headers), and an operator changing a
    /// login name is often repairing a taken-over account. Recorded as
    /// `user_updated` (without either address). `Ok(None)` if no such user.
    ///
    /// # Errors
    ///
    /// [`StoreError::Conflict`] if another user has the address; store
    /// errors.
    pub async fn set_email(
        &self,
        context: &AuditContext,
        id: UserId,
        email: &Email,
    ) -> Result<Option<AccountChange>, StoreError> {
        let Some(before) = self.users.by_id(id).await? else {
            return Ok(None);
        };
        if before.email == *email {
            return Ok(Some(AccountChange {
                user: before,
                sessions_affected: 0,
                families_ended: 0,
            }));
        }
        if !self.users.set_email(id, email).await? {
            return Ok(None);
        }
        self.revoke_tickets(id, &TicketPurpose::ALL).await?;
        let (sessions_affected, families_ended) = self.end_credentials(id).await?;
        let Some(user) = self.users.by_id(id).await? else {
            return Ok(None);
        };
        self.audit
            .record_now(
                context
                    .event_about(AuditKind::UserUpdated, id)
                    .detail(format!(
                        "email changed; {}",
                        ended(sessions_affected, families_ended)
                    )),
            )
            .await?;
        self.notify(
            &before.email,
            Notice::EmailChanged {
                new_email: email.clone(),
            },
        )
        .await?;
        Ok(Some(AccountChange {
            user,
            sessions_affected,
            families_ended,
        }))
    }

    /// Marks the user's e-mail address verified or not (the sign-up
    /// verification flow, an operator's `tessera user verify`, an admin's
    /// change). `Ok(None)` if no such user; a flag already as asked changes
    /// nothing (0 sessions affected).
    ///
    /// Every credential shows the new flag from the user record on:
    /// - live server-side sessions on their next request (their copy of the
    ///   user is replaced, under a fresh session id, as after a role change);
    /// - access tokens from the next refresh, which reads the user record
    ///   (a token already issued keeps its claim until it expires, at most
    ///   `access_ttl`);
    /// - sealed cookie sessions, which cannot be changed from here: raising
    ///   the flag takes nothing away, so they keep their copy until the next
    ///   login (the request that verifies can re-seal its own cookie);
    ///   lowering it ends them (as a role change does), so that no cookie
    ///   claims an address is verified after it stopped being so.
    ///
    /// # Errors
    ///
    /// Store errors.
    pub async fn set_email_verified(
        &self,
        context: &AuditContext,
        user: UserId,
        verified: bool,
    ) -> Result<Option<AccountChange>, StoreError> {
        let Some(before) = self.users.by_id(user).await? else {
            return Ok(None);
        };
        if before.email_verified == verified {
            // Nothing changes: no session is rotated, no cookie ended.
            return Ok(Some(AccountChange {
                user: before,
                sessions_affected: 0,
                families_ended: 0,
            }));
        }
        if !self.users.set_email_verified(user, verified).await? {
            return Ok(None);
        }
        let Some(user) = self.users.by_id(user).await? else {
            return Ok(None);
        };
        let sessions_affected = self.refresh_user_copy(&user).await?;
        let families_ended = if self.sealed_sessions && !verified {
            self.revocations.end_user(user.id).await?
        } else {
            0
        };
        let event = if verified {
            context.event_about(AuditKind::EmailVerified, user.id)
        } else {
            context
                .event_about(AuditKind::UserUpdated, user.id)
                .detail("address marked unverified")
        };
        self.audit.record_now(event).await?;
        Ok(Some(AccountChange {
            user,
            sessions_affected,
            families_ended,
        }))
    }

    /// [`Accounts::set_email_verified`] for the user with this address.
    ///
    /// # Errors
    ///
    /// Store errors.
    pub async fn set_email_verified_by_email(
        &self,
        context: &AuditContext,
        email: &Email,
        verified: bool,
    ) -> Result<Option<AccountChange>, StoreError> {
        match self.users.by_email(email).await? {
            Some(user) => self.set_email_verified(context, user.id, verified).await,
            None => Ok(None),
        }
    }

    /// Gives the user's live server-side sessions the user record's
    /// current e-mail, roles and `email_verified` (under a fresh id on
    /// their next request). Every change to one of those goes through
    /// here. Returns how many sessions changed.
    ///
    /// # Errors
    ///
    /// Store errors.
    pub async fn refresh_user_copy(&self, user: &User) -> Result<u64, StoreError> {
        self.sessions
            .update_user_copy(user.id, &UserCopy::of(user))
            .await
    }

    /// Moves the user to the address a confirmation link was mailed to
    /// (`POST /email/confirm`): the address counts as verified (the link
    /// reached it), live server-side sessions show it from their next
    /// request (under a fresh id), access tokens from their next refresh,
    /// and sealed cookie sessions, which cannot be changed from here, end.
    /// The user asked for it and proved both the password and the mailbox,
    /// so nothing else ends (an admin's change, [`Accounts::set_email`], is
    /// a repair and ends everything). Recorded as `email_changed` (without
    /// either address). `Ok(None)` if no such user.
    ///
    /// # Errors
    ///
    /// [`StoreError::Conflict`] if another user has the address by now;
    /// store errors.
    pub async fn confirm_email_change(
        &self,
        context: &AuditContext,
        id: UserId,
        email: &Email,
    ) -> Result<Option<AccountChange>, StoreError> {
        let Some(before) = self.users.by_id(id).await? else {
            return Ok(None);
        };
        if !self.users.set_email(id, email).await? {
            return Ok(None);
        }
        self.revoke_tickets(id, &TicketPurpose::ALL).await?;
        self.users.set_email_verified(id, true).await?;
        let Some(user) = self.users.by_id(id).await? else {
            return Ok(None);
        };
        let sessions_affected = self.refresh_user_copy(&user).await?;
        let families_ended = if self.sealed_sessions {
            self.revocations.end_user(user.id).await?
        } else {
            0
        };
        self.audit
            .record_now(context.event_about(AuditKind::EmailChanged, id))
            .await?;
        self.notify(
            &before.email,
            Notice::EmailChanged {
                new_email: email.clone(),
            },
        )
        .await?;
        Ok(Some(AccountChange {
            user,
            sessions_affected,
            families_ended,
        }))
    }

    /// Deletes the user and ends everything attached: every server-side
    /// session, refresh family, access token and sealed cookie (the
    /// per-user cutoff is kept in the token store, so it outlives the user
    /// row for as long as any credential it refuses). The user is disabled
    /// first, so that no login can start while this runs, and credentials
    /// are ended again once the row is gone, so that a login that was
    /// already past its password check leaves nothing behind. API keys
    /// belong to no user: none go. Recorded as `user_deleted`, naming the
    /// user by id only (no address). Returns the user as they were, or
    /// `Ok(None)` if there is no such user. Used by the admin API, `tessera
    /// user delete` and self-service account deletion.
    ///
    /// # Errors
    ///
    /// Store errors (the user may then be disabled and logged out, but not
    /// yet deleted: retrying finishes it).
    pub async fn delete_user(
        &self,
        context: &AuditContext,
        id: UserId,
    ) -> Result<Option<AccountChange>, StoreError> {
        let Some(user) = self.users.by_id(id).await? else {
            return Ok(None);
        };
        self.users.set_disabled(id, true).await?;
        let (sessions, families) = self.end_credentials(id).await?;
        if !self.users.delete_user(id).await? {
            return Ok(None);
        }
        self.revoke_tickets(id, &TicketPurpose::ALL).await?;
        let (late_sessions, late_families) = self.end_credentials(id).await?;
        let (sessions, families) = (sessions + late_sessions, families + late_families);
        self.audit
            .record_now(
                context
                    .event_about(AuditKind::UserDeleted, id)
                    .detail(ended(sessions, families)),
            )
            .await?;
        self.notify(&user.email, Notice::AccountDeleted).await?;
        Ok(Some(AccountChange {
            user,
            sessions_affected: sessions,
            families_ended: families,
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
/// Logs a warning (the user id, never the address) when the user's address
/// mixes scripts (UTS #39), the mark of an address made to look like
/// another's. For operators to review; nothing is refused. Called at login
/// and wherever an account is created.
pub fn warn_if_mixed_script(user: &tessera_core::User) {
    if user.email.mixed_script() {
        tracing::warn!(user = %user.id, "the account's e-mail address mixes scripts (possible look-alike)");
    }
}
