//! Mail: what a message says ([`Notice`]), to whom ([`OutgoingMail`]), and
//! the durable queue it waits in until a sender delivers it ([`Outbox`]).
//!
//! Nothing is sent on the request path: a flow enqueues an
//! [`OutgoingMail`], and a background sender claims due messages with a
//! lease (so that exactly one node sends each), renders them with the
//! templates and hands them to the transport. A message's body (its notice,
//! which may carry a single-use link, and its recipient) is erased once it
//! is sent or given up; only the metadata remains.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::store::StoreError;
use crate::user::Email;

/// What a message says. The sender renders it with the templates of its
/// [`kind`](Notice::kind) at send time. Links carry single-use tokens:
/// `Debug` never shows them.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Notice {
    /// Confirm the address of a new account.
    VerifyEmail {
        /// The verification link (carries a token).
        link: String,
    },
    /// Choose a new password.
    ResetPassword {
        /// The reset link (carries a token).
        link: String,
    },
    /// An invitation to create an account.
    Invite {
        /// The invitation link (carries a token).
        link: String,
    },
    /// Someone tried to sign up with an address that already has an account.
    AlreadyRegistered {
        /// A password-reset link (carries a token).
        reset_link: String,
    },
    /// Confirm a new address (sent to the new address).
    ConfirmEmailChange {
        /// The confirmation link (carries a token).
        link: String,
    },
    /// A change of address was requested (sent to the old address).
    EmailChangeRequested {
        /// The address the account would move to.
        new_email: Email,
    },
    /// The address was changed (sent to the old address).
    EmailChanged {
        /// The account's new address.
        new_email: Email,
    },
    /// The password was changed or reset.
    PasswordChanged,
    /// The account was deleted.
    AccountDeleted,
}

impl Notice {
    /// Every kind, in declaration order (for template checks and docs).
    pub const KINDS: [&'static str; 9] = [
        "verify_email",
        "reset_password",
        "invite",
        "already_registered",
        "confirm_email_change",
        "email_change_requested",
        "email_changed",
        "password_changed",
        "account_deleted",
    ];

    /// The kind, `snake_case` (`verify_email`, ...): the template name and
    /// what the outbox keeps after the body is erased.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::VerifyEmail { .. } => "verify_email",
            Self::ResetPassword { .. } => "reset_password",
            Self::Invite { .. } => "invite",
            Self::AlreadyRegistered { .. } => "already_registered",
            Self::ConfirmEmailChange { .. } => "confirm_email_change",
            Self::EmailChangeRequested { .. } => "email_change_requested",
            Self::EmailChanged { .. } => "email_changed",
            Self::PasswordChanged => "password_changed",
            Self::AccountDeleted => "account_deleted",
        }
    }

    /// The link the message carries, if any.
    pub fn link(&self) -> Option<&str> {
        match self {
            Self::VerifyEmail { link }
            | Self::ResetPassword { link }
            | Self::Invite { link }
            | Self::ConfirmEmailChange { link }
            | Self::AlreadyRegistered { reset_link: link } => Some(link),
            Self::EmailChangeRequested { .. }
            | Self::EmailChanged { .. }
            | Self::PasswordChanged
            | Self::AccountDeleted => None,
        }
    }

    /// The address the notice names (the new one, for a change), if any.
    pub fn new_email(&self) -> Option<&Email> {
        match self {
            Self::EmailChangeRequested { new_email } | Self::EmailChanged { new_email } => {
                Some(new_email)
            }
            _ => None,
        }
    }
}

impl std::fmt::Debug for Notice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = f.debug_struct("Notice");
        s.field("kind", &self.kind());
        if self.link().is_some() {
            s.field("link", &"<redacted>");
        }
        if let Some(email) = self.new_email() {
            s.field("new_email", email);
        }
        s.finish()
    }
}

/// A message to send: to whom, and what it says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutgoingMail {
    /// The recipient.
    pub to: Email,
    /// What it says.
    pub notice: Notice,
}

