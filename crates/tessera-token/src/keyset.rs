//! Signing keys with ids, rotation and retirement, and the access-token
//! operations built on them.
//!
//! The newest key that is not retired signs. Rotation adds a key and retires
//! the previous one, which keeps verifying until every token it signed has
//! expired (`retired_at + max token lifetime`), and is then dropped.
//!
//! A key set is stored as JSON (private material included); the binary keeps
//! that file at mode 0600 in the data directory. An HS256 secret given in the
//! settings is never stored.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::claims::{ACCESS_TOKEN_TYPE, AccessClaims, Validation};
use crate::jwk::{Jwk, Jwks};
use crate::jws::{Algorithm, SigningKey, TokenError, VerifyingKey, parse_compact, sign_compact};

/// One key of the set.
#[derive(Debug, Clone)]
pub struct KeyEntry {
    /// Key id, the `kid` header of tokens it signs.
    pub kid: String,
    /// The private key.
    pub signing: SigningKey,
    /// The public (or shared) key.
    pub verifying: VerifyingKey,
    /// When it was created (seconds since the epoch).
    pub created_at: i64,
    /// When it stopped signing, if it has.
    pub retired_at: Option<i64>,
}

/// The signing keys of a tessera deployment.
#[derive(Debug, Clone)]
pub struct KeySet {
    entries: Vec<KeyEntry>,
    /// Whether the set came from a configured secret (then it cannot rotate).
    configured: bool,
}

#[derive(Serialize, Deserialize)]
struct StoredKey {
    kid: String,
    alg: Algorithm,
    created_at: i64,
    #[serde(default)]
    retired_at: Option<i64>,
    /// HS256: the secret; EdDSA: the seed; ES256: the scalar; RS256: PKCS#8 DER.
    private: String,
}

#[derive(Serialize, Deserialize)]
struct StoredSet {
    keys: Vec<StoredKey>,
}

fn new_kid() -> Result<String, TokenError> {
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes).map_err(|_| TokenError::Key)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

fn entry(kid: String, signing: SigningKey, created_at: i64, retired_at: Option<i64>) -> KeyEntry {
    KeyEntry {
        kid,
        verifying: signing.verifying_key(),
        signing,
        created_at,
        retired_at,
    }
}

impl KeySet {
    /// A set holding one HS256 key from a configured secret (≥ 32 bytes).
    /// Its `kid` is derived from the secret's hash, so every node agrees.
    ///
    /// # Errors
    ///
    /// [`TokenError::Key`] for a short secret.
    pub fn from_secret(secret: &[u8]) -> Result<Self, TokenError> {
        VerifyingKey::hs256(secret)?;
        let kid = format!(
            "hs-{}",
            URL_SAFE_NO_PAD.encode(&Sha256::digest(secret)[..9])
        );
        Ok(Self {
            entries: vec![entry(kid, SigningKey::Hs256(secret.to_vec()), 0, None)],
            configured: true,
        })
    }

    /// A set with one fresh key.
    ///
    /// # Errors
    ///
    /// [`TokenError::Key`] if key generation fails.
    pub fn generate(algorithm: Algorithm, now: i64) -> Result<Self, TokenError> {
        let mut set = Self {
            entries: Vec::new(),
            configured: false,
        };
        set.rotate(algorithm, now)?;
        Ok(set)
    }

    /// Whether the keys came from a configured secret.
    pub fn is_configured(&self) -> bool {
        self.configured
    }

    /// Adds a fresh signing key and retires the current one (which keeps
    /// verifying the tokens it signed). Returns the new key.
    ///
    /// # Errors
    ///
    /// [`TokenError::Key`] if generation fails or the set is a configured secret.
    pub fn rotate(&mut self, algorithm: Algorithm, now: i64) -> Result<&KeyEntry, TokenError> {
        if self.configured {
            return Err(TokenError::Key);
        }
        let signing = SigningKey::generate(algorithm)?;
        for old in self.entries.iter_mut().filter(|e| e.retired_at.is_none()) {
            old.retired_at = Some(now);
        }
        self.entries.push(entry(new_kid()?, signing, now, None));
        Ok(self.entries.last().expect("just pushed"))
    }

