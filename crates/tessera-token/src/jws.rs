//! JWS compact serialisation: signing and strict verification.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use sha2::Sha256;

/// Largest token accepted for verification, in bytes.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Shortest HS256 secret accepted, in bytes.
pub const MIN_HMAC_SECRET_BYTES: usize = 32;

/// Why a token was refused. The `Display` text is safe to show to clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url segments of JSON, or not canonical base64url.
    #[error("malformed token")]
    Malformed,
    /// Longer than [`MAX_TOKEN_BYTES`].
    #[error("token too large")]
    TooLarge,
    /// `alg` is `none`, unknown, or not the algorithm of the key.
    #[error("algorithm not accepted")]
    Algorithm,
    /// No key with this `kid`.
    #[error("unknown signing key")]
    UnknownKey,
    /// The header carries `jwk`, `jku`, `x5u`, `x5c` or `crit`.
    #[error("header parameter not accepted")]
    ForbiddenHeader,
    /// `typ` is not the expected token type.
    #[error("wrong token type")]
    WrongType,
    /// The signature does not verify.
    #[error("invalid signature")]
    BadSignature,
    /// A required claim is missing or has the wrong type.
    #[error("missing or invalid claim")]
    Claims,
    /// `exp` has passed.
    #[error("token expired")]
    Expired,
    /// `nbf` or `iat` lies in the future.
    #[error("token not yet valid")]
    NotYetValid,
    /// `iss` is not ours.
    #[error("wrong issuer")]
    Issuer,
    /// `aud` does not include us.
    #[error("wrong audience")]
    Audience,
    /// The token's session or family was revoked.
    #[error("token revoked")]
    Revoked,
    /// A key could not be created or read.
    #[error("invalid key")]
    Key,
}

/// The JWS algorithms tessera signs and verifies with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Algorithm {
    /// HMAC with SHA-256 (shared secret).
    HS256,
    /// Ed25519 (RFC 8037).
    EdDSA,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
}

impl Algorithm {
    /// The `alg` header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HS256 => "HS256",
            Self::EdDSA => "EdDSA",
            Self::ES256 => "ES256",
            Self::RS256 => "RS256",
        }
    }

    /// Parses an `alg` value, exactly (JOSE names are case-sensitive).
    pub fn parse(name: &str) -> Option<Self> {
        [Self::HS256, Self::EdDSA, Self::ES256, Self::RS256]
            .into_iter()
            .find(|a| a.as_str() == name)
    }

    /// Whether the algorithm has a public key to publish.
    pub fn is_asymmetric(self) -> bool {
        self != Self::HS256
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A key that verifies signatures; its algorithm is fixed by its type.
#[derive(Clone)]
pub enum VerifyingKey {
    /// HS256 shared secret.
    Hs256(Vec<u8>),
    /// Ed25519 public key.
    EdDsa(ed25519_dalek::VerifyingKey),
    /// P-256 public key.
    Es256(p256::ecdsa::VerifyingKey),
    /// RSA public key.
    Rs256(Box<rsa::PublicKey>),
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifyingKey({})", self.algorithm())
    }
}

impl VerifyingKey {
    /// An HS256 key from a shared secret of at least 32 bytes.
    ///
    /// # Errors
    ///
    /// [`TokenError::Key`] for a shorter secret.
    pub fn hs256(secret: &[u8]) -> Result<Self, TokenError> {
        if secret.len() < MIN_HMAC_SECRET_BYTES {
            return Err(TokenError::Key);
        }
        Ok(Self::Hs256(secret.to_vec()))
    }

