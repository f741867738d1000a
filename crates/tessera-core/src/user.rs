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
    /// A page cursor that this system did not hand out.
    #[error("not a cursor from a previous page")]
    Cursor,
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

/// Most users one page of [`UserQuery`] holds.
pub const MAX_PAGE: usize = 500;

/// Where a page of users ends: the last user's (email, id). Opaque to
/// clients (base64url of `email` + `\n` + id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserCursor {
    /// E-mail address of the last user on the previous page.
    pub email: String,
    /// Id of that user.
    pub id: UserId,
}

impl UserCursor {
    /// The cursor after `user`.
    pub fn after(user: &User) -> Self {
        Self {
            email: user.email.as_str().to_owned(),
            id: user.id,
        }
    }

    /// The cursor as a client sees it.
    pub fn encode(&self) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!("{}\n{}", self.email, self.id))
    }

    /// Reads a cursor a client sent back.
    ///
    /// # Errors
    ///
    /// [`InvalidUserField::Cursor`] for anything [`UserCursor::encode`] did
    /// not produce.
    pub fn decode(raw: &str) -> Result<Self, InvalidUserField> {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(raw)
            .map_err(|_| InvalidUserField::Cursor)?;
        let text = String::from_utf8(bytes).map_err(|_| InvalidUserField::Cursor)?;
        let (email, id) = text.split_once('\n').ok_or(InvalidUserField::Cursor)?;
        Ok(Self {
            email: email.to_owned(),
            id: id.parse().map_err(|_| InvalidUserField::Cursor)?,
        })
    }
}

/// One page of the user list: filters, size and where to start. Users come
/// ordered by (email, id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserQuery {
    /// Only addresses starting with this (compared as stored: lower case).
    /// Characters are literal (no wildcards).
    pub email_prefix: Option<String>,
    /// Only users holding this role.
    pub role: Option<Role>,
    /// Only disabled (`true`) or enabled (`false`) users.
    pub disabled: Option<bool>,
    /// Only verified (`true`) or unverified (`false`) addresses.
    pub verified: Option<bool>,
    /// Most users on the page (1 to [`MAX_PAGE`]; stores clamp to that).
    pub limit: usize,
    /// Start after this user (`None`: from the first).
    pub after: Option<UserCursor>,
}

impl Default for UserQuery {
    fn default() -> Self {
        Self {
            email_prefix: None,
            role: None,
            disabled: None,
            verified: None,
            limit: 50,
            after: None,
        }
    }
}

impl UserQuery {
    /// The page size a store should use: `limit` within 1..=[`MAX_PAGE`].
    pub fn page_size(&self) -> usize {
        self.limit.clamp(1, MAX_PAGE)
    }

    /// Whether `user` passes the filters (not the cursor).
    pub fn matches(&self, user: &User) -> bool {
        self.email_prefix
            .as_deref()
            .is_none_or(|p| user.email.as_str().starts_with(p))
            && self.role.as_ref().is_none_or(|r| user.roles.contains(r))
            && self.disabled.is_none_or(|d| user.disabled == d)
            && self.verified.is_none_or(|v| user.email_verified == v)
    }

    /// Whether `user` comes after the cursor.
    pub fn is_after_cursor(&self, user: &User) -> bool {
        self.after
            .as_ref()
            .is_none_or(|c| (user.email.as_str(), user.id) > (c.email.as_str(), c.id))
    }
}

/// One page of users, and where the next starts (`None`: this was the last).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserPage {
    /// The users, ordered by (email, id).
    pub users: Vec<User>,
    /// The cursor of the next page.
    pub next: Option<UserCursor>,
}

impl UserPage {
    /// A page from up to `page_size + 1` matching users in order (a store
    /// reads one more than the page to learn whether another follows).
    pub fn from_rows(mut rows: Vec<User>, page_size: usize) -> Self {
        let more = rows.len() > page_size;
        rows.truncate(page_size);
        let next = if more {
            rows.last().map(UserCursor::after)
        } else {
            None
        };
        Self { users: rows, next }
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
