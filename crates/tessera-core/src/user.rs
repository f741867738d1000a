//! Users: identity, e-mail address, roles and the disabled flag.

use std::fmt;
use std::str::FromStr;

use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46, verify_dns_length};
use precis_profiles::UsernameCaseMapped;
use precis_profiles::precis_core::profile::PrecisFastInvocation;
use precis_profiles::precis_core::{DerivedPropertyValue, FreeformClass, StringClass};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
use unicode_security::MixedScript;
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
    /// Not of the form `local@domain`, or longer than 254 characters, or a
    /// local part or domain that PRECIS or IDNA refuse.
    #[error("not a valid e-mail address")]
    Email,
    /// The address holds an invisible character: a format (Cf) or
    /// default-ignorable code point such as a zero-width space, U+FEFF or a
    /// bidi control, or a control character.
    #[error(
        "the e-mail address contains an invisible, formatting or direction-control character (such as a zero-width space)"
    )]
    EmailInvisible,
    /// Roles are 1–64 characters of `a-z 0-9 _ - . :`.
    #[error("role names are 1-64 characters of a-z, 0-9, '_', '-', '.', ':'")]
    Role,
    /// A page cursor that this system did not hand out.
    #[error("not a cursor from a previous page")]
    Cursor,
}

/// An e-mail address in its one canonical spelling, so that lookups are
/// exact and two spellings of one address cannot be two accounts.
///
/// The local part is enforced with the PRECIS `UsernameCaseMapped` profile
/// (RFC 8265: full- and half-width forms mapped to their plain forms, lower
/// case, NFC; spaces, symbols and other code points outside the
/// `IdentifierClass` refused). The domain is its IDNA A-label (UTS #46,
/// nontransitional, STD3 rules: `Bücher.example` and
/// `xn--bcher-kva.example` are one domain), without a trailing dot. Format,
/// control and default-ignorable code points (zero-width spaces, U+FEFF,
/// bidi controls) are refused anywhere rather than dropped.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct Email(String);

impl Serialize for Email {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// Longest address accepted, in bytes of the canonical form (RFC 5321's
/// path limit less the angle brackets).
const MAX_EMAIL_LEN: usize = 254;

/// Longest input [`Email::parse`] looks at, in bytes.
const MAX_RAW_EMAIL_LEN: usize = 1024;

impl Email {
    /// Normalises and checks an address (see the type's documentation).
    ///
    /// # Errors
    ///
    /// [`InvalidUserField::EmailInvisible`] for an invisible or control
    /// character anywhere; [`InvalidUserField::Email`] when it is not
    /// `local@domain`, too long, or refused by PRECIS or IDNA.
    pub fn parse(raw: &str) -> Result<Self, InvalidUserField> {
        // Room for every spelling of a 254-byte address (full-width forms
        // take 3 bytes, decomposed accents more); longer is not worth mapping.
        if raw.len() > MAX_RAW_EMAIL_LEN {
            return Err(InvalidUserField::Email);
        }
        let trimmed = raw.trim();
        if trimmed.chars().any(is_invisible) {
            return Err(InvalidUserField::EmailInvisible);
        }
        if trimmed.chars().any(char::is_whitespace) {
            return Err(InvalidUserField::Email);
        }
        let Some((local, domain)) = trimmed.split_once('@') else {
            return Err(InvalidUserField::Email);
        };
        if local.is_empty() || domain.is_empty() || domain.contains('@') {
            return Err(InvalidUserField::Email);
        }
        let local = UsernameCaseMapped::enforce(local).map_err(|_| InvalidUserField::Email)?;
        let domain = canonical_domain(domain).ok_or(InvalidUserField::Email)?;
        let normalised = format!("{local}@{domain}");
        if normalised.len() > MAX_EMAIL_LEN {
            return Err(InvalidUserField::Email);
        }
        Ok(Self(normalised))
    }

