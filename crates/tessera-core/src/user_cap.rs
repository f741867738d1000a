//! Bounds on what one account may pile up in the stores.

use std::num::NonZeroU32;

use thiserror::Error;

/// The most records of one kind a single user may have live at once:
/// server-side sessions (`max_sessions_per_user`, see
/// `SessionStore::create`), refresh families (`max_refresh_families_per_user`), ended sealed cookie sessions
/// (`max_sealed_revocations_per_user`). Going past it ends the user's oldest
/// in the same atomic step as the new record is stored (see
/// `TokenStore::create_family` and `TokenStore::save_sealed_revocation`), so
/// that one account cannot fill the store.
///
/// # Examples
///
/// ```
/// use tessera_core::PerUserCap;
///
/// assert_eq!(PerUserCap::new(3).unwrap().get(), 3);
/// assert!(PerUserCap::new(0).is_err());
/// assert_eq!(PerUserCap::UNBOUNDED.get(), u32::MAX);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PerUserCap(NonZeroU32);

/// A cap of 0: every new record would end itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("a per-user cap must be at least 1")]
pub struct InvalidPerUserCap;

impl PerUserCap {
    /// No practical bound (`u32::MAX`).
    pub const UNBOUNDED: Self = Self(NonZeroU32::MAX);

    /// At most `max` per user.
    ///
    /// # Errors
    ///
    /// [`InvalidPerUserCap`] if `max` is 0.
    pub fn new(max: u32) -> Result<Self, InvalidPerUserCap> {
        NonZeroU32::new(max).map(Self).ok_or(InvalidPerUserCap)
    }

    /// The most a user may have.
    pub fn get(self) -> u32 {
        self.0.get()
    }

    /// The cap as a count.
    pub fn as_usize(self) -> usize {
        usize::try_from(self.get()).unwrap_or(usize::MAX)
    }
}
