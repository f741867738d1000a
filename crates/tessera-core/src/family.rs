//! Refresh-token families: the server-side state behind stateless access
//! tokens.
//!
//! A family is one login through `POST /token`. Its refresh token rotates on
//! every use; the family records which token is current (by hash only), which
//! one came just before (for the grace window) and how many rotations there
//! have been. Access tokens carry the family id as `sid`, so revoking a
//! family (logout, reuse detected) reaches them too, through the revocation
//! list.
//!
//! Refresh token text: base64url(family id ‖ secret), 16 + 32 bytes. The first
//! secret is random; each successor is HMAC-SHA256(chain key, family id ‖
//! previous secret). That lets the server (a) hand out the same successor
//! again within the grace window without storing it, and (b) recognise an
//! older token of the family by walking the chain forward, so reuse revokes
//! the family while a forged token (which never reaches the current hash) is
//! merely refused.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::clock::Timestamp;
use crate::route::Route;
use crate::secret::fill_random;
use crate::user::{Email, Role, UserId};

/// Identifier of a token family (public: access tokens carry it as `sid`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FamilyId(String);

impl FamilyId {
    /// A fresh random id (128 bits).
    pub fn generate() -> Self {
        let mut bytes = [0u8; 16];
        fill_random(&mut bytes);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// A fresh id carrying its user's [`Route`] (the other 114 bits random).
    pub fn generate_for(route: Route) -> Self {
        let mut bytes = [0u8; 16];
        fill_random(&mut bytes);
        route.stamp(&mut bytes);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The route of the family's user, if the id is well-formed.
    pub fn route(&self) -> Option<Route> {
        self.bytes().map(|b| Route::read(&b))
    }

    /// Wraps an id read from a store or a token.
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn bytes(&self) -> Option<[u8; 16]> {
        URL_SAFE_NO_PAD.decode(&self.0).ok()?.try_into().ok()
    }
}

impl fmt::Display for FamilyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A refresh token as the client holds it. `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshToken {
    family: [u8; 16],
    secret: [u8; 32],
}

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshToken(<redacted>)")
    }
}

/// Text that is not a refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed refresh token")]
pub struct MalformedRefreshToken;

impl RefreshToken {
    /// The first token of a new family.
    pub fn first(family: &FamilyId) -> Self {
        let mut secret = [0u8; 32];
        fill_random(&mut secret);
        Self {
            family: family.bytes().expect("generated family ids are 16 bytes"),
            secret,
        }
    }

    /// Parses the client's text (exactly 64 canonical base64url characters).
    ///
    /// # Errors
    ///
    /// [`MalformedRefreshToken`].
    pub fn parse(text: &str) -> Result<Self, MalformedRefreshToken> {
        if text.len() != 64 {
            return Err(MalformedRefreshToken);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| MalformedRefreshToken)?;
        let bytes: [u8; 48] = bytes.try_into().map_err(|_| MalformedRefreshToken)?;
        let (family, secret) = bytes.split_at(16);
        Ok(Self {
            family: family.try_into().expect("16 bytes"),
            secret: secret.try_into().expect("32 bytes"),
        })
    }

    /// The text to hand to the client. Never log it.
    pub fn expose(&self) -> String {
        let mut bytes = [0u8; 48];
        bytes[..16].copy_from_slice(&self.family);
        bytes[16..].copy_from_slice(&self.secret);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The family this token belongs to.
    pub fn family(&self) -> FamilyId {
        FamilyId(URL_SAFE_NO_PAD.encode(self.family))
    }

    /// The hash stores keep.
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.secret).into()
    }

    /// The successor in the family's chain.
    pub fn successor(&self, chain_key: &ChainKey) -> Self {
        let mut mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(&chain_key.0).expect("any key length");
        mac.update(&self.family);
        mac.update(&self.secret);
        Self {
            family: self.family,
            secret: mac.finalize().into_bytes().into(),
        }
    }
}

/// The server secret that derives successors. `Debug` is redacted.
#[derive(Clone)]
pub struct ChainKey([u8; 32]);

impl fmt::Debug for ChainKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChainKey(<redacted>)")
    }
}

impl ChainKey {
    /// Wraps 32 secret bytes.
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A fresh random key.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        fill_random(&mut bytes);
        Self(bytes)
    }

    /// The key bytes, for storing.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// A refresh-token family as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenFamily {
    /// Family id (the access tokens' `sid`).
    pub id: FamilyId,
    /// Whose tokens these are.
    pub user_id: UserId,
    /// The user's e-mail at login.
    pub email: Email,
    /// The user's roles at login (re-read from the user on refresh).
    pub roles: Vec<Role>,
    /// Login time.
    pub created_at: Timestamp,
    /// End of the family's absolute lifetime: refresh never extends it.
    pub expires_at: Timestamp,
    /// Number of rotations so far.
    pub generation: u32,
    /// Hash of the current refresh token.
    pub current_hash: [u8; 32],
    /// Hash of the token it replaced, accepted during the grace window.
    pub previous_hash: Option<[u8; 32]>,
    /// When the last rotation happened.
    pub rotated_at: Timestamp,
}

/// What presenting a refresh token to its family means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presented {
    /// The current token: rotate to its successor.
    Current,
    /// The token just replaced, within the grace window: hand out the same
    /// successor again (several tabs refreshing at once).
    PreviousInGrace,
    /// A token this family issued earlier: someone replayed a rotated token.
    /// Revoke the family.
    Reused,
    /// Not a token of this family (forged, or a family that moved on past
    /// the walk limit): refuse, change nothing.
    Unknown,
}

/// How far back a presented token is traced before it counts as unknown.
pub const MAX_CHAIN_WALK: u32 = 10_000;

impl TokenFamily {
    /// Classifies a presented token. `grace` is the window after a rotation in
    /// which the previous token still yields the current successor.
    pub fn classify(
        &self,
        token: &RefreshToken,
        chain_key: &ChainKey,
        now: Timestamp,
        grace: std::time::Duration,
    ) -> Presented {
        let hash = token.hash();
        if bool::from(hash.ct_eq(&self.current_hash)) {
            return Presented::Current;
        }
        if let Some(previous) = &self.previous_hash
            && bool::from(hash.ct_eq(previous))
        {
            return if now.since(self.rotated_at) <= grace {
                Presented::PreviousInGrace
            } else {
                Presented::Reused
            };
        }
        // An older token reaches the current one by following the chain.
        let mut walker = token.clone();
        for _ in 0..self.generation.min(MAX_CHAIN_WALK) {
            walker = walker.successor(chain_key);
            if bool::from(walker.hash().ct_eq(&self.current_hash)) {
                return Presented::Reused;
            }
        }
        Presented::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn family(first: &RefreshToken, id: FamilyId, now: Timestamp) -> TokenFamily {
        TokenFamily {
            id,
            user_id: UserId::generate(),
            email: Email::parse("a@example.com").unwrap(),
            roles: vec![],
            created_at: now,
            expires_at: now.plus(Duration::from_secs(3600)),
            generation: 0,
            current_hash: first.hash(),
            previous_hash: None,
            rotated_at: now,
        }
    }

    fn rotate(
        f: &mut TokenFamily,
        current: &RefreshToken,
        key: &ChainKey,
        now: Timestamp,
    ) -> RefreshToken {
        let next = current.successor(key);
        f.previous_hash = Some(f.current_hash);
        f.current_hash = next.hash();
        f.generation += 1;
        f.rotated_at = now;
        next
    }

    #[test]
    fn tokens_round_trip_and_hide_in_debug() {
        let id = FamilyId::generate();
        let token = RefreshToken::first(&id);
        let text = token.expose();
        assert_eq!(text.len(), 64);
        assert_eq!(RefreshToken::parse(&text).unwrap(), token);
        assert_eq!(token.family(), id);
        assert!(!format!("{token:?}").contains(&text));
        assert!(RefreshToken::parse(&text[..63]).is_err());
        assert!(RefreshToken::parse(&format!("{}=", &text[..63])).is_err());
    }

    #[test]
    fn presented_tokens_are_classified_along_the_chain() {
        let key = ChainKey::generate();
        let now = Timestamp::from_unix_millis(1_000_000);
        let id = FamilyId::generate();
        let t0 = RefreshToken::first(&id);
        let mut f = family(&t0, id.clone(), now);
        let grace = Duration::from_secs(10);
        assert_eq!(f.classify(&t0, &key, now, grace), Presented::Current);
        let t1 = rotate(&mut f, &t0, &key, now);
        assert_eq!(f.classify(&t1, &key, now, grace), Presented::Current);
        assert_eq!(
            f.classify(&t0, &key, now.plus(Duration::from_secs(5)), grace),
            Presented::PreviousInGrace
        );
        assert_eq!(
            f.classify(&t0, &key, now.plus(Duration::from_secs(11)), grace),
            Presented::Reused
        );
        let t2 = rotate(&mut f, &t1, &key, now.plus(Duration::from_secs(20)));
        let _t3 = rotate(&mut f, &t2, &key, now.plus(Duration::from_secs(40)));
        assert_eq!(
            f.classify(&t0, &key, now.plus(Duration::from_secs(41)), grace),
            Presented::Reused,
            "two back"
        );
        let forged = RefreshToken::first(&id);
        assert_eq!(f.classify(&forged, &key, now, grace), Presented::Unknown);
        let other_key = ChainKey::generate();
        assert_eq!(
            f.classify(&t0, &other_key, now.plus(Duration::from_secs(60)), grace),
            Presented::Unknown
        );
    }

    #[test]
    fn successors_are_deterministic_per_key() {
        let key = ChainKey::generate();
        let t = RefreshToken::first(&FamilyId::generate());
        assert_eq!(t.successor(&key), t.successor(&key));
        assert_ne!(t.successor(&key), t.successor(&ChainKey::generate()));
    }
}
