//! Device cookies: proof that a client logged in to an account before.
//!
//! OWASP's answer to targeted lockout ("Slow Down Online Guessing Attacks
//! with Device Cookies"): after a successful login the client gets a token
//! bound to that account. Attempts that present a valid one draw from that
//! device's own budget instead of the account-wide budget every unknown
//! client shares, so an attacker who empties the account's budget from
//! elsewhere slows only themselves.
//!
//! The token is `base64url(nonce ‖ issued ‖ tag)`: a random 128-bit nonce
//! (the device's name, for its budget), the issue time in milliseconds, and
//! the first 128 bits of `HMAC-SHA256(key, label ‖ account ‖ nonce ‖
//! issued)`. Nothing is stored: any node holding the key checks it. The
//! account is not in the token, so a token tells nobody which account it
//! belongs to, and a token for one account is worthless for any other.

use std::fmt;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::clock::Timestamp;
use crate::family::ChainKey;
use crate::secret::fill_random;

const KEY_LABEL: &[u8] = b"tessera device cookie key v1\0";
const TAG_LABEL: &[u8] = b"tessera device cookie v1\0";
const NONCE_BYTES: usize = 16;
const TAG_BYTES: usize = 16;
const TOKEN_BYTES: usize = NONCE_BYTES + 8 + TAG_BYTES;
/// Issue times this far in the future still count (clock skew between nodes).
const FUTURE_SKEW: Duration = Duration::from_secs(300);

/// The key that signs device tokens, derived from the refresh chain key (a
/// cluster shares that key already, so no key file is added). `Debug` is
/// redacted.
#[derive(Clone)]
pub struct DeviceKey([u8; 32]);

impl DeviceKey {
    /// `HMAC-SHA256(chain key, label)`: its own key, unrelated to the
    /// chain's other uses.
    pub fn derive(chain: &ChainKey) -> Self {
        let mut mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(chain.as_bytes()).expect("any key length");
        mac.update(KEY_LABEL);
        Self(mac.finalize().into_bytes().into())
    }

    fn tag(&self, account: &str, nonce: &[u8], issued: &[u8]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0).expect("any key length");
        mac.update(TAG_LABEL);
        mac.update(&(account.len() as u64).to_be_bytes());
        mac.update(account.as_bytes());
        mac.update(nonce);
        mac.update(issued);
        mac
    }

    /// A fresh token for `account` (as the throttle keys it), issued `now`.
    pub fn issue(&self, account: &str, now: Timestamp) -> String {
        let mut token = [0u8; TOKEN_BYTES];
        fill_random(&mut token[..NONCE_BYTES]);
        token[NONCE_BYTES..NONCE_BYTES + 8].copy_from_slice(&now.unix_millis().to_be_bytes());
        let (head, tail) = token.split_at_mut(NONCE_BYTES + 8);
        let tag = self
            .tag(account, &head[..NONCE_BYTES], &head[NONCE_BYTES..])
            .finalize()
            .into_bytes();
        tail.copy_from_slice(&tag[..TAG_BYTES]);
        URL_SAFE_NO_PAD.encode(token)
    }

    /// The device a token names, if it is ours, for `account`, and no older
    /// than `lifetime`. The tag is compared in constant time.
    pub fn verify(
        &self,
        token: &str,
        account: &str,
        now: Timestamp,
        lifetime: Duration,
    ) -> Option<DeviceId> {
        let mut bytes = [0u8; TOKEN_BYTES];
        if token.len() != URL_SAFE_NO_PAD.encode([0u8; TOKEN_BYTES]).len()
            || URL_SAFE_NO_PAD.decode_slice(token, &mut bytes) != Ok(TOKEN_BYTES)
        {
            return None;
        }
        let (nonce, rest) = bytes.split_at(NONCE_BYTES);
        let (issued, tag) = rest.split_at(8);
        self.tag(account, nonce, issued)
            .verify_truncated_left(tag)
            .ok()?;
        let issued = Timestamp::from_unix_millis(i64::from_be_bytes(
            issued.try_into().expect("eight bytes"),
        ));
        let fresh = now.since(issued) <= lifetime && issued.since(now) <= FUTURE_SKEW;
        fresh.then(|| DeviceId(nonce.try_into().expect("sixteen bytes")))
    }
}

impl fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DeviceKey(<redacted>)")
    }
}

/// The name of a device that proved an earlier login: the key of its own
/// login budget. Not secret on its own (the tag is what cannot be forged).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeviceId([u8; NONCE_BYTES]);

impl DeviceId {
    /// Lower-case hex, for bucket keys.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceId({})", self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn key() -> DeviceKey {
        DeviceKey::derive(&ChainKey::new([7; 32]))
    }

    #[test]
    fn a_token_names_its_device_for_its_account_only() {
        let now = Timestamp::from_unix_millis(1_800_000_000_000);
        let token = key().issue("alice@example.com", now);
        let device = key().verify(&token, "alice@example.com", now, DAY).unwrap();
        assert_eq!(
            key().verify(&token, "alice@example.com", now.plus(DAY), DAY),
            Some(device)
        );
        assert_eq!(key().verify(&token, "bob@example.com", now, DAY), None);
        let other = DeviceKey::derive(&ChainKey::new([8; 32]));
        assert_eq!(other.verify(&token, "alice@example.com", now, DAY), None);
        assert_ne!(
            key().verify(
                &key().issue("alice@example.com", now),
                "alice@example.com",
                now,
                DAY
            ),
            Some(device),
            "every token names a new device"
        );
    }

    #[test]
    fn old_future_forged_and_malformed_tokens_name_nothing() {
        let now = Timestamp::from_unix_millis(1_800_000_000_000);
        let token = key().issue("a@example.com", now);
        let later = now.plus(DAY + Duration::from_millis(1));
        assert_eq!(key().verify(&token, "a@example.com", later, DAY), None);
        let before = Timestamp::from_unix_millis(now.unix_millis() - 3_600_000);
        assert_eq!(key().verify(&token, "a@example.com", before, DAY), None);
        let mut flipped = token.clone().into_bytes();
        let last = flipped.len() - 2;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert_eq!(key().verify(&flipped, "a@example.com", now, DAY), None);
        for garbage in ["", "x", "!!!!", &token[1..], &format!("{token}A")] {
            assert_eq!(key().verify(garbage, "a@example.com", now, DAY), None);
        }
    }

    #[test]
    fn debug_shows_no_key() {
        assert_eq!(format!("{:?}", key()), "DeviceKey(<redacted>)");
    }
}