/// Names one message in an outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(pub i64);

impl std::fmt::Display for MessageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Proof of a claim: random, chosen by the claimer. Only the holder of the
/// current claim may mark a message sent or failed, so a sender whose lease
/// ran out (and whose message another sender then claimed) changes nothing.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClaimToken(i64);

impl ClaimToken {
    /// A fresh random token.
    pub fn random() -> Self {
        let mut bytes = [0u8; 8];
        // Without system randomness, fall back to the clock: a token only
        // has to differ from the previous claimer's.
        if getrandom::fill(&mut bytes).is_err() {
            bytes = Timestamp::now().unix_millis().to_le_bytes();
        }
        Self(i64::from_le_bytes(bytes))
    }

    /// From its stored form.
    pub const fn from_i64(value: i64) -> Self {
        Self(value)
    }

    /// Its stored form.
    pub const fn as_i64(self) -> i64 {
        self.0
    }
}

impl std::fmt::Debug for ClaimToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClaimToken(..)")
    }
}

/// A message a sender claimed: it alone may send it until `lease_until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedMail {
    /// Which message.
    pub id: MessageId,
    /// The claim, to hand back to `mark_sent` / `mark_failed`.
    pub token: ClaimToken,
    /// The message.
    pub mail: OutgoingMail,
    /// Attempts so far, this one included (1 on the first claim).
    pub attempts: u32,
    /// When it was enqueued.
    pub enqueued_at: Timestamp,
    /// Until when the claim holds; after that another sender may claim it.
    pub lease_until: Timestamp,
}

/// What to do with a message whose attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Try again at this time.
    At(Timestamp),
    /// Stop trying: the message is undeliverable.
    GiveUp,
}

/// How many messages an outbox holds, by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxStats {
    /// Waiting to be sent (due or not yet, claimed or not).
    pub pending: u64,
    /// Given up: never delivered (their metadata is kept until purged).
    pub undeliverable: u64,
}

/// Where a message is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageState {
    /// Waiting to be sent (or being sent under a claim).
    Pending,
    /// Delivered to the transport.
    Sent,
    /// Given up.
    Undeliverable,
}

impl MessageState {
    /// Its stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sent => "sent",
            Self::Undeliverable => "undeliverable",
        }
    }

    /// From its stored name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "pending" => Some(Self::Pending),
            "sent" => Some(Self::Sent),
            "undeliverable" => Some(Self::Undeliverable),
            _ => None,
        }
    }
}

/// One message as the outbox holds it (for inspection and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRecord {
    /// Which message.
    pub id: MessageId,
    /// Its notice's kind (kept after the body is erased).
    pub kind: String,
    /// The message, while pending; `None` once sent or given up.
    pub mail: Option<OutgoingMail>,
    /// Where it is.
    pub state: MessageState,
    /// Attempts so far.
    pub attempts: u32,
    /// When it was enqueued.
    pub enqueued_at: Timestamp,
    /// When it is next due (pending messages).
    pub next_attempt_at: Timestamp,
    /// When it was sent or given up.
    pub finished_at: Option<Timestamp>,
    /// Why the last attempt failed, if it did.
    pub last_error: Option<String>,
}

/// Longest `last_error` an outbox keeps, in bytes.
pub const MAX_ERROR_LEN: usize = 500;

/// Cuts an error text to [`MAX_ERROR_LEN`] bytes (at a character boundary).
pub fn truncate_error(error: &str) -> &str {
    if error.len() <= MAX_ERROR_LEN {
        return error;
    }
    let mut end = MAX_ERROR_LEN;
    while !error.is_char_boundary(end) {
        end -= 1;
    }
    &error[..end]
}

