//! Access tokens for tessera: JWS compact serialisation (RFC 7515) with the
//! four algorithms tessera signs with (HS256, EdDSA, ES256, RS256), strict
//! verification as RFC 8725 asks, key sets with rotation, and JWKS.
//!
//! Why not `jsonwebtoken`: it ignores `crit` and future `iat`, cannot
//! generate keys or export a JWKS, and parses the header twice when the
//! extra checks are bolted on. The signature primitives are RustCrypto's
//! (`hmac`, `ed25519-dalek`, `p256`, `rsa`); this crate only does the JOSE
//! framing and the checks, and its output is tested against `jsonwebtoken`
//! and PyJWT.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod claims;
pub mod jwk;
pub mod jws;
pub mod keyset;

pub use claims::{AccessClaims, Validation};
pub use jws::{Algorithm, SigningKey, TokenError, VerifyingKey};
pub use keyset::{KeyEntry, KeySet};
