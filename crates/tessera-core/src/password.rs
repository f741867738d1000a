//! Password hashing and verification.
//!
//! New hashes are argon2id at the OWASP parameters (m = 19456 KiB, t = 2,
//! p = 1) as PHC strings. Imported bcrypt hashes (`$2a$`, `$2b$`, `$2y$`) are
//! verified too, and [`Verification::Valid`] tells the caller to rehash them.
//!
//! Passwords are normalised before they are hashed or checked, as RFC 8265's
//! OpaqueString profile says (and NIST SP 800-63B asks for): every non-ASCII
//! space becomes U+0020 and the text is put in NFC, so a password typed on
//! another keyboard or system (`é` as one code point or as `e` + accent)
//! is the same password. A hash made before normalisation still verifies:
//! when the normalised form does not match and differs from the text as
//! typed, that is checked too, and a match asks for a rehash.
//!
//! Hashing is CPU-bound for tens of milliseconds: callers on an async runtime
//! must run it on a blocking thread (the server does, with bounded concurrency).

use std::fmt;

use argon2::password_hash::phc;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use thiserror::Error;
use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// Shortest password accepted when one is set.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password accepted when one is set; longer ones are never truncated.
pub const MAX_PASSWORD_CHARS: usize = 1024;

/// A plaintext password. Its `Debug` output is redacted.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    /// Wraps a plaintext password.
    pub fn new(plaintext: impl Into<String>) -> Self {
        Self(plaintext.into())
    }

    /// Checks the rules for a *new* password: 8 to 1024 characters once
    /// normalised, and no control characters (OpaqueString refuses them:
    /// they cannot be typed the same way twice).
    ///
    /// # Errors
    ///
    /// [`PasswordError::Policy`] with the rule that was broken.
    pub fn check_policy(&self) -> Result<(), PasswordError> {
        let normalized = self.normalized();
        if normalized.chars().any(char::is_control) {
            return Err(PasswordError::Policy(
                "a password may not contain control characters".into(),
            ));
        }
        let chars = normalized.chars().count();
        if chars < MIN_PASSWORD_CHARS {
            return Err(PasswordError::Policy(format!(
                "a password needs at least {MIN_PASSWORD_CHARS} characters"
            )));
        }
        if chars > MAX_PASSWORD_CHARS {
            return Err(PasswordError::Policy(format!(
                "a password may have at most {MAX_PASSWORD_CHARS} characters"
            )));
        }
        Ok(())
    }

    /// The password as it is hashed: non-ASCII spaces mapped to U+0020,
    /// then NFC (RFC 8265 OpaqueString).
    fn normalized(&self) -> String {
        self.0
            .chars()
            .map(|c| {
                if !c.is_ascii() && c.general_category() == GeneralCategory::SpaceSeparator {
                    ' '
                } else {
                    c
                }
            })
            .nfc()
            .collect()
    }

    /// The forms to check, normalised first; the text as typed too when it
    /// differs (hashes made before normalisation).
    fn candidates(&self) -> Vec<Vec<u8>> {
        let normalized = self.normalized();
        if normalized == self.0 {
            vec![normalized.into_bytes()]
        } else {
            vec![normalized.into_bytes(), self.0.as_bytes().to_vec()]
        }
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// A stored password hash: an argon2 PHC string or a bcrypt hash.
/// Its `Debug` output shows only the scheme.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// Accepts a hash string in a format tessera can verify.
    ///
    /// # Errors
    ///
    /// [`PasswordError::UnsupportedHash`] for anything but argon2 PHC strings
    /// and `$2a$`/`$2b$`/`$2y$` bcrypt hashes.
    pub fn parse(hash: &str) -> Result<Self, PasswordError> {
        match Scheme::of(hash) {
            Scheme::Argon2 if phc::PasswordHash::new(hash).is_ok() => Ok(Self(hash.to_owned())),
            Scheme::Bcrypt if hash.parse::<bcrypt::HashParts>().is_ok() => {
                Ok(Self(hash.to_owned()))
            }
            _ => Err(PasswordError::UnsupportedHash),
        }
    }

    /// Wraps a hash read back from a store that only ever holds hashes it
    /// validated on the way in.
    pub fn from_trusted(hash: String) -> Self {
        Self(hash)
    }

    /// The hash string, for storing.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PasswordHash({:?}, <redacted>)", Scheme::of(&self.0))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Argon2,
    Bcrypt,
    Unknown,
}

