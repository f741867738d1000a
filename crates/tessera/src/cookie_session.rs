//! Sessions kept entirely in the client's cookie (`session_storage = cookie`):
//! sealed with XChaCha20-Poly1305 (random 192-bit nonce per cookie, the
//! cookie name as associated data), no row in any store.
//!
//! The same attributes and expiry rules as server sessions apply: the
//! cookie records login time, last activity and the absolute expiry, and is
//! re-sealed when activity is recorded. Because a sealed cookie cannot be
//! recalled, logout and revocation go through the revocation list (by the
//! session's handle, or a per-user cutoff), exactly as for access tokens.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tessera_core::{
    Email, Role, Session, SessionHandle, SessionIdHash, SessionPolicy, Timestamp, UserId,
};

const VERSION: u8 = 1;
const NONCE_LEN: usize = 24;
/// Largest sealed cookie accepted, in characters (browsers keep 4096 bytes).
pub const MAX_COOKIE_CHARS: usize = 4000;

/// Seals and opens session cookies. `Debug` never shows the key.
#[derive(Clone)]
pub struct CookieSealer {
    cipher: XChaCha20Poly1305,
    aad: Vec<u8>,
}

impl fmt::Debug for CookieSealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CookieSealer(<key redacted>)")
    }
}

#[derive(Serialize, Deserialize)]
struct Sealed {
    uid: UserId,
    email: Email,
    roles: Vec<Role>,
    sid: String,
    login: i64,
    seen: i64,
    abs: i64,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    data: Map<String, Value>,
}

impl CookieSealer {
    /// A sealer with a 256-bit key, bound to the cookie's name.
    pub fn new(key: &[u8; 32], cookie_name: &str) -> Self {
        Self {
            cipher: XChaCha20Poly1305::new_from_slice(key).expect("32-byte key"),
            aad: cookie_name.as_bytes().to_vec(),
        }
    }

    /// The cookie value that carries `session`.
    pub fn seal(&self, session: &Session) -> String {
        let sealed = Sealed {
            uid: session.user_id,
            email: session.email.clone(),
            roles: session.roles.clone(),
            sid: session.handle.as_str().to_owned(),
            login: session.created_at.unix_millis(),
            seen: session.last_seen.unix_millis(),
            abs: session.absolute_expires_at.unix_millis(),
            data: session.data.clone(),
        };
        let plaintext = serde_json::to_vec(&sealed).expect("serialisable");
        let mut nonce = [0u8; NONCE_LEN];
        tessera_core::secret::fill_random(&mut nonce);
        let ciphertext = self
            .cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: &plaintext,
                    aad: &self.aad,
                },
            )
            .expect("encryption cannot fail for in-memory buffers");
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        URL_SAFE_NO_PAD.encode(out)
    }

    /// Opens a cookie value. `None` for anything not sealed by this key for
    /// this cookie name: modified, truncated, re-encrypted, or garbage.
    pub fn open(&self, value: &str, policy: &SessionPolicy) -> Option<Session> {
        if value.len() > MAX_COOKIE_CHARS {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(value).ok()?;
        let (&version, rest) = bytes.split_first()?;
        if version != VERSION || rest.len() < NONCE_LEN {
            return None;
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
        let plaintext = self
            .cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &self.aad,
                },
            )
            .ok()?;
        let sealed: Sealed = serde_json::from_slice(&plaintext).ok()?;
        let last_seen = Timestamp::from_unix_millis(sealed.seen);
        let absolute_expires_at = Timestamp::from_unix_millis(sealed.abs);
        Some(Session {
            id_hash: SessionIdHash::from_bytes(Sha256::digest(sealed.sid.as_bytes()).into()),
            handle: SessionHandle::new(sealed.sid),
            user_id: sealed.uid,
            email: sealed.email,
            roles: sealed.roles,
            created_at: Timestamp::from_unix_millis(sealed.login),
            last_seen,
            expires_at: last_seen
                .plus(policy.idle_timeout())
                .min(absolute_expires_at),
            absolute_expires_at,
            ip: None,
            user_agent: None,
            data: sealed.data,
            rotate: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tessera_core::{NewUser, PasswordHash, SessionMeta};

    fn session(policy: &SessionPolicy) -> Session {
        let user = NewUser {
            email: Email::parse("a@example.com").unwrap(),
            roles: vec![Role::parse("admin").unwrap()],
            password_hash: PasswordHash::from_trusted(String::new()),
        }
        .into_user(Timestamp::now());
        policy
            .start(&user, SessionMeta::default(), Timestamp::now())
            .1
    }

    #[test]
    fn a_sealed_cookie_opens_to_the_same_session() {
        let policy = SessionPolicy::default();
        let sealer = CookieSealer::new(&[1; 32], "__Host-tessera");
        let s = session(&policy);
        let opened = sealer.open(&sealer.seal(&s), &policy).unwrap();
        assert_eq!(
            (opened.user_id, &opened.email, &opened.roles),
            (s.user_id, &s.email, &s.roles)
        );
        assert_eq!(
            (opened.created_at, opened.absolute_expires_at),
            (s.created_at, s.absolute_expires_at)
        );
        assert_eq!(opened.handle, s.handle);
    }

    #[test]
    fn tampered_truncated_and_foreign_cookies_do_not_open() {
        let policy = SessionPolicy::default();
        let sealer = CookieSealer::new(&[1; 32], "__Host-tessera");
        let value = sealer.seal(&session(&policy));
        let mut bytes = URL_SAFE_NO_PAD.decode(&value).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert!(
            sealer
                .open(&URL_SAFE_NO_PAD.encode(&bytes), &policy)
                .is_none(),
            "modified"
        );
        assert!(
            sealer.open(&value[..value.len() - 4], &policy).is_none(),
            "truncated"
        );
        let other_key = CookieSealer::new(&[2; 32], "__Host-tessera");
        assert!(other_key.open(&value, &policy).is_none(), "other key");
        let other_name = CookieSealer::new(&[1; 32], "__Host-other");
        assert!(
            other_name.open(&value, &policy).is_none(),
            "other cookie name"
        );
        assert!(sealer.open("garbage", &policy).is_none());
        assert!(sealer.open("", &policy).is_none());
    }

    #[test]
    fn two_seals_of_one_session_differ() {
        let policy = SessionPolicy::new(Duration::from_secs(60), Duration::from_secs(120)).unwrap();
        let sealer = CookieSealer::new(&[1; 32], "c");
        let s = session(&policy);
        assert_ne!(sealer.seal(&s), sealer.seal(&s), "fresh nonce per cookie");
    }
}