    /// The one algorithm this key verifies.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            Self::Hs256(_) => Algorithm::HS256,
            Self::EdDsa(_) => Algorithm::EdDSA,
            Self::Es256(_) => Algorithm::ES256,
            Self::Rs256(_) => Algorithm::RS256,
        }
    }

    /// Checks `signature` over `input`.
    pub fn verify(&self, input: &[u8], signature: &[u8]) -> bool {
        match self {
            Self::Hs256(secret) => {
                let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(secret) else {
                    return false;
                };
                mac.update(input);
                // Constant-time comparison.
                mac.verify_slice(signature).is_ok()
            }
            Self::EdDsa(key) => ed25519_dalek::Signature::from_slice(signature)
                .is_ok_and(|sig| key.verify_strict(input, &sig).is_ok()),
            Self::Es256(key) => {
                use p256::ecdsa::signature::Verifier;
                p256::ecdsa::Signature::from_slice(signature)
                    .is_ok_and(|sig| key.verify(input, &sig).is_ok())
            }
            Self::Rs256(key) => key
                .pkcs1v15_verify::<rsa::sha2::Sha256>(input, signature)
                .is_ok(),
        }
    }
}

/// A key that signs; its algorithm is fixed by its type.
#[derive(Clone)]
pub enum SigningKey {
    /// HS256 shared secret.
    Hs256(Vec<u8>),
    /// Ed25519 private key.
    EdDsa(ed25519_dalek::SigningKey),
    /// P-256 private key.
    Es256(p256::ecdsa::SigningKey),
    /// RSA private key.
    Rs256(Box<rsa::PrivateKey>),
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({}, <redacted>)", self.algorithm())
    }
}

fn random_bytes<const N: usize>() -> Result<[u8; N], TokenError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|_| TokenError::Key)?;
    Ok(bytes)
}

impl SigningKey {
    /// A fresh key from the operating system's CSPRNG (HS256: 256-bit
    /// secret; RS256: 3072-bit modulus).
    ///
    /// # Errors
    ///
    /// [`TokenError::Key`] if randomness or key generation fails.
    pub fn generate(algorithm: Algorithm) -> Result<Self, TokenError> {
        Ok(match algorithm {
            Algorithm::HS256 => Self::Hs256(random_bytes::<32>()?.to_vec()),
            Algorithm::EdDSA => {
                Self::EdDsa(ed25519_dalek::SigningKey::from_bytes(&random_bytes::<32>()?))
            }
            Algorithm::ES256 => loop {
                // A random 256-bit string is a valid scalar with overwhelming probability.
                if let Ok(key) = p256::ecdsa::SigningKey::from_slice(&random_bytes::<32>()?) {
                    break Self::Es256(key);
                }
            },
            Algorithm::RS256 => {
                use rsa::Generate;
                Self::Rs256(Box::new(
                    rsa::PrivateKey::try_generate().map_err(|_| TokenError::Key)?,
                ))
            }
        })
    }

    /// The algorithm of this key.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            Self::Hs256(_) => Algorithm::HS256,
            Self::EdDsa(_) => Algorithm::EdDSA,
            Self::Es256(_) => Algorithm::ES256,
            Self::Rs256(_) => Algorithm::RS256,
        }
    }

    /// The matching verifying key.
    pub fn verifying_key(&self) -> VerifyingKey {
        match self {
            Self::Hs256(secret) => VerifyingKey::Hs256(secret.clone()),
            Self::EdDsa(key) => VerifyingKey::EdDsa(key.verifying_key()),
            Self::Es256(key) => VerifyingKey::Es256(*key.verifying_key()),
            Self::Rs256(key) => VerifyingKey::Rs256(Box::new(key.to_public_key())),
        }
    }

    /// Signs `input` (the JWS signing input).
    ///
    /// # Errors
    ///
    /// [`TokenError::Key`] if the RSA signer fails (it does not for valid keys).
    pub fn sign(&self, input: &[u8]) -> Result<Vec<u8>, TokenError> {
        Ok(match self {
            Self::Hs256(secret) => {
                let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret)
                    .map_err(|_| TokenError::Key)?;
                mac.update(input);
                mac.finalize().into_bytes().to_vec()
            }
            Self::EdDsa(key) => {
                use ed25519_dalek::Signer;
                key.sign(input).to_bytes().to_vec()
            }
            Self::Es256(key) => {
                use p256::ecdsa::signature::Signer;
                let signature: p256::ecdsa::Signature = key.sign(input);
                signature.to_bytes().to_vec()
            }
            Self::Rs256(key) => key
                .pkcs1v15_sign::<rsa::sha2::Sha256>(input)
                .map_err(|_| TokenError::Key)?,
        })
    }
}

