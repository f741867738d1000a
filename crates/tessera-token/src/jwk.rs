//! JSON Web Keys (RFC 7517) for public keys: what the JWKS endpoint
//! publishes and what `tessera token decode --jwk` reads.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::jws::{Algorithm, TokenError, VerifyingKey};

/// A public JWK. Never has private fields: there is no field to put them in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Jwk {
    /// `OKP`, `EC`, `RSA` or `oct`.
    pub kty: String,
    /// Key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Algorithm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// Always `sig` for tessera's keys.
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    /// Curve (`Ed25519`, `P-256`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// Public x coordinate / Ed25519 public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// Public y coordinate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    /// RSA modulus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// RSA public exponent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    /// Symmetric key (only read, from a file the operator gives `token decode`).
    #[serde(default, skip_serializing)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub k: Option<String>,
}

/// A JWK Set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Jwks {
    /// The keys.
    pub keys: Vec<Jwk>,
}

fn b64(field: Option<&String>) -> Result<Vec<u8>, TokenError> {
    URL_SAFE_NO_PAD
        .decode(field.ok_or(TokenError::Key)?)
        .map_err(|_| TokenError::Key)
}

impl Jwk {
    /// A P-256 public key from its coordinates.
    pub fn ec_p256(x: &str, y: &str) -> Self {
        Self {
            kty: "EC".into(),
            crv: Some("P-256".into()),
            x: Some(x.into()),
            y: Some(y.into()),
            ..Self::empty()
        }
    }

    fn empty() -> Self {
        Self {
            kty: String::new(),
            kid: None,
            alg: None,
            use_: None,
            crv: None,
            x: None,
            y: None,
            n: None,
            e: None,
            k: None,
        }
    }

    /// The public JWK of an asymmetric key; `None` for HS256 (a shared
    /// secret is never published).
    pub fn public(key: &VerifyingKey, kid: &str) -> Option<Self> {
        let mut jwk = match key {
            VerifyingKey::Hs256(_) => return None,
            VerifyingKey::EdDsa(k) => Self {
                kty: "OKP".into(),
                crv: Some("Ed25519".into()),
                x: Some(URL_SAFE_NO_PAD.encode(k.to_bytes())),
                ..Self::empty()
            },
            VerifyingKey::Es256(k) => {
                let point = k.to_sec1_point(false);
                Self::ec_p256(
                    &URL_SAFE_NO_PAD.encode(point.x()?),
                    &URL_SAFE_NO_PAD.encode(point.y()?),
                )
            }
            VerifyingKey::Rs256(k) => {
                use rsa::traits::PublicKeyParts;
                Self {
                    kty: "RSA".into(),
                    n: Some(URL_SAFE_NO_PAD.encode(k.n().as_ref().to_be_bytes_trimmed_vartime())),
                    e: Some(URL_SAFE_NO_PAD.encode(k.e().to_be_bytes_trimmed_vartime())),
                    ..Self::empty()
                }
            }
        };
        jwk.kid = Some(kid.to_owned());
        jwk.alg = Some(key.algorithm().as_str().to_owned());
        jwk.use_ = Some("sig".into());
        Some(jwk)
    }

    /// The verifying key this JWK describes.
    ///
    /// # Errors
    ///
    /// [`TokenError::Key`] for unsupported or malformed keys.
    pub fn verifying_key(&self) -> Result<VerifyingKey, TokenError> {
        match (self.kty.as_str(), self.crv.as_deref()) {
            ("OKP", Some("Ed25519")) => {
                let bytes: [u8; 32] = b64(self.x.as_ref())?
                    .try_into()
                    .map_err(|_| TokenError::Key)?;
                ed25519_dalek::VerifyingKey::from_bytes(&bytes)
                    .map(VerifyingKey::EdDsa)
                    .map_err(|_| TokenError::Key)
            }
            ("EC", Some("P-256")) => {
                let (x, y) = (b64(self.x.as_ref())?, b64(self.y.as_ref())?);
                if x.len() != 32 || y.len() != 32 {
                    return Err(TokenError::Key);
                }
                let mut sec1 = vec![0x04];
                sec1.extend_from_slice(&x);
                sec1.extend_from_slice(&y);
                p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1)
                    .map(VerifyingKey::Es256)
                    .map_err(|_| TokenError::Key)
            }
            ("RSA", _) => {
                let n = rsa::BoxedUint::from_be_slice_vartime(&b64(self.n.as_ref())?);
                let e = rsa::BoxedUint::from_be_slice_vartime(&b64(self.e.as_ref())?);
                rsa::PublicKey::new(n, e)
                    .map(|k| VerifyingKey::Rs256(Box::new(k)))
                    .map_err(|_| TokenError::Key)
            }
            ("oct", _) => VerifyingKey::hs256(&b64(self.k.as_ref())?),
            _ => Err(TokenError::Key),
        }
    }

    /// The algorithm the JWK declares, if any.
    pub fn algorithm(&self) -> Option<Algorithm> {
        self.alg.as_deref().and_then(Algorithm::parse)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jws::SigningKey;

    #[test]
    fn public_jwks_round_trip_and_never_carry_private_fields() {
        for alg in [Algorithm::EdDSA, Algorithm::ES256] {
            let signing = SigningKey::generate(alg).unwrap();
            let jwk = Jwk::public(&signing.verifying_key(), "kid-1").unwrap();
            let text = serde_json::to_string(&jwk).unwrap();
            for private in ["\"d\"", "\"p\"", "\"q\"", "\"k\""] {
                assert!(!text.contains(private), "{text}");
            }
            assert_eq!(jwk.use_.as_deref(), Some("sig"));
            let back: Jwk = serde_json::from_str(&text).unwrap();
            let input = b"signing input";
            let sig = signing.sign(input).unwrap();
            assert!(back.verifying_key().unwrap().verify(input, &sig));
        }
    }

    #[test]
    fn hmac_secrets_are_never_published() {
        let key = SigningKey::generate(Algorithm::HS256).unwrap();
        assert!(Jwk::public(&key.verifying_key(), "k").is_none());
    }
}
