//! Routing tags: which shard of a clustered store holds a user's records.
//!
//! A Redis Cluster can only update several keys atomically when they hash to
//! one slot, so a user's sessions, refresh families and their per-user
//! indexes share a hash tag. A store finds a session by the hash of the id the
//! client presents, so the tag must be computable from that id alone: every
//! session id and family id carries its user's [`Route`] in its first 14 bits
//! (the rest, 242 and 114 bits, stays random).
//!
//! The route is an unkeyed hash of the user id, reduced to 14 bits: it tells
//! a cookie holder which of 16,384 buckets the account falls in, nothing more
//! (the cookie holder already has the session).

use sha2::{Digest, Sha256};

use crate::user::UserId;

/// Number of bits a route takes.
pub const ROUTE_BITS: u32 = 14;
const ROUTE_MASK: u16 = (1 << ROUTE_BITS) - 1;

/// A user's bucket in a clustered store (0..16384).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Route(u16);

impl Route {
    /// The route of a user.
    pub fn of(user: UserId) -> Self {
        let digest = Sha256::new()
            .chain_update(b"tessera route\0")
            .chain_update(user.as_uuid().as_bytes())
            .finalize();
        Self(u16::from_be_bytes([digest[0], digest[1]]) & ROUTE_MASK)
    }

    /// The route stored in the first two bytes of an id.
    pub fn read(bytes: &[u8]) -> Self {
        Self(u16::from_be_bytes([bytes[0], bytes[1]]) & ROUTE_MASK)
    }

    /// Writes the route into the first two bytes of an id, keeping the top
    /// two bits of the first byte.
    pub fn stamp(self, bytes: &mut [u8]) {
        let [high, low] = self.0.to_be_bytes();
        bytes[0] = (bytes[0] & !((ROUTE_MASK >> 8) as u8)) | high;
        bytes[1] = low;
    }

    /// The bucket number.
    pub const fn get(self) -> u16 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_users_route_is_stable_and_in_range() {
        let user = UserId::generate();
        assert_eq!(Route::of(user), Route::of(user));
        assert!(Route::of(user).get() < 1 << ROUTE_BITS);
    }

    #[test]
    fn routes_spread_over_the_buckets() {
        let distinct: std::collections::HashSet<_> =
            (0..1000).map(|_| Route::of(UserId::generate())).collect();
        assert!(distinct.len() > 950, "{}", distinct.len());
    }

    proptest! {
        #[test]
        fn stamping_round_trips_and_keeps_the_other_bits(bytes in any::<[u8; 4]>(), route in 0u16..(1 << ROUTE_BITS)) {
            let mut stamped = bytes;
            Route(route).stamp(&mut stamped);
            prop_assert_eq!(Route::read(&stamped), Route(route));
            prop_assert_eq!(stamped[0] & 0xC0, bytes[0] & 0xC0);
            prop_assert_eq!(&stamped[2..], &bytes[2..]);
        }
    }
}