/// Signs a compact JWS with header `{"alg", "typ", "kid"}` over `payload`.
///
/// # Errors
///
/// [`TokenError::Key`] if signing fails.
pub fn sign_compact(
    key: &SigningKey,
    kid: &str,
    typ: &str,
    payload: &[u8],
) -> Result<String, TokenError> {
    let header = serde_json::json!({"alg": key.algorithm().as_str(), "typ": typ, "kid": kid});
    let mut token = URL_SAFE_NO_PAD.encode(header.to_string());
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(payload, &mut token);
    let signature = key.sign(token.as_bytes())?;
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(signature, &mut token);
    Ok(token)
}

/// The protected header fields tessera looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// `alg`, already checked against the key.
    pub alg: Algorithm,
    /// `typ`, if present.
    pub typ: Option<String>,
    /// `kid`, if present.
    pub kid: Option<String>,
}

#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<serde_json::Value>,
    #[serde(default)]
    jwk: Option<serde_json::Value>,
    #[serde(default)]
    jku: Option<serde_json::Value>,
    #[serde(default)]
    x5u: Option<serde_json::Value>,
    #[serde(default)]
    x5c: Option<serde_json::Value>,
}

fn decode_segment(segment: &str) -> Result<Vec<u8>, TokenError> {
    // The URL-safe, no-padding engine rejects padding and non-zero trailing
    // bits: only the canonical encoding of each byte string is accepted.
    URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| TokenError::Malformed)
}

/// The parts of a compact JWS, split but not yet trusted.
#[derive(Debug)]
pub struct Unverified<'a> {
    /// The header.
    pub header: Header,
    signing_input: &'a str,
    payload: Vec<u8>,
    signature: Vec<u8>,
}

impl Unverified<'_> {
    /// The payload bytes. Not authenticated until [`Unverified::verify`].
    pub fn payload_unverified(&self) -> &[u8] {
        &self.payload
    }

    /// Checks the signature with `key`, whose algorithm must be the header's.
    ///
    /// # Errors
    ///
    /// [`TokenError::Algorithm`] if the key is for another algorithm,
    /// [`TokenError::BadSignature`] if the signature does not verify.
    pub fn verify(self, key: &VerifyingKey) -> Result<Vec<u8>, TokenError> {
        // The algorithm comes from the key; the header must merely agree.
        if key.algorithm() != self.header.alg {
            return Err(TokenError::Algorithm);
        }
        if key.verify(self.signing_input.as_bytes(), &self.signature) {
            Ok(self.payload)
        } else {
            Err(TokenError::BadSignature)
        }
    }
}

