//! Settings of the self-service account flows (sign-up, verification,
//! recovery, invites, address changes) and the links their mails carry.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use tessera_core::{TicketPurpose, TicketSecret};

use crate::csrf::HttpUrl;

/// Who may create an account with `POST /signup`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Registration {
    /// Nobody: accounts are made by operators and the admin API.
    #[default]
    Closed,
    /// Only holders of an invite (`POST /admin/v1/users` with `"invite":
    /// true`, `tessera user invite`).
    Invite,
    /// Anyone with an address that receives mail.
    Open,
}

/// A registration mode other than `closed`, `invite` or `open`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("registration must be closed, invite or open")]
pub struct InvalidRegistration;

impl FromStr for Registration {
    type Err = InvalidRegistration;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "closed" => Ok(Self::Closed),
            "invite" => Ok(Self::Invite),
            "open" => Ok(Self::Open),
            _ => Err(InvalidRegistration),
        }
    }
}

/// Where the links in account mails point: `<base>/<page>?token=<ticket>`,
/// one page per purpose (`verify-email`, `reset-password`, `accept-invite`,
/// `confirm-email`). The base is `public_url` unless an app hosts the pages
/// itself (`account_pages_url`); without either, links are relative paths.
#[derive(Debug, Clone, Default)]
pub struct AccountLinks {
    base: Option<HttpUrl>,
}

impl AccountLinks {
    /// Links under `base`.
    pub fn new(base: Option<HttpUrl>) -> Self {
        Self { base }
    }

    /// The page a ticket of `purpose` is redeemed at.
    pub fn page(purpose: TicketPurpose) -> &'static str {
        match purpose {
            TicketPurpose::VerifyEmail => "verify-email",
            TicketPurpose::ResetPassword => "reset-password",
            TicketPurpose::Invite => "accept-invite",
            TicketPurpose::ChangeEmail => "confirm-email",
        }
    }

    /// The link that carries `secret` to the page for `purpose`.
    pub fn link(&self, purpose: TicketPurpose, secret: &TicketSecret) -> String {
        let page = Self::page(purpose);
        let token = secret.expose();
        match &self.base {
            Some(base) => crate::mail::link(base, page, &token),
            None => format!("/{page}?token={token}"),
        }
    }
}

/// Settings of the self-service flows: plain data, secure defaults.
#[derive(Clone)]
pub struct SelfServiceConfig {
    /// Who may sign up.
    pub registration: Registration,
    /// Refuse logins to accounts whose address is not verified (after the
    /// password checked out, so a guesser learns nothing).
    pub require_verified_email: bool,
    /// How long an address-verification link works.
    pub verification_ttl: Duration,
    /// How long a password-reset link works.
    pub reset_ttl: Duration,
    /// How long an invite works.
    pub invite_ttl: Duration,
    /// How long the link confirming a new address works.
    pub email_change_ttl: Duration,
    /// Where mailed links point.
    pub links: AccountLinks,
}

impl fmt::Debug for SelfServiceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SelfServiceConfig")
            .field("registration", &self.registration)
            .field("require_verified_email", &self.require_verified_email)
            .finish_non_exhaustive()
    }
}

impl Default for SelfServiceConfig {
    fn default() -> Self {
        Self {
            registration: Registration::Closed,
            require_verified_email: false,
            // A day: people open sign-up mails late.
            verification_ttl: Duration::from_secs(24 * 3600),
            // OWASP's forgot-password cheat sheet: short-lived.
            reset_ttl: Duration::from_secs(30 * 60),
            invite_ttl: Duration::from_secs(7 * 24 * 3600),
            email_change_ttl: Duration::from_secs(3600),
            links: AccountLinks::default(),
        }
    }
}

impl SelfServiceConfig {
    /// How long a ticket of `purpose` lives.
    pub fn ttl(&self, purpose: TicketPurpose) -> Duration {
        match purpose {
            TicketPurpose::VerifyEmail => self.verification_ttl,
            TicketPurpose::ResetPassword => self.reset_ttl,
            TicketPurpose::Invite => self.invite_ttl,
            TicketPurpose::ChangeEmail => self.email_change_ttl,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_keep_the_base_path_and_carry_the_token_as_a_query_parameter() {
        let secret = TicketSecret::generate();
        let links = AccountLinks::new(Some(
            HttpUrl::parse("https://auth.example.com/app/").unwrap(),
        ));
        assert_eq!(
            links.link(TicketPurpose::ResetPassword, &secret),
            format!(
                "https://auth.example.com/app/reset-password?token={}",
                secret.expose()
            )
        );
        let bare = AccountLinks::new(Some(HttpUrl::parse("https://auth.example.com").unwrap()));
        assert_eq!(
            bare.link(TicketPurpose::VerifyEmail, &secret),
            format!(
                "https://auth.example.com/verify-email?token={}",
                secret.expose()
            )
        );
        assert_eq!(
            AccountLinks::default().link(TicketPurpose::Invite, &secret),
            format!("/accept-invite?token={}", secret.expose())
        );
    }

    #[test]
    fn registration_modes_parse() {
        assert_eq!("open".parse(), Ok(Registration::Open));
        assert_eq!("invite".parse(), Ok(Registration::Invite));
        assert_eq!("closed".parse(), Ok(Registration::Closed));
        assert!("yes".parse::<Registration>().is_err());
    }
}