    /// Wraps an address this system validated before and carried in
    /// authenticated form (a sealed cookie) or stored; skips re-validation.
    /// A stored address may predate the current rules (see
    /// [`Email::is_canonical`]).
    pub fn from_sealed(normalised: String) -> Self {
        Self(normalised)
    }

    /// Whether this is the canonical spelling [`Email::parse`] gives: false
    /// for an address stored under older rules that a migration could not
    /// rewrite (another account already had its canonical spelling).
    pub fn is_canonical(&self) -> bool {
        Self::parse(&self.0).is_ok_and(|parsed| parsed == *self)
    }

    /// Whether the local part, or a label of the domain, mixes scripts
    /// (UTS #39 single-script test: `pаypal` with a Cyrillic `а`), the mark
    /// of an address made to look like another. A warning, not a refusal:
    /// such addresses exist and deliver mail.
    pub fn mixed_script(&self) -> bool {
        let Some((local, domain)) = self.0.split_once('@') else {
            return false;
        };
        let (unicode_domain, _) = idna::domain_to_unicode(domain);
        !local.is_single_script() || unicode_domain.split('.').any(|l| !l.is_single_script())
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A character that renders as nothing (or changes the rendering of what
/// surrounds it) and so cannot tell two addresses apart for a reader:
/// format characters (Cf: zero-width space and joiners, U+FEFF, bidi
/// controls, soft hyphen), controls, and the other default-ignorable code
/// points (variation selectors, Hangul fillers), which PRECIS's
/// `FreeformClass` refuses.
fn is_invisible(c: char) -> bool {
    c.general_category() == GeneralCategory::Format
        || c.is_control()
        || matches!(
            FreeformClass::default().get_value_from_char(c),
            DerivedPropertyValue::Disallowed
        )
}

/// The domain as its A-label (UTS #46 ToASCII, STD3 rules), without a
/// trailing dot; `None` if IDNA refuses it or a label is empty or too long.
fn canonical_domain(domain: &str) -> Option<String> {
    let ascii = Uts46::new()
        .to_ascii(
            domain.as_bytes(),
            AsciiDenyList::STD3,
            Hyphens::Allow,
            DnsLength::Ignore,
        )
        .ok()?;
    let ascii = ascii.strip_suffix('.').unwrap_or(&ascii);
    verify_dns_length(ascii, false).then(|| ascii.to_owned())
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

/// A user's address as a store holds it, for [`renormalise`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAddress {
    /// The user.
    pub id: UserId,
    /// The address as stored (normalised by the rules of its time).
    pub email: String,
    /// When the account was created.
    pub created_at: Timestamp,
}

/// An account whose stored address is not in its canonical spelling after
/// [`renormalise`]: another account holds that spelling, or the address no
/// longer parses. Such an account is left as it was (never merged or
/// deleted) for an operator to resolve; logins reach the holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AddressCollision {
    /// The account left with its old spelling.
    pub user: UserId,
    /// Its stored address.
    pub stored: String,
    /// The canonical spelling; `None` if the address no longer parses.
    pub canonical: Option<String>,
    /// The account that holds the canonical spelling, if any.
    pub holder: Option<UserId>,
}

/// What re-normalising stored addresses changes, and what it cannot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Renormalisation {
    /// Accounts whose stored address becomes its canonical spelling.
    /// Applying them in any order never takes a spelling another row holds.
    pub updates: Vec<(UserId, Email)>,
    /// Accounts that keep a non-canonical spelling.
    pub collisions: Vec<AddressCollision>,
}

/// Re-normalises stored addresses with the rules of [`Email::parse`].
///
/// Every group of accounts whose addresses are one canonical address gets
/// that address on one account: the one that already holds the canonical
/// spelling (its users' logins already reach it), else the oldest (by
/// creation, then id). The others keep their stored spelling and are
/// reported, as are addresses that no longer parse. Run on rows that are
/// already canonical, it changes nothing and reports the leftovers of
/// earlier runs.
pub fn renormalise(rows: &[StoredAddress]) -> Renormalisation {
    use std::collections::BTreeMap;
    let mut groups: BTreeMap<Email, Vec<&StoredAddress>> = BTreeMap::new();
    let mut plan = Renormalisation::default();
    for row in rows {
        match Email::parse(&row.email) {
            Ok(canonical) => groups.entry(canonical).or_default().push(row),
            Err(_) => plan.collisions.push(AddressCollision {
                user: row.id,
                stored: row.email.clone(),
                canonical: None,
                holder: None,
            }),
        }
    }
    for (canonical, mut members) in groups {
        members.sort_by_key(|m| (m.email != canonical.as_str(), m.created_at, m.id));
        let holder = members[0];
        if holder.email != canonical.as_str() {
            plan.updates.push((holder.id, canonical.clone()));
        }
        for other in &members[1..] {
            plan.collisions.push(AddressCollision {
                user: other.id,
                stored: other.email.clone(),
                canonical: Some(canonical.as_str().to_owned()),
                holder: Some(holder.id),
            });
        }
    }
    plan
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

    /// Spellings of one address that used to be separate accounts
    /// (issue 11): each is one address, or is refused.
    #[test]
    fn every_spelling_of_one_address_is_one_address() {
        let same = [
            "jos\u{e9}@b\u{fc}cher.example",
            "jose\u{301}@bu\u{308}cher.example",
            "JOS\u{c9}@B\u{dc}CHER.EXAMPLE",
            "Jose\u{301}@Bu\u{308}cher.Example",
            "  jos\u{e9}@b\u{fc}cher.example\t",
            "\u{ff4a}\u{ff4f}\u{ff53}\u{e9}@b\u{fc}cher.example",
            "\u{ff2a}\u{ff2f}\u{ff33}\u{c9}@b\u{fc}cher.example",
            "jos\u{e9}@b\u{fc}cher.example.",
            "jos\u{e9}@xn--bcher-kva.example",
            "jos\u{e9}@XN--BCHER-KVA.EXAMPLE",
            "jos\u{e9}@xn--bcher-kva.example.",
            "jos\u{e9}@b\u{fc}cher\u{3002}example",
            "jos\u{e9}@\u{ff42}\u{fc}\u{ff43}\u{ff48}\u{ff45}\u{ff52}\u{ff0e}example",
        ];
        for spelling in same {
            assert_eq!(
                Email::parse(spelling).map(|e| e.as_str().to_owned()),
                Ok("jos\u{e9}@xn--bcher-kva.example".to_owned()),
                "{spelling:?}"
            );
        }
        let refused = [
            "jos\u{200b}\u{e9}@b\u{fc}cher.example",
            "\u{feff}jos\u{e9}@b\u{fc}cher.example",
            "jos\u{e9}@b\u{fc}ch\u{200b}er.example",
            "jos\u{e9}\u{202e}@b\u{fc}cher.example",
            "jo\u{ad}s\u{e9}@b\u{fc}cher.example",
            "jos\u{e9}\u{200d}@b\u{fc}cher.example",
            "jos\u{e9}\u{fe0f}@b\u{fc}cher.example",
        ];
        for spelling in refused {
            assert_eq!(
                Email::parse(spelling),
                Err(InvalidUserField::EmailInvisible),
                "{spelling:?}"
            );
        }
    }

    #[test]
    fn parsing_is_idempotent_and_ascii_addresses_keep_their_old_form() {
        for raw in [
            "alice@example.com",
            "a.b+tag@sub.example.org",
            "jos\u{e9}@xn--bcher-kva.example",
            "\u{7528}\u{6237}@\u{4f8b}\u{5b50}.\u{5e7f}\u{544a}",
            "stra\u{df}e@example.com",
        ] {
            let once = Email::parse(raw).unwrap();
            assert_eq!(Email::parse(once.as_str()).unwrap(), once, "{raw:?}");
            assert!(once.is_canonical());
        }
        // Addresses the old rules (trim, lower-case) stored stay as they were.
        for old in ["alice@example.com", "bob.smith+x@mail.example.co.uk"] {
            assert_eq!(Email::parse(old).unwrap().as_str(), old);
        }
        assert!(!Email::from_sealed("jose\u{301}@example.com".into()).is_canonical());
    }

    #[test]
    fn mixed_scripts_are_reported_not_refused() {
        // A Cyrillic "а" in a Latin name, in the local part or the domain.
        let spoof = Email::parse("p\u{430}ypal@example.com").unwrap();
        assert!(spoof.mixed_script());
        let spoof_domain = Email::parse("alice@p\u{430}ypal.com").unwrap();
        assert!(spoof_domain.mixed_script());
        for plain in [
            "alice@example.com",
            "jos\u{e9}@b\u{fc}cher.example",
            "\u{432}\u{430}\u{441}\u{44f}@example.com",
            "\u{7528}\u{6237}@\u{4f8b}\u{5b50}.\u{5e7f}\u{544a}",
        ] {
            assert!(!Email::parse(plain).unwrap().mixed_script(), "{plain:?}");
        }
    }

    fn stored(email: &str, created: i64) -> StoredAddress {
        StoredAddress {
            id: UserId::generate(),
            email: email.to_owned(),
            created_at: Timestamp::from_unix_millis(created),
        }
    }

    #[test]
    fn renormalising_gives_the_canonical_spelling_to_one_account_and_reports_the_rest() {
        let nfd_old = stored("jose\u{301}@example.com", 1);
        let fullwidth = stored("\u{ff4a}ose\u{301}@example.com", 2);
        let plain = stored("alice@example.com", 3);
        let unicode_domain = stored("bob@b\u{fc}cher.example", 4);
        let zwsp = stored("car\u{200b}ol@example.com", 5);
        let plan = renormalise(&[
            fullwidth.clone(),
            plain,
            nfd_old.clone(),
            unicode_domain.clone(),
            zwsp.clone(),
        ]);
        let mut updates = plan.updates.clone();
        updates.sort_by(|a, b| a.1.cmp(&b.1));
        assert_eq!(
            updates,
            vec![
                (
                    unicode_domain.id,
                    Email::parse("bob@xn--bcher-kva.example").unwrap()
                ),
                (nfd_old.id, Email::parse("jos\u{e9}@example.com").unwrap()),
            ]
        );
        assert_eq!(plan.collisions.len(), 2, "{:?}", plan.collisions);
        assert!(plan.collisions.contains(&AddressCollision {
            user: fullwidth.id,
            stored: fullwidth.email.clone(),
            canonical: Some("jos\u{e9}@example.com".into()),
            holder: Some(nfd_old.id),
        }));
        assert!(plan.collisions.contains(&AddressCollision {
            user: zwsp.id,
            stored: zwsp.email.clone(),
            canonical: None,
            holder: None,
        }));
    }

    #[test]
    fn the_account_holding_the_canonical_spelling_keeps_it() {
        let older_nfd = stored("jose\u{301}@example.com", 1);
        let newer_nfc = stored("jos\u{e9}@example.com", 2);
        let plan = renormalise(&[older_nfd.clone(), newer_nfc.clone()]);
        assert!(plan.updates.is_empty());
        assert_eq!(plan.collisions[0].user, older_nfd.id);
        assert_eq!(plan.collisions[0].holder, Some(newer_nfc.id));
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
            &format!("{}@example.com", "x".repeat(250)),
            &format!("{}@example.com", "\u{ff58}".repeat(400)),
            "alice@exa mple.com",
            "alice@exa_mple.com",
            "alice@.example.com",
            "alice@example..com",
            "al ice@example.com",
            "al\u{a0}ice@example.com",
            "\u{2603}@example.com",
            "alice@example.com..",
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