    /// Drops retired keys whose tokens have all expired; returns their ids.
    pub fn prune(&mut self, now: i64, max_token_lifetime_secs: i64) -> Vec<String> {
        let (gone, kept): (Vec<KeyEntry>, Vec<KeyEntry>) = std::mem::take(&mut self.entries)
            .into_iter()
            .partition(|e| {
                e.retired_at
                    .is_some_and(|at| now > at + max_token_lifetime_secs)
            });
        self.entries = kept;
        gone.into_iter().map(|e| e.kid).collect()
    }

    /// The key that signs new tokens.
    pub fn active(&self) -> &KeyEntry {
        self.entries
            .iter()
            .rev()
            .find(|e| e.retired_at.is_none())
            .or(self.entries.last())
            .expect("a key set is never empty")
    }

    /// All keys, oldest first.
    pub fn entries(&self) -> &[KeyEntry] {
        &self.entries
    }

    /// The key with this id.
    pub fn find(&self, kid: &str) -> Option<&KeyEntry> {
        self.entries.iter().find(|e| e.kid == kid)
    }

    /// The public keys, for `/.well-known/jwks.json` (empty for HS256).
    pub fn jwks(&self) -> Jwks {
        Jwks {
            keys: self
                .entries
                .iter()
                .filter_map(|e| Jwk::public(&e.verifying, &e.kid))
                .collect(),
        }
    }

    /// Serialises the set, private keys included.
    ///
    /// # Errors
    ///
    /// [`TokenError::Key`] for a configured secret (never written) or an
    /// RSA key that cannot be encoded.
    pub fn to_json(&self) -> Result<String, TokenError> {
        if self.configured {
            return Err(TokenError::Key);
        }
        let keys = self
            .entries
            .iter()
            .map(|e| {
                let private = match &e.signing {
                    SigningKey::Hs256(secret) => secret.clone(),
                    SigningKey::EdDsa(k) => k.to_bytes().to_vec(),
                    SigningKey::Es256(k) => k.to_bytes().to_vec(),
                    SigningKey::Rs256(k) => {
                        use rsa::pkcs8::EncodePrivateKey;
                        k.to_pkcs8_der()
                            .map_err(|_| TokenError::Key)?
                            .as_bytes()
                            .to_vec()
                    }
                };
                Ok(StoredKey {
                    kid: e.kid.clone(),
                    alg: e.signing.algorithm(),
                    created_at: e.created_at,
                    retired_at: e.retired_at,
                    private: URL_SAFE_NO_PAD.encode(private),
                })
            })
            .collect::<Result<Vec<_>, TokenError>>()?;
        serde_json::to_string_pretty(&StoredSet { keys }).map_err(|_| TokenError::Key)
    }

    /// Reads a set written by [`KeySet::to_json`].
    ///
    /// # Errors
    ///
    /// [`TokenError::Key`] for anything malformed, or an empty set.
    pub fn from_json(text: &str) -> Result<Self, TokenError> {
        let stored: StoredSet = serde_json::from_str(text).map_err(|_| TokenError::Key)?;
        let entries = stored
            .keys
            .into_iter()
            .map(|k| {
                let private = URL_SAFE_NO_PAD
                    .decode(&k.private)
                    .map_err(|_| TokenError::Key)?;
                let signing = match k.alg {
                    Algorithm::HS256 => {
                        VerifyingKey::hs256(&private)?;
                        SigningKey::Hs256(private)
                    }
                    Algorithm::EdDSA => SigningKey::EdDsa(ed25519_dalek::SigningKey::from_bytes(
                        &private.try_into().map_err(|_| TokenError::Key)?,
                    )),
                    Algorithm::ES256 => SigningKey::Es256(
                        p256::ecdsa::SigningKey::from_slice(&private)
                            .map_err(|_| TokenError::Key)?,
                    ),
                    Algorithm::RS256 => {
                        use rsa::pkcs8::DecodePrivateKey;
                        SigningKey::Rs256(Box::new(
                            rsa::PrivateKey::from_pkcs8_der(&private)
                                .map_err(|_| TokenError::Key)?,
                        ))
                    }
                };
                Ok(entry(k.kid, signing, k.created_at, k.retired_at))
            })
            .collect::<Result<Vec<_>, TokenError>>()?;
        if entries.is_empty() {
            return Err(TokenError::Key);
        }
        Ok(Self {
            entries,
            configured: false,
        })
    }