impl Scheme {
    fn of(hash: &str) -> Self {
        if hash.starts_with("$argon2") {
            Self::Argon2
        } else if ["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p)) {
            Self::Bcrypt
        } else {
            Self::Unknown
        }
    }
}

/// What went wrong with a password or a hash.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PasswordError {
    /// A new password breaks the password rules.
    #[error("{0}")]
    Policy(String),
    /// The hash is in a format tessera cannot verify.
    #[error("unsupported password hash format (expected argon2 PHC or bcrypt $2a$/$2b$/$2y$)")]
    UnsupportedHash,
    /// The argon2 parameters are out of range.
    #[error("invalid argon2 parameters: {0}")]
    Parameters(String),
    /// Hashing itself failed.
    #[error("password hashing failed: {0}")]
    Hashing(String),
}

/// The outcome of checking a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// The password matches. `needs_rehash` is set when the stored hash is not
    /// argon2id at the current parameters (e.g. an imported bcrypt hash).
    Valid {
        /// Store a fresh hash of this password.
        needs_rehash: bool,
    },
    /// The password does not match, or there was no user to check against.
    Invalid,
}

/// Hashes and verifies passwords with fixed argon2id parameters.
#[derive(Clone)]
pub struct PasswordHasher {
    argon2: Argon2<'static>,
    params: Params,
    dummy: PasswordHash,
}

impl fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("m_cost_kib", &self.params.m_cost())
            .field("t_cost", &self.params.t_cost())
            .field("p_cost", &self.params.p_cost())
            .finish()
    }
}

impl PasswordHasher {
    /// argon2id at the OWASP Password Storage Cheat Sheet parameters:
    /// 19 MiB of memory, 2 iterations, 1 lane.
    pub fn owasp() -> Self {
        Self::new(19_456, 2, 1).expect("OWASP parameters are valid")
    }

    /// argon2id with explicit parameters (memory in KiB, iterations, lanes).
    ///
    /// Computes one hash up front: the dummy that unknown users are verified
    /// against, so that "no such user" costs the same as "wrong password".
    ///
    /// # Errors
    ///
    /// [`PasswordError::Parameters`] when argon2 refuses the parameters.
    pub fn new(m_cost_kib: u32, t_cost: u32, p_cost: u32) -> Result<Self, PasswordError> {
        let params = Params::new(m_cost_kib, t_cost, p_cost, None)
            .map_err(|e| PasswordError::Parameters(e.to_string()))?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let mut hasher = Self {
            argon2,
            params,
            dummy: PasswordHash(String::new()),
        };
        hasher.dummy = hasher.hash(&Password::new("tessera dummy password for timing"))?;
        Ok(hasher)
    }

    /// Hashes a password with a fresh random salt.
    ///
    /// # Errors
    ///
    /// [`PasswordError::Hashing`] if argon2 fails (it does not for valid parameters).
    pub fn hash(&self, password: &Password) -> Result<PasswordHash, PasswordError> {
        self.argon2
            .hash_password(password.normalized().as_bytes())
            .map(|h| PasswordHash(h.to_string()))
            .map_err(|e| PasswordError::Hashing(e.to_string()))
    }

