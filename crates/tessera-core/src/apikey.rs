//! API keys: credentials for machines (CI, provisioning, support tools).
//!
//! A key is shown once, as `tsk_<public id>_<secret>`: the recognisable
//! prefix lets a server (and a secret scanner) tell it from an access token
//! at a glance; the public id (96 bits, base64url) names the key in lists,
//! logs and the revocation route; the secret (256 bits, base64url) is never
//! stored, only its SHA-256. A key has a name, roles, an optional expiry and
//! a last-used time; it belongs to no user.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use thiserror::Error;

use crate::clock::Timestamp;
use crate::secret::fill_random;
use crate::user::{Role, normalise_roles};

/// What every API key starts with.
pub const API_KEY_PREFIX: &str = "tsk_";

const ID_BYTES: usize = 12;
const ID_CHARS: usize = 16;
const SECRET_BYTES: usize = 32;
const SECRET_CHARS: usize = 43;

/// Why a presented key or a key's fields were refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InvalidApiKey {
    /// Not `tsk_` + 16 + `_` + 43 characters of canonical base64url.
    #[error("not an API key")]
    Malformed,
    /// Names are 1–64 printable characters.
    #[error("API key names are 1-64 printable characters")]
    Name,
}

/// The public name of a key: 96 random bits, base64url (16 characters).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ApiKeyId(String);

impl ApiKeyId {
    /// A fresh random id.
    pub fn generate() -> Self {
        let mut bytes = [0u8; ID_BYTES];
        fill_random(&mut bytes);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Checks an id given by a person or read back from a store.
    ///
    /// # Errors
    ///
    /// [`InvalidApiKey::Malformed`] unless it is 16 characters of canonical
    /// base64url.
    pub fn parse(raw: &str) -> Result<Self, InvalidApiKey> {
        decode_exact::<ID_BYTES>(raw, ID_CHARS)?;
        Ok(Self(raw.to_owned()))
    }

    /// The id's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ApiKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A key as presented (`tsk_<id>_<secret>`). `Debug` shows the id only.
#[derive(Clone)]
pub struct ApiKeyToken {
    id: ApiKeyId,
    secret: [u8; SECRET_BYTES],
}

impl fmt::Debug for ApiKeyToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyToken")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl ApiKeyToken {
    /// Whether `raw` claims to be an API key (so that a server checks it as
    /// one and never as an access token).
    pub fn looks_like(raw: &str) -> bool {
        raw.starts_with(API_KEY_PREFIX)
    }

    /// Parses a presented key.
    ///
    /// # Errors
    ///
    /// [`InvalidApiKey::Malformed`] for anything but the exact shape.
    pub fn parse(raw: &str) -> Result<Self, InvalidApiKey> {
        let rest = raw
            .strip_prefix(API_KEY_PREFIX)
            .ok_or(InvalidApiKey::Malformed)?;
        if rest.len() != ID_CHARS + 1 + SECRET_CHARS || !rest.is_char_boundary(ID_CHARS) {
            return Err(InvalidApiKey::Malformed);
        }
        let (id, secret) = rest.split_at(ID_CHARS);
        let secret = secret.strip_prefix('_').ok_or(InvalidApiKey::Malformed)?;
        Ok(Self {
            id: ApiKeyId::parse(id)?,
            secret: decode_exact::<SECRET_BYTES>(secret, SECRET_CHARS)?,
        })
    }

    /// The key's public id.
    pub fn id(&self) -> &ApiKeyId {
        &self.id
    }

    /// The full key text, to show once.
    pub fn expose(&self) -> String {
        format!(
            "{API_KEY_PREFIX}{}_{}",
            self.id,
            URL_SAFE_NO_PAD.encode(self.secret)
        )
    }

    /// SHA-256 of the secret: the only form a store sees.
    pub fn secret_hash(&self) -> [u8; 32] {
        Sha256::digest(self.secret).into()
    }
}

fn decode_exact<const N: usize>(text: &str, chars: usize) -> Result<[u8; N], InvalidApiKey> {
    if text.len() != chars {
        return Err(InvalidApiKey::Malformed);
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| InvalidApiKey::Malformed)?;
    let array: [u8; N] = bytes.try_into().map_err(|_| InvalidApiKey::Malformed)?;
    // Canonical only: one text per key (trailing bits must be zero).
    if URL_SAFE_NO_PAD.encode(array) != text {
        return Err(InvalidApiKey::Malformed);
    }
    Ok(array)
}

/// Checks a key's name: 1–64 characters, no control characters.
///
/// # Errors
///
/// [`InvalidApiKey::Name`].
pub fn check_api_key_name(name: &str) -> Result<(), InvalidApiKey> {
    let count = name.chars().count();
    if (1..=64).contains(&count) && !name.chars().any(char::is_control) && name.trim() == name {
        Ok(())
    } else {
        Err(InvalidApiKey::Name)
    }
}

/// An API key as stored: never the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Public id.
    pub id: ApiKeyId,
    /// What it is for (`ci`, `provisioning`).
    pub name: String,
    /// Roles it holds, sorted and without duplicates.
    pub roles: Vec<Role>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it stops working; `None`: until revoked.
    pub expires_at: Option<Timestamp>,
    /// When it was last used (written at most once a minute).
    pub last_used: Option<Timestamp>,
    /// SHA-256 of the secret.
    pub secret_hash: [u8; 32],
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("roles", &self.roles)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .field("last_used", &self.last_used)
            .finish_non_exhaustive()
    }
}

