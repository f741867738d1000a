//! Users: identity, e-mail address, roles and the disabled flag.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use uuid::Uuid;

use crate::clock::Timestamp;
use crate::password::PasswordHash;

/// A user's stable, opaque identifier (a random UUID).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(Uuid);

impl UserId {
    /// A fresh random id.
    pub fn generate() -> Self {
        Self(Uuid::new_v4())
    }

    /// Wraps a UUID read back from a store.
    pub const fn from_uuid(uuid: Uuid) -> Self {
        Self(uuid)
    }

    /// The underlying UUID.
    pub const fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for UserId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

/// Why an e-mail address or a role name was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InvalidUserField {
    /// Not of the form `local@domain`, or longer than 254 characters.
    #[error("not a valid e-mail address")]
    Email,
    /// Roles are 1–64 characters of `a-z 0-9 _ - . :`.
    #[error("role names are 1-64 characters of a-z, 0-9, '_', '-', '.', ':'")]
    Role,
}

/// An e-mail address, trimmed and lower-cased so that lookups are exact.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct Email(String);

impl Serialize for Email {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl Email {
    /// Normalises and checks an address.
    ///
    /// # Errors
    ///
    /// [`InvalidUserField::Email`] when it is not `local@domain` or too long.
    pub fn parse(raw: &str) -> Result<Self, InvalidUserField> {
        let normalised = raw.trim().to_lowercase();
        let valid = normalised.len() <= 254
            && !normalised
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
            && matches!(normalised.split_once('@'), Some((local, domain))
                if !local.is_empty() && !domain.is_empty() && !domain.contains('@'));
        if valid {
            Ok(Self(normalised))
        } else {
            Err(InvalidUserField::Email)
        }
    }

    /// Wraps an address this system validated before and carried in
    /// authenticated form (a sealed cookie); skips re-validation.
    pub fn from_sealed(normalised: String) -> Self {
        Self(normalised)
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Email {
    type Error = InvalidUserField;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Email> for String {
    fn from(email: Email) -> Self {
        email.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A role name such as `admin`. Roles are plain labels; the server decides
/// what each one allows.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct Role(String);

impl Serialize for Role {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl Role {
    /// The role that may administer users.
    pub const ADMIN: &'static str = "admin";

    /// Checks a role name.
    ///
    /// # Errors
    ///
    /// [`InvalidUserField::Role`] unless it is 1–64 characters of `a-z 0-9 _ - . :`.
    pub fn parse(raw: &str) -> Result<Self, InvalidUserField> {
        let ok = (1..=64).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.:".contains(&b));
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidUserField::Role)
        }
    }

    /// Wraps a role this system validated before and carried in
    /// authenticated form (a sealed cookie); skips re-validation.
    pub fn from_sealed(name: String) -> Self {
        Self(name)
    }

    /// The role name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Role {
    type Error = InvalidUserField;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Role> for String {
    fn from(role: Role) -> Self {
        role.0
    }
}

/// Sorts and de-duplicates a set of roles, the canonical form stores keep.
pub fn normalise_roles(mut roles: Vec<Role>) -> Vec<Role> {
    roles.sort();
    roles.dedup();
    roles
}

/// A user account as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Stable identifier.
    pub id: UserId,
    /// Normalised e-mail address; unique.
    pub email: Email,
    /// Roles, sorted and without duplicates.
    pub roles: Vec<Role>,
    /// A disabled user cannot log in and has no live sessions.
    pub disabled: bool,
    /// Whether the user proved they receive mail at `email` (a verification
    /// link), or an operator vouched for the address.
    pub email_verified: bool,
    /// PHC string (argon2id, or an imported bcrypt hash).
    pub password_hash: PasswordHash,
    /// When the account was created.
    pub created_at: Timestamp,
}

impl User {
    /// Whether the user holds `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r.as_str() == role)
    }
}

/// What it takes to create a user.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Normalised e-mail address.
    pub email: Email,
    /// Initial roles.
    pub roles: Vec<Role>,
    /// The password hash (already computed, never the password).
    pub password_hash: PasswordHash,
    /// Whether the address is known to be the user's (see
    /// [`User::email_verified`]).
    pub email_verified: bool,
}

impl NewUser {
    /// Turns the request into a full record with a fresh id.
    pub fn into_user(self, now: Timestamp) -> User {
        User {
            id: UserId::generate(),
            email: self.email,
            roles: normalise_roles(self.roles),
            disabled: false,
            email_verified: self.email_verified,
            password_hash: self.password_hash,
            created_at: now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_is_trimmed_and_lowercased() {
        assert_eq!(
            Email::parse("  Alice@Example.COM ").unwrap().as_str(),
            "alice@example.com"
        );
    }

    #[test]
    fn email_without_local_or_domain_part_is_refused() {
        for bad in [
            "",
            "alice",
            "@example.com",
            "alice@",
            "a@b@c",
            "a b@c.d",
            &"x".repeat(255),
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn roles_allow_only_a_small_alphabet() {
        assert!(Role::parse("admin").is_ok());
        assert!(Role::parse("billing:read").is_ok());
        for bad in ["", "Admin", "a b", "x\n", &"r".repeat(65)] {
            assert!(Role::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn roles_are_normalised() {
        let roles = ["b", "a", "b"].map(|r| Role::parse(r).unwrap()).to_vec();
        let roles = normalise_roles(roles);
        assert_eq!(
            roles.iter().map(Role::as_str).collect::<Vec<_>>(),
            ["a", "b"]
        );
    }
}
