//! Session identifiers: the secret a client holds, the hash a store keeps, and
//! the public handle a user sees when listing their sessions.
//!
//! The secret ([`SessionId`]) is 256 bits from the operating system's CSPRNG,
//! encoded as unpadded base64url. A store never sees it: it keys sessions by
//! [`SessionIdHash`] (SHA-256 of the secret), so a copy of the database does
//! not yield a working cookie. Because lookups go by hash, an attacker timing
//! them learns about hashes they cannot steer, not about the secret.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use thiserror::Error;

use crate::family::ChainKey;
use crate::route::Route;

/// Number of random bytes in a session id (256 bits).
pub const SESSION_ID_BYTES: usize = 32;
/// Length of an encoded session id: unpadded base64url of 32 bytes.
pub const SESSION_ID_LEN: usize = 43;

/// Fills `buf` from the operating system's CSPRNG.
///
/// # Panics
///
/// Panics if the operating system cannot provide randomness: continuing with
/// predictable identifiers would be worse than stopping.
pub fn fill_random(buf: &mut [u8]) {
    getrandom::fill(buf).expect("the operating system's random number generator failed");
}

/// A session id could not be parsed: wrong length or not canonical base64url.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("malformed session id")]
pub struct MalformedSessionId;

/// The secret session identifier a client presents (in a cookie).
///
/// Its `Debug` output is redacted; [`SessionId::expose`] is the only way to
/// read the encoded secret, and it exists for writing the cookie.
#[derive(Clone)]
pub struct SessionId([u8; SESSION_ID_BYTES]);

impl SessionId {
    /// A fresh id from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let mut bytes = [0u8; SESSION_ID_BYTES];
        fill_random(&mut bytes);
        Self(bytes)
    }

    /// Parses the encoded form, accepting only exactly what [`SessionId::expose`]
    /// produces: 43 characters of canonical unpadded base64url.
    ///
    /// # Errors
    ///
    /// [`MalformedSessionId`] for any other input.
    pub fn parse(encoded: &str) -> Result<Self, MalformedSessionId> {
        if encoded.len() != SESSION_ID_LEN {
            return Err(MalformedSessionId);
        }
        let mut bytes = [0u8; SESSION_ID_BYTES];
        match URL_SAFE_NO_PAD.decode_slice(encoded, &mut bytes) {
            Ok(SESSION_ID_BYTES) => Ok(Self(bytes)),
            _ => Err(MalformedSessionId),
        }
    }

    /// The encoded secret, for the `Set-Cookie` header. Never log it.
    pub fn expose(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    /// A fresh id carrying its user's [`Route`] in the first 14 bits (the
    /// other 242 bits from the operating system's CSPRNG).
    pub fn generate_for(route: Route) -> Self {
        let mut id = Self::generate();
        route.stamp(&mut id.0);
        id
    }

    /// The id that replaces this one when the session's id is rotated:
    /// `HMAC-SHA256(key, label ‖ id)` with `route` (the user's) stamped into
    /// its first 14 bits, like every session id.
    ///
    /// Deterministic, so that any node holding the same [`RotationKey`] can
    /// tell that a presented predecessor leads to a given successor, and
    /// hand out that successor again, although stores keep only hashes.
    /// Without the key, knowing an id tells nothing about its successor.
    pub fn successor(&self, key: &RotationKey, route: Route) -> Self {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key.0).expect("any key length");
        mac.update(SUCCESSOR_LABEL);
        mac.update(&self.0);
        let mut bytes: [u8; SESSION_ID_BYTES] = mac.finalize().into_bytes().into();
        route.stamp(&mut bytes);
        Self(bytes)
    }

    /// The hash under which stores keep this session: SHA-256 of the id,
    /// with the id's route copied into its first 14 bits so that a clustered
    /// store can place it with the user's other records.
    pub fn hash(&self) -> SessionIdHash {
        let mut hash: [u8; 32] = Sha256::digest(self.0).into();
        Route::read(&self.0).stamp(&mut hash);
        SessionIdHash(hash)
    }
}

impl PartialEq for SessionId {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for SessionId {}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionId(<redacted>)")
    }
}

/// Domain label of the successor derivation.
const SUCCESSOR_LABEL: &[u8] = b"tessera session id successor v1\0";
/// Domain label of the rotation key's derivation from the chain key.
const ROTATION_KEY_LABEL: &[u8] = b"tessera session id rotation key v1\0";

/// The server secret that derives session id successors
/// ([`SessionId::successor`]). `Debug` is redacted.
///
/// It is derived from the refresh-token [`ChainKey`] under a label of its
/// own, so every node of a cluster (which already shares the chain key)
/// derives the same successors and no key file is added, while neither
/// derivation's output can stand in for the other's.
#[derive(Clone)]
pub struct RotationKey([u8; 32]);

impl RotationKey {
    /// `HMAC-SHA256(chain key, label)`.
    pub fn derive(chain: &ChainKey) -> Self {
        let mut mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(chain.as_bytes()).expect("any key length");
        mac.update(ROTATION_KEY_LABEL);
        Self(mac.finalize().into_bytes().into())
    }
}

impl fmt::Debug for RotationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RotationKey(<redacted>)")
    }
}

/// SHA-256 of a [`SessionId`]: the key a store keeps a session under.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionIdHash([u8; 32]);