    /// Checks `password` against `stored`. With `stored = None` (no such user)
    /// it verifies against a dummy hash and answers [`Verification::Invalid`],
    /// taking as long as a wrong password for a real user does.
    ///
    /// Each form of the password (see the module doc) is checked in turn;
    /// an unknown user costs as many dummy checks as a wrong password for a
    /// real one, so a password that needs normalising tells nothing either.
    pub fn verify(&self, password: &Password, stored: Option<&PasswordHash>) -> Verification {
        let candidates = password.candidates();
        let Some(stored) = stored else {
            for candidate in &candidates {
                let _ = self.verify_argon2(candidate, &self.dummy);
            }
            return Verification::Invalid;
        };
        for (index, candidate) in candidates.iter().enumerate() {
            let matches = match Scheme::of(&stored.0) {
                Scheme::Argon2 => self.verify_argon2(candidate, stored),
                // The non-truncating variant refuses passwords over bcrypt's
                // 72-byte limit instead of silently checking a prefix.
                Scheme::Bcrypt => {
                    bcrypt::non_truncating_verify(candidate, &stored.0).unwrap_or(false)
                }
                Scheme::Unknown => {
                    let _ = self.verify_argon2(candidate, &self.dummy);
                    false
                }
            };
            if matches {
                return Verification::Valid {
                    // A match as typed: the hash predates normalisation.
                    needs_rehash: index > 0 || self.needs_rehash(stored),
                };
            }
        }
        Verification::Invalid
    }

    fn verify_argon2(&self, password: &[u8], stored: &PasswordHash) -> bool {
        phc::PasswordHash::new(&stored.0)
            .map(|parsed| self.argon2.verify_password(password, &parsed).is_ok())
            .unwrap_or(false)
    }

