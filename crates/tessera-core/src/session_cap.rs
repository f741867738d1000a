//! How many live server-side sessions one user may have.

use std::num::NonZeroU32;

use thiserror::Error;

/// The most live server-side sessions one user may have at once (setting
/// `max_sessions_per_user`). A login that would pass it ends the user's
/// oldest sessions, in the same atomic step as it stores the new one (see
/// `SessionStore::create`), so one account cannot pile up unbounded state.
///
/// The default is 100: more devices and browsers than a person uses, and
/// half of what Auth0 keeps per user and application (200 refresh tokens).
///
/// # Examples
///
/// ```
/// use tessera_core::SessionCap;
///
/// assert_eq!(SessionCap::new(3).unwrap().get(), 3);
/// assert!(SessionCap::new(0).is_err());
/// assert_eq!(SessionCap::default().get(), 100);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionCap(NonZeroU32);

/// A cap that would allow no session at all (every login would end itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("the sessions per user must be at least 1")]
pub struct InvalidSessionCap;

impl SessionCap {
    /// At most `max` live sessions per user.
    ///
    /// # Errors
    ///
    /// [`InvalidSessionCap`] if `max` is 0.
    pub fn new(max: u32) -> Result<Self, InvalidSessionCap> {
        NonZeroU32::new(max).map(Self).ok_or(InvalidSessionCap)
    }

    /// The most live sessions a user may have.
    pub fn get(self) -> u32 {
        self.0.get()
    }
}

impl Default for SessionCap {
    /// 100 sessions per user.
    fn default() -> Self {
        Self::new(100).expect("the default is valid")
    }
}

impl From<NonZeroU32> for SessionCap {
    fn from(max: NonZeroU32) -> Self {
        Self(max)
    }
}
