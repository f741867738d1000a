//! Tickets: single-use secrets mailed as links, each good for one account
//! action (verify an address, reset a password, accept an invite, confirm a
//! new address).
//!
//! The secret ([`TicketSecret`]) is 256 bits from the operating system's
//! CSPRNG, encoded as unpadded base64url; a store keeps only its SHA-256
//! ([`TicketHash`]), so a copy of the database yields no working link. A
//! ticket is redeemed by deleting it in one atomic step that also checks its
//! purpose ([`TicketStore::redeem_ticket`]): of any number of concurrent
//! redemptions exactly one gets it, and a ticket made for one purpose is
//! never accepted for another.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::clock::Timestamp;
use crate::secret::fill_random;
use crate::store::StoreError;
use crate::user::{Email, Role, UserId};

const SECRET_BYTES: usize = 32;
const SECRET_LEN: usize = 43;

/// What a ticket lets its holder do, once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TicketPurpose {
    /// Prove that the user receives mail at [`Ticket::email`].
    VerifyEmail,
    /// Set a new password for [`Ticket::user`].
    ResetPassword,
    /// Create an account for [`Ticket::email`] with [`Ticket::roles`].
    Invite,
    /// Move [`Ticket::user`] to the new address [`Ticket::email`].
    ChangeEmail,
}

impl TicketPurpose {
    /// Every purpose.
    pub const ALL: [Self; 4] = [
        Self::VerifyEmail,
        Self::ResetPassword,
        Self::Invite,
        Self::ChangeEmail,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::ResetPassword => "reset_password",
            Self::Invite => "invite",
            Self::ChangeEmail => "change_email",
        }
    }
}

/// A stored purpose name this version does not know.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown ticket purpose")]
pub struct UnknownPurpose;

impl FromStr for TicketPurpose {
    type Err = UnknownPurpose;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or(UnknownPurpose)
    }
}

/// A presented ticket is not of the form this system hands out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("malformed ticket")]
pub struct MalformedTicket;

/// The secret a link carries. `Debug` is redacted; [`TicketSecret::expose`]
/// is the only way to read it, for building the link.
#[derive(Clone)]
pub struct TicketSecret([u8; SECRET_BYTES]);

impl TicketSecret {
    /// A fresh secret from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let mut bytes = [0u8; SECRET_BYTES];
        fill_random(&mut bytes);
        Self(bytes)
    }

    /// Parses exactly what [`TicketSecret::expose`] produces: 43 characters
    /// of canonical unpadded base64url.
    ///
    /// # Errors
    ///
    /// [`MalformedTicket`] for anything else (truncated, padded, too long).
    pub fn parse(encoded: &str) -> Result<Self, MalformedTicket> {
        if encoded.len() != SECRET_LEN {
            return Err(MalformedTicket);
        }
        let mut bytes = [0u8; SECRET_BYTES];
        match URL_SAFE_NO_PAD.decode_slice(encoded, &mut bytes) {
            Ok(SECRET_BYTES) => Ok(Self(bytes)),
            _ => Err(MalformedTicket),
        }
    }

    /// The encoded secret, for the link. Never log it.
    pub fn expose(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    /// The form a store keeps.
    pub fn hash(&self) -> TicketHash {
        TicketHash(Sha256::digest(self.0).into())
    }
}

impl fmt::Debug for TicketSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TicketSecret(<redacted>)")
    }
}

/// SHA-256 of a [`TicketSecret`]: the only form a store sees. Lookups go by
/// it, so their timing says nothing about secrets an attacker cannot steer.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TicketHash([u8; 32]);

impl TicketHash {
    /// Wraps bytes read back from a store.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for TicketHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TicketHash({:02x}{:02x}…)", self.0[0], self.0[1])
    }
}

/// A ticket as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    /// SHA-256 of the secret.
    pub hash: TicketHash,
    /// What it is good for.
    pub purpose: TicketPurpose,
    /// The account it acts on (none for an invite: the account does not
    /// exist yet).
    pub user: Option<UserId>,
    /// The address it was mailed to: the one to verify, the invitee's, the
    /// new address of a change, the account's at the time of a reset.
    pub email: Email,
    /// Roles an invite grants; empty for other purposes.
    pub roles: Vec<Role>,
    /// When it was issued.
    pub created_at: Timestamp,
    /// When it stops being accepted.
    pub expires_at: Timestamp,
}

impl Ticket {
    /// A fresh ticket and the secret to mail; the ticket holds only the
    /// secret's hash.
    pub fn issue(
        purpose: TicketPurpose,
        user: Option<UserId>,
        email: Email,
        roles: Vec<Role>,
        now: Timestamp,
        lifetime: std::time::Duration,
    ) -> (TicketSecret, Self) {
        let secret = TicketSecret::generate();
        let ticket = Self {
            hash: secret.hash(),
            purpose,
            user,
            email,
            roles,
            created_at: now,
            expires_at: now.plus(lifetime),
        };
        (secret, ticket)
    }
}

/// Where tickets live (beside the users: SQLite or PostgreSQL).
#[async_trait]
pub trait TicketStore: Send + Sync + 'static {
    /// Stores a new ticket.
    ///
    /// # Errors
    ///
    /// [`StoreError::Conflict`] if a ticket has this hash (it never does,
    /// the secret is random), else backend errors.
    async fn create_ticket(&self, ticket: &Ticket) -> Result<(), StoreError>;

    /// Takes the ticket with this hash if it is for `purpose` and has not
    /// expired at `now`: it is deleted in the same atomic step, so of any
    /// number of concurrent calls at most one gets it. A ticket for another
    /// purpose is left as it is; an expired one is deleted and not returned.
    async fn redeem_ticket(
        &self,
        hash: &TicketHash,
        purpose: TicketPurpose,
        now: Timestamp,
    ) -> Result<Option<Ticket>, StoreError>;

    /// Deletes the user's tickets for `purpose` (the links already mailed
    /// stop working). Returns how many.
    async fn revoke_tickets(&self, user: UserId, purpose: TicketPurpose)
    -> Result<u64, StoreError>;

    /// Deletes tickets expired at `now`. Returns how many.
    async fn purge_expired_tickets(&self, now: Timestamp) -> Result<u64, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_round_trip_and_only_canonical_text_parses() {
        let secret = TicketSecret::generate();
        let text = secret.expose();
        assert_eq!(text.len(), SECRET_LEN);
        assert_eq!(TicketSecret::parse(&text).unwrap().hash(), secret.hash());
        assert!(TicketSecret::parse(&text[..42]).is_err());
        assert!(TicketSecret::parse(&format!("{text}=")).is_err());
        assert!(TicketSecret::parse(&format!("{}+", &text[..42])).is_err());
        assert!(TicketSecret::parse("").is_err());
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let secret = TicketSecret::generate();
        assert!(!format!("{secret:?}").contains(&secret.expose()));
        let (_, ticket) = Ticket::issue(
            TicketPurpose::ResetPassword,
            Some(UserId::generate()),
            Email::parse("a@example.com").unwrap(),
            Vec::new(),
            Timestamp::now(),
            std::time::Duration::from_secs(60),
        );
        assert!(!format!("{ticket:?}").contains(&secret.expose()));
    }

    #[test]
    fn purposes_round_trip_through_their_names() {
        for purpose in TicketPurpose::ALL {
            assert_eq!(purpose.as_str().parse::<TicketPurpose>(), Ok(purpose));
        }
        assert!("reset".parse::<TicketPurpose>().is_err());
    }
}