/// The durable queue of outgoing mail (the user store holds it: SQLite or
/// PostgreSQL; process memory for the memory store).
///
/// Contract, checked by the conformance suite:
/// - `enqueue` is durable when it returns `Ok`; the message is due at once.
/// - `claim` hands out only due, pending messages that no live claim holds,
///   and takes a claim on each until `now + lease`: two concurrent claimers
///   (on any nodes) never get the same message while the lease holds.
///   Every claim counts as an attempt.
/// - `mark_sent` / `mark_failed` change a message only for the holder of
///   its current claim (`ClaimedMail::token`), and return whether they did.
/// - A message sent or given up keeps no body: its notice (with any link)
///   and its recipient are erased; kind, times, attempts and the last error
///   remain until `purge`.
#[async_trait]
pub trait Outbox: Send + Sync + 'static {
    /// Queues a message, due at once.
    async fn enqueue(&self, mail: &OutgoingMail, now: Timestamp) -> Result<(), StoreError>;

    /// Claims up to `limit` due messages (oldest due first) until
    /// `now + lease`, each with this claim token.
    async fn claim(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: usize,
        token: ClaimToken,
    ) -> Result<Vec<ClaimedMail>, StoreError>;

    /// Records a delivery and erases the body. `false` when the claim is no
    /// longer the message's current one.
    async fn mark_sent(
        &self,
        id: MessageId,
        token: ClaimToken,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Records a failed attempt (`error` must hold no secret; it is cut to
    /// [`MAX_ERROR_LEN`] bytes) and either schedules the next one or gives up
    /// (erasing the body). `false` when the claim is no longer current.
    async fn mark_failed(
        &self,
        id: MessageId,
        token: ClaimToken,
        error: &str,
        retry: Retry,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Pending and undeliverable counts.
    async fn stats(&self) -> Result<OutboxStats, StoreError>;

    /// When the earliest pending message is next due (or its claim ends),
    /// if any: how long the sender may sleep.
    async fn next_due(&self) -> Result<Option<Timestamp>, StoreError>;

    /// One message, as stored (for inspection and tests).
    async fn record(&self, id: MessageId) -> Result<Option<OutboxRecord>, StoreError>;

    /// Deletes the metadata of messages sent or given up before `before`.
    /// Returns how many were deleted.
    async fn purge(&self, before: Timestamp) -> Result<u64, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(s: &str) -> Email {
        Email::parse(s).unwrap()
    }

    #[test]
    fn debug_redacts_links() {
        let notice = Notice::ResetPassword {
            link: "https://a.example/reset?token=SECRET".into(),
        };
        let mail = OutgoingMail {
            to: email("a@b.c"),
            notice,
        };
        let text = format!("{mail:?}");
        assert!(!text.contains("SECRET"), "{text}");
        assert!(text.contains("reset_password"), "{text}");
        let already = Notice::AlreadyRegistered {
            reset_link: "https://x/?token=SECRET".into(),
        };
        assert!(!format!("{already:?}").contains("SECRET"));
    }

    #[test]
    fn round_trips_as_tagged_json() {
        let all = [
            Notice::VerifyEmail { link: "l".into() },
            Notice::ResetPassword { link: "l".into() },
            Notice::Invite { link: "l".into() },
            Notice::AlreadyRegistered {
                reset_link: "l".into(),
            },
            Notice::ConfirmEmailChange { link: "l".into() },
            Notice::EmailChangeRequested {
                new_email: email("n@b.c"),
            },
            Notice::EmailChanged {
                new_email: email("n@b.c"),
            },
            Notice::PasswordChanged,
            Notice::AccountDeleted,
        ];
        for (notice, kind) in all.iter().zip(Notice::KINDS) {
            assert_eq!(notice.kind(), kind);
            let json = serde_json::to_value(notice).unwrap();
            assert_eq!(json["kind"], kind);
            let back: Notice = serde_json::from_value(json).unwrap();
            assert_eq!(&back, notice);
        }
    }

    #[test]
    fn errors_are_cut_at_a_char_boundary() {
        let long = "é".repeat(400);
        let cut = truncate_error(&long);
        assert!(cut.len() <= MAX_ERROR_LEN);
        assert!(long.starts_with(cut));
    }
}
