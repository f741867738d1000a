//! The domain of tessera: who a user is, what a session is, how passwords are
//! checked, and the contracts every storage backend must honour.
//!
//! This crate knows no HTTP and performs no network or file I/O. Backends live
//! in `tessera-store`; the server lives in `tessera`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod apikey;
pub mod audit;
pub mod clock;
pub mod device;
pub mod family;
pub mod mail;
pub mod merge;
pub mod password;
pub mod route;
pub mod secret;
pub mod session;
pub mod store;
pub mod ticket;
pub mod user;
pub mod user_cap;

pub use apikey::{ApiKey, ApiKeyId, ApiKeyToken, InvalidApiKey};
pub use audit::{
    Actor, AuditEvent, AuditId, AuditKind, AuditOrder, AuditPage, AuditQuery, AuditRecord,
};
pub use clock::Timestamp;
pub use device::{DeviceId, DeviceKey};
pub use family::{ChainKey, FamilyId, Presented, RefreshToken, TokenFamily};
pub use mail::{
    ClaimToken, ClaimedMail, MessageId, MessageState, Notice, Outbox, OutboxRecord, OutboxStats,
    OutgoingMail, Retry,
};
pub use password::{
    InvalidPasswordPolicy, Password, PasswordHash, PasswordHasher, PasswordPolicy, Verification,
    WeakPassword,
};
pub use route::Route;
pub use secret::{RotationKey, SessionHandle, SessionId, SessionIdHash};
pub use session::{Session, SessionMeta, SessionPolicy, UserCopy};
pub use store::SealedRevocation;
pub use store::{
    ApiKeyStore, BucketRule, CacheStats, InvalidBucketRule, Revocation, SessionStore, StoreError,
    ThrottleStore, TokenStore, UserStore,
};
pub use ticket::{Ticket, TicketHash, TicketPurpose, TicketSecret, TicketStore};
pub use user::{
    AddressCollision, Email, NewUser, Renormalisation, Role, StoredAddress, User, UserCursor,
    UserId, UserPage, UserQuery, renormalise,
};
pub use user_cap::{InvalidPerUserCap, PerUserCap};