    /// Whether `stored` is anything but argon2id at this hasher's parameters.
    pub fn needs_rehash(&self, stored: &PasswordHash) -> bool {
        let Ok(parsed) = phc::PasswordHash::new(&stored.0) else {
            return true;
        };
        if parsed.algorithm.as_str() != "argon2id" {
            return true;
        }
        match Params::try_from(&parsed) {
            Ok(p) => {
                p.m_cost() != self.params.m_cost()
                    || p.t_cost() != self.params.t_cost()
                    || p.p_cost() != self.params.p_cost()
            }
            Err(_) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast() -> PasswordHasher {
        PasswordHasher::new(1024, 1, 1).unwrap()
    }

    #[test]
    fn hashes_are_argon2id_phc_strings_with_the_configured_parameters() {
        let hash = PasswordHasher::owasp()
            .hash(&Password::new("correct horse"))
            .unwrap();
        assert!(
            hash.as_str().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{}",
            hash.as_str()
        );
    }

    #[test]
    fn verifies_the_right_password_only() {
        let h = fast();
        let hash = h.hash(&Password::new("correct horse")).unwrap();
        assert_eq!(
            h.verify(&Password::new("correct horse"), Some(&hash)),
            Verification::Valid {
                needs_rehash: false
            }
        );
        assert_eq!(
            h.verify(&Password::new("correct hors"), Some(&hash)),
            Verification::Invalid
        );
        assert_eq!(
            h.verify(&Password::new("correct horse"), None),
            Verification::Invalid
        );
    }

    #[test]
    fn long_passwords_are_not_truncated() {
        let h = fast();
        let long = "p".repeat(200);
        let hash = h.hash(&Password::new(long.clone())).unwrap();
        let mut other = long.clone();
        other.push('q');
        assert_eq!(
            h.verify(&Password::new(other), Some(&hash)),
            Verification::Invalid
        );
        assert!(matches!(
            h.verify(&Password::new(long), Some(&hash)),
            Verification::Valid { .. }
        ));
    }

    #[test]
    fn bcrypt_hashes_verify_and_ask_for_a_rehash() {
        let h = fast();
        let bcrypt_hash = bcrypt::hash("hunter2hunter2", 4).unwrap();
        let stored = PasswordHash::parse(&bcrypt_hash).unwrap();
        assert_eq!(
            h.verify(&Password::new("hunter2hunter2"), Some(&stored)),
            Verification::Valid { needs_rehash: true }
        );
        assert_eq!(
            h.verify(&Password::new("hunter2"), Some(&stored)),
            Verification::Invalid
        );
    }

    #[test]
    fn bcrypt_never_checks_only_a_72_byte_prefix() {
        let h = fast();
        let long = "b".repeat(72);
        let stored = PasswordHash::parse(&bcrypt::hash(&long, 4).unwrap()).unwrap();
        let longer = format!("{long}extra");
        assert_eq!(
            h.verify(&Password::new(longer), Some(&stored)),
            Verification::Invalid
        );
    }

    #[test]
    fn other_parameters_ask_for_a_rehash() {
        let stored = fast().hash(&Password::new("x")).unwrap();
        assert!(PasswordHasher::owasp().needs_rehash(&stored));
    }

    #[test]
    fn unknown_hash_formats_are_refused() {
        for bad in [
            "",
            "plaintext",
            "$1$abc$def",
            "$argon2id$garbage",
            "$2b$04$short",
        ] {
            assert_eq!(
                PasswordHash::parse(bad),
                Err(PasswordError::UnsupportedHash),
                "{bad}"
            );
        }
    }

    #[test]
    fn debug_output_redacts_passwords_and_hashes() {
        let hash = fast().hash(&Password::new("secret-pw")).unwrap();
        assert!(!format!("{:?}", Password::new("secret-pw")).contains("secret"));
        assert!(!format!("{hash:?}").contains(hash.as_str()));
    }

    #[test]
    fn policy_bounds_new_passwords() {
        assert!(Password::new("short").check_policy().is_err());
        assert!(Password::new("long enough").check_policy().is_ok());
        assert!(Password::new("x".repeat(1025)).check_policy().is_err());
    }

    #[test]
    fn policy_refuses_control_characters() {
        assert!(Password::new("long enough\u{7}").check_policy().is_err());
        assert!(Password::new("long\tenough").check_policy().is_err());
    }

    const NFC: &str = "jos\u{e9} p\u{e4}sswort";
    const NFD: &str = "jose\u{301} pa\u{308}sswort";

    #[test]
    fn the_same_password_typed_another_way_verifies() {
        let hasher = fast();
        let hash = hasher.hash(&Password::new(NFC)).unwrap();
        for typed in [
            NFC,
            NFD,
            "jos\u{e9}\u{a0}p\u{e4}sswort",
            "jos\u{e9}\u{3000}pa\u{308}sswort",
        ] {
            assert_eq!(
                hasher.verify(&Password::new(typed), Some(&hash)),
                Verification::Valid {
                    needs_rehash: false
                },
                "{typed:?}"
            );
        }
        let from_nfd = hasher.hash(&Password::new(NFD)).unwrap();
        assert!(matches!(
            hasher.verify(&Password::new(NFC), Some(&from_nfd)),
            Verification::Valid { .. }
        ));
        assert_eq!(
            hasher.verify(&Password::new("jose passwort"), Some(&hash)),
            Verification::Invalid,
            "normalising does not fold accents away"
        );
    }

    #[test]
    fn a_hash_made_before_normalisation_verifies_and_asks_for_a_rehash() {
        let hasher = fast();
        let raw = hasher.argon2.hash_password(NFD.as_bytes()).unwrap();
        let legacy = PasswordHash::parse(&raw.to_string()).unwrap();
        assert_eq!(
            hasher.verify(&Password::new(NFD), Some(&legacy)),
            Verification::Valid { needs_rehash: true }
        );
        let bcrypt = PasswordHash::parse(&bcrypt::hash(NFD, 4).unwrap()).unwrap();
        assert_eq!(
            hasher.verify(&Password::new(NFD), Some(&bcrypt)),
            Verification::Valid { needs_rehash: true }
        );
    }
}