    /// Signs an access token with the active key.
    ///
    /// # Errors
    ///
    /// [`TokenError::Key`] if signing fails.
    pub fn sign(&self, claims: &AccessClaims) -> Result<String, TokenError> {
        let key = self.active();
        let payload = serde_json::to_vec(claims).map_err(|_| TokenError::Claims)?;
        sign_compact(&key.signing, &key.kid, ACCESS_TOKEN_TYPE, &payload)
    }

    /// Verifies an access token strictly: structure, header, `typ`, a known
    /// `kid` whose algorithm is the header's, the signature, then the claims.
    ///
    /// # Errors
    ///
    /// The first [`TokenError`] found.
    pub fn verify(
        &self,
        token: &str,
        validation: &Validation,
        now: i64,
    ) -> Result<AccessClaims, TokenError> {
        let unverified = parse_compact(token)?;
        let typ_ok = unverified.header.typ.as_deref().is_some_and(|t| {
            t.eq_ignore_ascii_case(ACCESS_TOKEN_TYPE)
                || t.eq_ignore_ascii_case("application/at+jwt")
        });
        if !typ_ok {
            return Err(TokenError::WrongType);
        }
        let kid = unverified
            .header
            .kid
            .as_deref()
            .ok_or(TokenError::UnknownKey)?;
        let key = self.find(kid).ok_or(TokenError::UnknownKey)?;
        let payload = unverified.verify(&key.verifying)?;
        let claims = AccessClaims::from_payload(&payload)?;
        claims.validate(validation, now)?;
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::Audience;

    fn claims(now: i64) -> AccessClaims {
        AccessClaims {
            iss: "tessera".into(),
            sub: "user-1".into(),
            aud: Audience::One("tessera".into()),
            exp: now + 900,
            iat: now,
            nbf: now,
            jti: "jti-1".into(),
            sid: "family-1".into(),
            roles: vec!["admin".into()],
            email: Some("a@example.com".into()),
            email_verified: Some(true),
        }
    }

    fn validation() -> Validation {
        Validation {
            issuer: "tessera".into(),
            audience: "tessera".into(),
            leeway_secs: 30,
        }
    }

    #[test]
    fn tokens_signed_by_a_rotated_out_key_verify_until_it_is_pruned() {
        let now = 1_000_000;
        let mut set = KeySet::generate(Algorithm::EdDSA, now).unwrap();
        let old_token = set.sign(&claims(now)).unwrap();
        let old_kid = set.active().kid.clone();
        set.rotate(Algorithm::EdDSA, now + 10).unwrap();
        assert_ne!(set.active().kid, old_kid);
        assert!(set.verify(&old_token, &validation(), now + 20).is_ok());
        assert_eq!(set.jwks().keys.len(), 2);
        assert!(
            set.prune(now + 500, 900).is_empty(),
            "still within the token lifetime"
        );
        assert_eq!(set.prune(now + 911, 900), vec![old_kid]);
        assert_eq!(
            set.verify(&old_token, &validation(), now + 20),
            Err(TokenError::UnknownKey)
        );
    }

    #[test]
    fn sets_survive_serialisation_for_every_algorithm() {
        let now = 1_000_000;
        for alg in [Algorithm::HS256, Algorithm::EdDSA, Algorithm::ES256] {
            let set = KeySet::generate(alg, now).unwrap();
            let token = set.sign(&claims(now)).unwrap();
            let back = KeySet::from_json(&set.to_json().unwrap()).unwrap();
            assert_eq!(
                back.verify(&token, &validation(), now).unwrap(),
                claims(now)
            );
        }
    }

    #[test]
    fn a_configured_secret_is_never_serialised_or_rotated() {
        let mut set = KeySet::from_secret(&[9u8; 32]).unwrap();
        assert!(set.to_json().is_err());
        assert!(set.rotate(Algorithm::HS256, 0).is_err());
        assert_eq!(
            KeySet::from_secret(&[9u8; 32]).unwrap().active().kid,
            set.active().kid
        );
        assert!(KeySet::from_secret(&[9u8; 31]).is_err());
    }
}
