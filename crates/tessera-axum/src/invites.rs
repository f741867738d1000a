//! Invites and operator-sent recovery links: tickets made by an admin (the
//! admin API) or an operator (`tessera user invite`), mailed when a mailer
//! is configured and otherwise handed back so that the operator can pass
//! them on. One function per action, for every entry point.

use std::time::Duration;

use tessera_core::{
    AuditKind, Email, Notice, OutgoingMail, Role, StoreError, Ticket, TicketPurpose, TicketStore,
    Timestamp, User, UserStore,
};

use crate::audit::{AuditContext, AuditTrail};
use crate::mail::Mail;
use crate::self_service::SelfServiceConfig;

/// The longest an invite may work: 90 days.
pub const MAX_INVITE_LIFETIME: Duration = Duration::from_secs(90 * 24 * 3600);

/// A ticket an operator made: its link, and whether it went out by mail
/// (else the operator must pass the link on; it is shown this once).
#[derive(Clone)]
pub struct IssuedLink {
    /// The link carrying the ticket.
    pub link: String,
    /// Whether the link was queued for mailing.
    pub mailed: bool,
    /// When the ticket stops working.
    pub expires_at: Timestamp,
}

impl std::fmt::Debug for IssuedLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedLink")
            .field("mailed", &self.mailed)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Why an invite was not made.
#[derive(Debug, thiserror::Error)]
pub enum InviteError {
    /// The address has an account already.
    #[error("a user with this e-mail address exists")]
    Taken,
    /// A store did not answer.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What an operator action needs: the stores, the mailer, the settings and
/// the audit trail.
#[derive(Clone, Copy)]
pub struct OperatorMail<'a> {
    /// The users (an invite refuses a taken address).
    pub users: &'a dyn UserStore,
    /// Where tickets live.
    pub tickets: &'a dyn TicketStore,
    /// The mailer (`mail = none`: links are handed back instead).
    pub mail: &'a Mail,
    /// Ticket lifetimes and link base.
    pub config: &'a SelfServiceConfig,
    /// Where the action is recorded.
    pub audit: &'a AuditTrail,
}

impl std::fmt::Debug for OperatorMail<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperatorMail").finish_non_exhaustive()
    }
}

impl OperatorMail<'_> {
    async fn issue(
        &self,
        purpose: TicketPurpose,
        user: Option<&User>,
        email: &Email,
        roles: Vec<Role>,
        lifetime: Duration,
        notice: impl FnOnce(String) -> Notice,
    ) -> Result<IssuedLink, StoreError> {
        let (secret, ticket) = Ticket::issue(
            purpose,
            user.map(|u| u.id),
            email.clone(),
            roles,
            Timestamp::now(),
            lifetime,
        );
        self.tickets.create_ticket(&ticket).await?;
        let link = self.config.links.link(purpose, &secret);
        let mailed = self.mail.is_configured();
        if mailed {
            self.mail
                .send(OutgoingMail {
                    to: email.clone(),
                    notice: notice(link.clone()),
                })
                .await?;
        }
        Ok(IssuedLink {
            link,
            mailed,
            expires_at: ticket.expires_at,
        })
    }

    /// Invites `email` to sign up (`POST /signup` with the invite) with
    /// `roles`, for `lifetime` (`invite_ttl` if `None`; at most
    /// [`MAX_INVITE_LIFETIME`]); recorded as `invite_created` (the address
    /// is not recorded).
    ///
    /// # Errors
    ///
    /// [`InviteError::Taken`] if the address has an account; store errors.
    pub async fn invite(
        &self,
        context: &AuditContext,
        email: &Email,
        roles: Vec<Role>,
        lifetime: Option<Duration>,
    ) -> Result<IssuedLink, InviteError> {
        let lifetime = lifetime
            .unwrap_or(self.config.invite_ttl)
            .clamp(Duration::from_secs(1), MAX_INVITE_LIFETIME);
        if self.users.by_email(email).await?.is_some() {
            return Err(InviteError::Taken);
        }
        let detail = format!(
            "roles: {}",
            roles.iter().map(Role::as_str).collect::<Vec<_>>().join(",")
        );
        let issued = self
            .issue(
                TicketPurpose::Invite,
                None,
                email,
                roles,
                lifetime,
                |link| Notice::Invite { link },
            )
            .await?;
        self.audit
            .record_now(context.event(AuditKind::InviteCreated).detail(detail))
            .await?;
        Ok(issued)
    }

    /// A password-reset link for `user`, as `POST /password/forgot` would
    /// mail it; recorded as `user_updated` ("reset link issued").
    ///
    /// # Errors
    ///
    /// Store errors.
    pub async fn reset_link(
        &self,
        context: &AuditContext,
        user: &User,
    ) -> Result<IssuedLink, StoreError> {
        let issued = self
            .issue(
                TicketPurpose::ResetPassword,
                Some(user),
                &user.email,
                Vec::new(),
                self.config.reset_ttl,
                |link| Notice::ResetPassword { link },
            )
            .await?;
        self.audit
            .record_now(
                context
                    .event_about(AuditKind::UserUpdated, user.id)
                    .detail("password reset link issued"),
            )
            .await?;
        Ok(issued)
    }
}