impl SessionIdHash {
    /// Wraps hash bytes read back from a store.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw hash bytes, for storing.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The route of the session's user (see [`Route`]).
    pub fn route(&self) -> Route {
        Route::read(&self.0)
    }

    /// Lower-case hex, for stores that key by text (e.g. Redis).
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for SessionIdHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not a secret, but there is no reason to spread it through logs.
        write!(f, "SessionIdHash({:02x}{:02x}…)", self.0[0], self.0[1])
    }
}

/// An opaque, non-secret name for a session, shown in `GET /sessions` and used
/// by `DELETE /sessions/{handle}`. Knowing it does not let anyone use the session.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct SessionHandle(String);

impl SessionHandle {
    /// A fresh random handle (128 bits, base64url).
    pub fn generate() -> Self {
        let mut bytes = [0u8; 16];
        fill_random(&mut bytes);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Wraps a handle read back from a store or a URL.
    pub fn new(handle: impl Into<String>) -> Self {
        Self(handle.into())
    }

    /// The handle as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn generated_ids_are_distinct_and_round_trip() {
        let a = SessionId::generate();
        let b = SessionId::generate();
        assert_ne!(a, b);
        let encoded = a.expose();
        assert_eq!(encoded.len(), SESSION_ID_LEN);
        assert_eq!(SessionId::parse(&encoded).unwrap(), a);
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let id = SessionId::generate();
        let shown = format!("{id:?}");
        assert!(!shown.contains(&id.expose()));
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn rejects_padding_and_standard_alphabet() {
        let id = SessionId::generate().expose();
        assert!(SessionId::parse(&format!("{id}=")).is_err());
        let standard = id.replace('-', "+").replace('_', "/");
        if standard != id {
            assert!(SessionId::parse(&standard).is_err());
        }
    }

    #[test]
    fn ids_for_a_user_carry_its_route_into_the_hash() {
        let route = Route::of(crate::UserId::generate());
        let a = SessionId::generate_for(route);
        let b = SessionId::generate_for(route);
        assert_ne!(a, b);
        assert_eq!(a.hash().route(), route);
        assert_eq!(b.hash().route(), route);
        assert_ne!(a.hash(), b.hash());
    }

    #[test]
    fn successors_are_deterministic_keep_the_route_and_depend_on_key_and_id() {
        let route = Route::of(crate::UserId::generate());
        let key = RotationKey::derive(&ChainKey::generate());
        let id = SessionId::generate_for(route);
        let next = id.successor(&key, route);
        assert_eq!(next, id.successor(&key, route), "deterministic");
        assert_eq!(next, id.clone().successor(&key.clone(), route));
        assert_ne!(next, id, "not the input");
        assert_ne!(next.hash(), id.hash());
        assert_eq!(Route::read(&next.0), route, "keeps the route");
        assert_eq!(next.hash().route(), route);
        let other_key = RotationKey::derive(&ChainKey::generate());
        assert_ne!(next, id.successor(&other_key, route), "differs per key");
        let other_id = SessionId::generate_for(route);
        assert_ne!(next, other_id.successor(&key, route), "differs per id");
        assert_ne!(next.successor(&key, route), next, "a chain moves on");
        assert_ne!(next.successor(&key, route), id);
    }

    #[test]
    fn the_rotation_key_is_derived_from_the_chain_key_under_its_own_label() {
        let chain = ChainKey::new([7; 32]);
        let a = RotationKey::derive(&chain);
        assert_eq!(a.0, RotationKey::derive(&ChainKey::new([7; 32])).0);
        assert_ne!(a.0, RotationKey::derive(&ChainKey::new([8; 32])).0);
        assert_ne!(&a.0, chain.as_bytes(), "not the chain key itself");
        let shown = format!("{a:?}");
        assert!(shown.contains("redacted"), "{shown}");
    }

    #[test]
    fn hash_differs_from_secret_and_is_stable() {
        let id = SessionId::generate();
        assert_eq!(id.hash(), id.clone().hash());
        assert_ne!(id.hash().as_bytes(), &id.0);
        assert_eq!(id.hash().to_hex().len(), 64);
    }

    proptest! {
        #[test]
        fn any_bytes_round_trip(bytes in any::<[u8; 32]>()) {
            let id = SessionId(bytes);
            let parsed = SessionId::parse(&id.expose()).unwrap();
            prop_assert_eq!(parsed.0, bytes);
        }

        #[test]
        fn parse_never_panics_and_only_accepts_canonical_text(text in ".{0,64}") {
            if let Ok(id) = SessionId::parse(&text) {
                prop_assert_eq!(id.expose(), text);
            }
        }

        #[test]
        fn non_canonical_trailing_bits_are_rejected(bytes in any::<[u8; 32]>(), flip in 1u8..4) {
            // The last character carries 4 data bits and 2 zero bits; setting
            // any of the zero bits yields a different text for the same bytes.
            let encoded = SessionId(bytes).expose();
            let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            let last = *encoded.as_bytes().last().unwrap();
            let index = alphabet.iter().position(|&c| c == last).unwrap();
            let tampered_index = (index & !0b11) | usize::from(flip);
            let mut tampered = encoded.into_bytes();
            *tampered.last_mut().unwrap() = alphabet[tampered_index];
            let tampered = String::from_utf8(tampered).unwrap();
            prop_assert!(SessionId::parse(&tampered).is_err());
        }
    }
}