/// Splits and decodes a compact JWS, applying every check that needs no key:
/// size, exactly three canonical base64url segments, JSON header with a known
/// `alg` (never `none`), no `jwk`/`jku`/`x5u`/`x5c`/`crit`.
///
/// # Errors
///
/// The first [`TokenError`] found.
pub fn parse_compact(token: &str) -> Result<Unverified<'_>, TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::TooLarge);
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    if header_b64.is_empty() || signature_b64.is_empty() {
        return Err(TokenError::Malformed);
    }
    let raw: RawHeader =
        serde_json::from_slice(&decode_segment(header_b64)?).map_err(|_| TokenError::Malformed)?;
    if raw.jwk.is_some()
        || raw.jku.is_some()
        || raw.x5u.is_some()
        || raw.x5c.is_some()
        || raw.crit.is_some()
    {
        return Err(TokenError::ForbiddenHeader);
    }
    let alg = Algorithm::parse(&raw.alg).ok_or(TokenError::Algorithm)?;
    let payload = decode_segment(payload_b64)?;
    let signature = decode_segment(signature_b64)?;
    let signing_input = &token[..header_b64.len() + 1 + payload_b64.len()];
    Ok(Unverified {
        header: Header {
            alg,
            typ: raw.typ,
            kid: raw.kid,
        },
        signing_input,
        payload,
        signature,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7515, Appendix A.1 (HS256).
    const A1_TOKEN: &str = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const A1_KEY: &str =
        "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";
    // RFC 7515, Appendix A.2 (RS256).
    const A2_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";
    const A2_N: &str = "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ";
    // RFC 7515, Appendix A.3 (ES256).
    const A3_TOKEN: &str = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";
    const A3_X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
    const A3_Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";
    // RFC 8037, Appendix A.4 (Ed25519, deterministic).
    const ED_TOKEN: &str = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";
    const ED_D: &str = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
    const ED_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

    fn b64(s: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(s).unwrap()
    }

    #[test]
    fn rfc7515_a1_hs256_verifies_and_resigns_identically() {
        let key = VerifyingKey::hs256(&b64(A1_KEY)).unwrap();
        let payload = parse_compact(A1_TOKEN).unwrap().verify(&key).unwrap();
        assert!(payload.starts_with(b"{\"iss\":\"joe\""));
        let input = A1_TOKEN.rsplit_once('.').unwrap().0;
        let sig = SigningKey::Hs256(b64(A1_KEY))
            .sign(input.as_bytes())
            .unwrap();
        assert_eq!(
            URL_SAFE_NO_PAD.encode(sig),
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
        );
    }

    #[test]
    fn rfc7515_a2_rs256_verifies() {
        let n = rsa::BoxedUint::from_be_slice_vartime(&b64(A2_N));
        let e = rsa::BoxedUint::from_be_slice_vartime(&b64("AQAB"));
        let key = VerifyingKey::Rs256(Box::new(rsa::PublicKey::new(n, e).unwrap()));
        assert!(parse_compact(A2_TOKEN).unwrap().verify(&key).is_ok());
    }

    #[test]
    fn rfc7515_a3_es256_verifies() {
        let key = crate::jwk::Jwk::ec_p256(A3_X, A3_Y)
            .verifying_key()
            .unwrap();
        assert!(parse_compact(A3_TOKEN).unwrap().verify(&key).is_ok());
    }

    #[test]
    fn rfc8037_ed25519_verifies_and_resigns_identically() {
        let seed: [u8; 32] = b64(ED_D).try_into().unwrap();
        let signing = SigningKey::EdDsa(ed25519_dalek::SigningKey::from_bytes(&seed));
        let VerifyingKey::EdDsa(public) = signing.verifying_key() else {
            unreachable!()
        };
        assert_eq!(URL_SAFE_NO_PAD.encode(public.to_bytes()), ED_X);
        let payload = parse_compact(ED_TOKEN)
            .unwrap()
            .verify(&signing.verifying_key())
            .unwrap();
        assert_eq!(payload, b"Example of Ed25519 signing");
        let input = ED_TOKEN.rsplit_once('.').unwrap().0;
        let sig = signing.sign(input.as_bytes()).unwrap();
        assert_eq!(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig)), ED_TOKEN);
    }

    #[test]
    fn a_tampered_signature_or_payload_fails() {
        let key = VerifyingKey::hs256(&b64(A1_KEY)).unwrap();
        let mut flipped = A1_TOKEN.to_owned();
        flipped.replace_range(flipped.len() - 2.., "Yk");
        assert_ne!(flipped, A1_TOKEN);
        assert_eq!(
            parse_compact(&flipped).unwrap().verify(&key).unwrap_err(),
            TokenError::BadSignature
        );
    }

    #[test]
    fn generated_keys_sign_and_verify_for_every_algorithm() {
        for alg in [Algorithm::HS256, Algorithm::EdDSA, Algorithm::ES256] {
            let key = SigningKey::generate(alg).unwrap();
            let token = sign_compact(&key, "k1", "at+jwt", b"{}").unwrap();
            let parsed = parse_compact(&token).unwrap();
            assert_eq!(parsed.header.kid.as_deref(), Some("k1"));
            assert_eq!(parsed.verify(&key.verifying_key()).unwrap(), b"{}");
        }
    }

    #[test]
    fn short_hmac_secrets_are_refused() {
        assert_eq!(
            VerifyingKey::hs256(&[7u8; 31]).unwrap_err(),
            TokenError::Key
        );
    }
}