impl ApiKey {
    /// A new key and its one-time text.
    ///
    /// # Errors
    ///
    /// [`InvalidApiKey::Name`] for an unusable name.
    pub fn generate(
        name: &str,
        roles: Vec<Role>,
        expires_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<(Self, ApiKeyToken), InvalidApiKey> {
        check_api_key_name(name)?;
        let mut secret = [0u8; SECRET_BYTES];
        fill_random(&mut secret);
        let token = ApiKeyToken {
            id: ApiKeyId::generate(),
            secret,
        };
        let key = Self {
            id: token.id.clone(),
            name: name.to_owned(),
            roles: normalise_roles(roles),
            created_at: now,
            expires_at,
            last_used: None,
            secret_hash: token.secret_hash(),
        };
        Ok((key, token))
    }

    /// Whether `token` is this key's (constant time in the secret).
    pub fn matches(&self, token: &ApiKeyToken) -> bool {
        token.id == self.id && bool::from(token.secret_hash().ct_eq(&self.secret_hash))
    }

    /// Whether it still works at `now`.
    pub fn is_live(&self, now: Timestamp) -> bool {
        self.expires_at.is_none_or(|end| now < end)
    }

    /// Whether it holds `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r.as_str() == role)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> (ApiKey, ApiKeyToken) {
        ApiKey::generate(
            "ci",
            vec![Role::parse("admin").unwrap()],
            None,
            Timestamp::now(),
        )
        .unwrap()
    }

    #[test]
    fn a_key_round_trips_through_its_text() {
        let (stored, token) = key();
        let text = token.expose();
        assert!(text.starts_with("tsk_") && text.len() == 64, "{text}");
        let parsed = ApiKeyToken::parse(&text).unwrap();
        assert_eq!(parsed.id(), &stored.id);
        assert!(stored.matches(&parsed));
        assert!(!format!("{parsed:?}").contains(&text[21..]));
    }

    #[test]
    fn another_secret_or_id_does_not_match() {
        let (stored, _) = key();
        let (_, other) = key();
        assert!(!stored.matches(&other));
        let forged = format!("tsk_{}_{}", stored.id, &other.expose()[21..]);
        assert!(!stored.matches(&ApiKeyToken::parse(&forged).unwrap()));
    }

    #[test]
    fn malformed_keys_are_refused() {
        let (_, token) = key();
        let text = token.expose();
        for bad in [
            String::new(),
            "tsk_".into(),
            text[..63].to_string(),
            format!("{text}A"),
            text.replacen("tsk_", "tsx_", 1),
            format!("{}-{}", &text[..20], &text[21..]),
            format!("{}é{}", &text[..30], &text[32..]),
        ] {
            assert!(ApiKeyToken::parse(&bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn names_are_short_and_printable() {
        assert!(check_api_key_name("ci deploy").is_ok());
        for bad in ["", " ci", "a\nb", &"x".repeat(65)] {
            assert!(check_api_key_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn expiry_ends_a_key() {
        let now = Timestamp::now();
        let (mut stored, _) = key();
        assert!(stored.is_live(now));
        stored.expires_at = Some(now);
        assert!(!stored.is_live(now));
    }
}
