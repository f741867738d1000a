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

use std::collections::HashSet;
use std::fmt;
use std::sync::LazyLock;

use argon2::password_hash::phc;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use sha1::{Digest as _, Sha1};
use thiserror::Error;
use unicode_normalization::UnicodeNormalization;

use crate::user::Email;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// Shortest password accepted when one is set, and the lowest minimum a
/// [`PasswordPolicy`] may have (NIST SP 800-63B, single-factor).
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

    /// Checks the default [`PasswordPolicy`] for a *new* password, with no
    /// address to compare it with.
    ///
    /// # Errors
    ///
    /// [`PasswordError::Policy`] with the rule that was broken.
    pub fn check_policy(&self) -> Result<(), PasswordError> {
        PasswordPolicy::default()
            .check(self, None)
            .map_err(PasswordError::from)
    }

    /// The k-anonymity range key of this password for a breached-password
    /// service (Have I Been Pwned's range API): the upper-case hex SHA-1 of
    /// the normalised password, split after 5 characters. Only the prefix
    /// leaves the process; the suffix is compared locally.
    pub fn breach_range_key(&self) -> (String, String) {
        let digest = Sha1::digest(self.normalized().as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02X}")).collect();
        let (prefix, suffix) = hex.split_at(5);
        (prefix.to_owned(), suffix.to_owned())
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

/// Common passwords of 8 or more characters, lower-cased, most common first
/// (zxcvbn's list; `data/README.md` says where it comes from).
const COMMON_PASSWORDS: &str = include_str!("../data/common-passwords.txt");

fn common_passwords() -> &'static HashSet<&'static str> {
    static SET: LazyLock<HashSet<&'static str>> =
        LazyLock::new(|| COMMON_PASSWORDS.lines().filter(|l| !l.is_empty()).collect());
    &SET
}

/// The rules a *new* password must meet (NIST SP 800-63B §5.1.1.2): a
/// length between a minimum (at least 8) and 1024 characters once
/// normalised, no control characters, not a common password (compared
/// case-insensitively with a list shipped in the binary), and not containing
/// the local part of the account's address (when it has 3 or more
/// characters). No composition rules. Never applied at login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordPolicy {
    min_length: usize,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_length: MIN_PASSWORD_CHARS,
        }
    }
}

/// Why a new password was refused: which rule it broke.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WeakPassword {
    /// Shorter than the minimum.
    #[error("a password needs at least {0} characters")]
    TooShort(usize),
    /// Longer than [`MAX_PASSWORD_CHARS`].
    #[error("a password may have at most {MAX_PASSWORD_CHARS} characters")]
    TooLong,
    /// Holds a control character.
    #[error("a password may not contain control characters")]
    ControlCharacter,
    /// On the list of common passwords.
    #[error("this password is one of the most common passwords; choose another")]
    Common,
    /// Contains the local part of the account's address.
    #[error("a password may not contain the account's e-mail name")]
    ContainsEmail,
    /// Found in a breached-password corpus.
    #[error("this password appears in known data breaches; choose another")]
    Breached,
}

impl From<WeakPassword> for PasswordError {
    fn from(weak: WeakPassword) -> Self {
        Self::Policy(weak.to_string())
    }
}

/// A minimum password length below [`MIN_PASSWORD_CHARS`] or above
/// [`MAX_PASSWORD_CHARS`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "password_min_length must be between {MIN_PASSWORD_CHARS} and {MAX_PASSWORD_CHARS} (got {0})"
)]
pub struct InvalidPasswordPolicy(pub usize);

impl PasswordPolicy {
    /// A policy with this minimum length.
    ///
    /// # Errors
    ///
    /// [`InvalidPasswordPolicy`] below 8 (NIST's floor for a password that
    /// is the only factor) or above the maximum.
    pub fn new(min_length: usize) -> Result<Self, InvalidPasswordPolicy> {
        if (MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&min_length) {
            Ok(Self { min_length })
        } else {
            Err(InvalidPasswordPolicy(min_length))
        }
    }

    /// The shortest password accepted, in characters.
    pub fn min_length(&self) -> usize {
        self.min_length
    }

    /// Checks a new password, for the account at `email` if known. Cheap
    /// (no hashing, one set lookup): fine on an async worker.
    ///
    /// # Errors
    ///
    /// The first rule the password breaks.
    pub fn check(&self, password: &Password, email: Option<&Email>) -> Result<(), WeakPassword> {
        let normalized = password.normalized();
        if normalized.chars().any(char::is_control) {
            return Err(WeakPassword::ControlCharacter);
        }
        let chars = normalized.chars().count();
        if chars < self.min_length {
            return Err(WeakPassword::TooShort(self.min_length));
        }
        if chars > MAX_PASSWORD_CHARS {
            return Err(WeakPassword::TooLong);
        }
        let folded = normalized.to_lowercase();
        if common_passwords().contains(folded.as_str()) {
            return Err(WeakPassword::Common);
        }
        if let Some((local, _)) = email.and_then(|e| e.as_str().split_once('@'))
            && local.chars().count() >= 3
            && folded.contains(&local.to_lowercase())
        {
            return Err(WeakPassword::ContainsEmail);
        }
        Ok(())
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

    fn email(raw: &str) -> Email {
        Email::parse(raw).unwrap()
    }

    #[test]
    fn the_minimum_is_a_setting_no_lower_than_8() {
        assert!(PasswordPolicy::new(7).is_err());
        assert!(PasswordPolicy::new(1025).is_err());
        let twelve = PasswordPolicy::new(12).unwrap();
        assert_eq!(
            twelve.check(&Password::new("elevenchars"), None),
            Err(WeakPassword::TooShort(12))
        );
        assert!(twelve.check(&Password::new("twelve chars"), None).is_ok());
        // Characters, not bytes: 8 accented letters are 8.
        assert!(
            PasswordPolicy::default()
                .check(
                    &Password::new("\u{e9}\u{e8}\u{ea}\u{eb}\u{e0}\u{e2}\u{f4}\u{fb}"),
                    None
                )
                .is_ok()
        );
    }

    #[test]
    fn common_passwords_are_refused_whatever_their_case() {
        let policy = PasswordPolicy::default();
        for common in ["password", "PASSWORD1", "Baseball", "qwerty123", "iloveyou"] {
            let result = policy.check(&Password::new(common), None);
            if common.len() >= 8 {
                assert_eq!(result, Err(WeakPassword::Common), "{common}");
            }
        }
        assert_eq!(
            policy.check(&Password::new("Password123"), None),
            Err(WeakPassword::Common)
        );
        assert!(
            policy
                .check(&Password::new("correct horse battery"), None)
                .is_ok()
        );
        // No composition rules: a long lower-case phrase is fine.
        assert!(
            policy
                .check(&Password::new("purple monkey dishwasher"), None)
                .is_ok()
        );
    }

    #[test]
    fn a_password_containing_the_address_name_is_refused() {
        let policy = PasswordPolicy::default();
        let alice = email("Alice.Smith@example.com");
        assert_eq!(
            policy.check(&Password::new("my ALICE.SMITH pass"), Some(&alice)),
            Err(WeakPassword::ContainsEmail)
        );
        assert!(
            policy
                .check(&Password::new("my ALICE.SMITH pass"), None)
                .is_ok()
        );
        // A local part under 3 characters is not compared.
        let al = email("al@example.com");
        assert!(
            policy
                .check(&Password::new("totally al secret"), Some(&al))
                .is_ok()
        );
        // Compared after normalisation: NFD and NFC are one name.
        let jose = email("jos\u{e9}@example.com");
        assert_eq!(
            policy.check(&Password::new("JOSE\u{301} rocks 2024"), Some(&jose)),
            Err(WeakPassword::ContainsEmail)
        );
    }

    #[test]
    fn the_breach_range_key_is_the_sha1_of_the_normalised_password() {
        // SHA-1("password") = 5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8
        let (prefix, suffix) = Password::new("password").breach_range_key();
        assert_eq!(prefix, "5BAA6");
        assert_eq!(suffix, "1E4C9B93F3F0682250B6CF8331B7EE68FD8");
        assert_eq!(
            Password::new(NFD).breach_range_key(),
            Password::new(NFC).breach_range_key()
        );
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
