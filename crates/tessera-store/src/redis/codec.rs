//! How records are laid out in Redis hashes.
//!
//! A session is one Redis string (a hash would do, but a user agent is
//! longer than the 64 bytes up to which Redis keeps hashes compact, and a
//! session then costs twice the memory). The parts the scripts change sit
//! at known places:
//!
//! | bytes | content |
//! |---|---|
//! | 0 | layout version (2) |
//! | 1..17 | `last_seen` and `expires_at`, two big-endian i64 (ms) |
//! | 17..19 | length `n` of the roles section, big-endian u16 |
//! | 19..19+n | `0`/`1` (rotate flag), `0`/`1` (`email_verified`), then the roles, space-separated |
//! | next | the handle: a length byte, then the text; or `0x90` and the 16 bytes a generated handle encodes |
//! | rest | postcard: user id, e-mail, login time, absolute expiry, IP and user agent (compacted, see `compact.rs`), data (JSON, empty when none) |
//!
//! Layout 1, written before sessions carried `email_verified`, differs
//! only in the roles section, which has no verified flag; it still
//! decodes, as verified (sessions were only made for accounts an operator
//! created then, all of them verified). The user-copy script rewrites a
//! layout 1 record as layout 2.
//!
//! Families use `u`, `m` (e-mail, roles, times; the create-family script
//! reads the login time from it), `g` (generation), `c`/`p`
//! (current/previous hash) and `a` (rotated at). Revocations are short text
//! lines, also the messages on the revocation channel. A rotation alias is
//! the successor's 32-byte id hash followed by the end of its window in
//! decimal ms (the scripts read it too).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use fred::bytes::Bytes;
use fred::types::Value;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};
use tessera_core::{
    Email, FamilyId, Revocation, Role, SealedRevocation, Session, SessionHandle, SessionIdHash,
    StoreError, Timestamp, TokenFamily, UserId,
};
use uuid::Uuid;

use super::compact;

/// The fields of a hash as Redis returned them.
pub(crate) struct Fields(Vec<(Bytes, Bytes)>);

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("redis record: {what}"))
}

fn bytes_of(value: Value) -> Option<Bytes> {
    match value {
        Value::Bytes(b) => Some(b),
        Value::String(s) => Some(s.into_inner()),
        Value::Integer(n) => Some(Bytes::from(n.to_string())),
        _ => None,
    }
}

impl Fields {
    /// Reads an `HGETALL` answer (a RESP3 map or a flat RESP2 array).
    pub(crate) fn from_value(value: Value) -> Result<Self, StoreError> {
        let mut pairs = Vec::new();
        match value {
            Value::Null => {}
            Value::Map(map) => {
                for (k, v) in map.inner() {
                    pairs.push((k.into_bytes(), bytes_of(v).ok_or_else(|| corrupt("field"))?));
                }
            }
            Value::Array(items) => {
                let mut items = items.into_iter();
                while let (Some(k), Some(v)) = (items.next(), items.next()) {
                    pairs.push((
                        bytes_of(k).ok_or_else(|| corrupt("field name"))?,
                        bytes_of(v).ok_or_else(|| corrupt("field"))?,
                    ));
                }
            }
            other => return Err(corrupt(&format!("unexpected {:?}", other.kind()))),
        }
        Ok(Self(pairs))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn get(&self, name: &str) -> Option<&Bytes> {
        self.0
            .iter()
            .find(|(k, _)| k.as_ref() == name.as_bytes())
            .map(|(_, v)| v)
    }

    fn need(&self, name: &str) -> Result<&Bytes, StoreError> {
        self.get(name).ok_or_else(|| corrupt(name))
    }
}

/// Index members and their records, as the listing scripts return them
/// (member, record, member, record, ...).
pub(crate) fn records(value: Value) -> Result<Vec<(Bytes, Value)>, StoreError> {
    let items = match value {
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) => items,
        other => return Err(corrupt(&format!("unexpected {:?}", other.kind()))),
    };
    let mut out = Vec::with_capacity(items.len() / 2);
    let mut items = items.into_iter();
    while let (Some(member), Some(fields)) = (items.next(), items.next()) {
        let member = bytes_of(member).ok_or_else(|| corrupt("member"))?;
        out.push((member, fields));
    }
    Ok(out)
}

#[derive(Serialize, Deserialize)]
struct SessionRest<'a> {
    user: [u8; 16],
    email: &'a str,
    created_at: i64,
    absolute_expires_at: i64,
    /// See `compact.rs`.
    ip: Option<Vec<u8>>,
    /// See `compact.rs`.
    user_agent: Option<Vec<u8>>,
    data: &'a str,
}

const SESSION_LAYOUT: u8 = 2;
/// The layout before the roles section carried the verified flag.
const SESSION_LAYOUT_1: u8 = 1;
const HEADER: usize = 19;

/// The `m` field of a family. The create-family script decodes the
/// postcard up to `created_at` (`FAMILY_CREATED_AT` in `scripts.rs`): keep
/// the first three fields as they are.
#[derive(Serialize, Deserialize)]
struct FamilyMeta<'a> {
    email: &'a str,
    #[serde(borrow)]
    roles: Vec<&'a str>,
    created_at: i64,
    expires_at: i64,
}

fn times(last_seen: Timestamp, expires_at: Timestamp) -> Vec<u8> {
    let mut t = Vec::with_capacity(16);
    t.extend_from_slice(&last_seen.unix_millis().to_be_bytes());
    t.extend_from_slice(&expires_at.unix_millis().to_be_bytes());
    t
}

/// A session as the string Redis keeps.
pub(crate) fn encode_session(session: &Session) -> Result<Vec<u8>, StoreError> {
    let roles = roles_section(session.rotate, session.email_verified, &session.roles);
    let handle = handle_section(&session.handle)?;
    let roles_len = u16::try_from(roles.len()).map_err(|_| corrupt("roles"))?;
    let data = data_field(&session.data)?;
    let rest = SessionRest {
        user: *session.user_id.as_uuid().as_bytes(),
        email: session.email.as_str(),
        created_at: session.created_at.unix_millis(),
        absolute_expires_at: session.absolute_expires_at.unix_millis(),
        ip: session.ip.as_deref().map(compact::compact_ip),
        user_agent: session
            .user_agent
            .as_deref()
            .map(compact::compact_user_agent),
        data: &data,
    };
    let mut out = Vec::with_capacity(128 + data.len());
    out.push(SESSION_LAYOUT);
    out.extend_from_slice(&times(session.last_seen, session.expires_at));
    out.extend_from_slice(&roles_len.to_be_bytes());
    out.extend_from_slice(roles.as_bytes());
    out.extend_from_slice(&handle);
    postcard::to_io(&rest, &mut out).map_err(|e| corrupt(&e.to_string()))?;
    Ok(out)
}

/// Marks a handle kept as the raw bytes it encodes (6 bytes fewer per
/// session, which keeps a typical session in a smaller allocation class).
const RAW_HANDLE: u8 = 0x80;

/// A handle as stored: `0x80 | 16` and the 16 bytes of a generated handle
/// (canonical base64url of 16 bytes), or its length (< 128) and its text.
pub(crate) fn handle_section(handle: &SessionHandle) -> Result<Vec<u8>, StoreError> {
    let text = handle.as_str();
    let mut raw = [0u8; 16];
    if text.len() == 22
        && URL_SAFE_NO_PAD.decode_slice(text, &mut raw) == Ok(16)
        && URL_SAFE_NO_PAD.encode(raw) == text
    {
        let mut out = vec![RAW_HANDLE | 16];
        out.extend_from_slice(&raw);
        return Ok(out);
    }
    let len = u8::try_from(text.len())
        .ok()
        .filter(|&n| n < RAW_HANDLE)
        .ok_or_else(|| corrupt("handle longer than 127 bytes"))?;
    let mut out = vec![len];
    out.extend_from_slice(text.as_bytes());
    Ok(out)
}

/// The activity times, as a touch writes them at offset 1.
pub(crate) fn touch_field(last_seen: Timestamp, expires_at: Timestamp) -> Value {
    Value::Bytes(times(last_seen, expires_at).into())
}

/// The roles section: rotate flag, verified flag and roles.
pub(crate) fn roles_section(rotate: bool, email_verified: bool, roles: &[Role]) -> String {
    let mut r = String::from(if rotate { "1" } else { "0" });
    r.push(if email_verified { '1' } else { '0' });
    for (i, role) in roles.iter().enumerate() {
        if i > 0 {
            r.push(' ');
        }
        r.push_str(role.as_str());
    }
    r
}

/// An e-mail address as the postcard part of a session holds it (varint
/// length, text), for the user-copy script to splice in.
pub(crate) fn email_field(email: &Email) -> Result<Vec<u8>, StoreError> {
    postcard::to_stdvec(email.as_str()).map_err(|e| corrupt(&e.to_string()))
}

/// The data as stored ('' when empty).
pub(crate) fn data_field(data: &Map<String, Json>) -> Result<String, StoreError> {
    if data.is_empty() {
        return Ok(String::new());
    }
    serde_json::to_string(data).map_err(|e| corrupt(&e.to_string()))
}

/// A session from the string Redis keeps.
pub(crate) fn decode_session(id: SessionIdHash, bytes: &[u8]) -> Result<Session, StoreError> {
    if bytes.len() < HEADER || !matches!(bytes[0], SESSION_LAYOUT | SESSION_LAYOUT_1) {
        return Err(corrupt("session layout"));
    }
    let at = |i: usize| {
        Timestamp::from_unix_millis(i64::from_be_bytes(
            bytes[i..i + 8].try_into().expect("8 bytes"),
        ))
    };
    let roles_end = HEADER + usize::from(u16::from_be_bytes([bytes[17], bytes[18]]));
    let section = bytes
        .get(HEADER..roles_end)
        .ok_or_else(|| corrupt("roles"))?;
    let section = std::str::from_utf8(section).map_err(|_| corrupt("roles"))?;
    let flag = |i: usize| match section.as_bytes().get(i) {
        Some(b'0') => Ok(false),
        Some(b'1') => Ok(true),
        _ => Err(corrupt("roles")),
    };
    let rotate = flag(0)?;
    let (email_verified, role_text) = if bytes[0] == SESSION_LAYOUT_1 {
        (true, &section[1..])
    } else {
        (flag(1)?, &section[2..])
    };
    let tag = *bytes.get(roles_end).ok_or_else(|| corrupt("handle"))?;
    let handle_end = roles_end + 1 + usize::from(tag & 0x7f);
    let handle = bytes
        .get(roles_end + 1..handle_end)
        .map(|h| {
            if tag & RAW_HANDLE != 0 {
                URL_SAFE_NO_PAD.encode(h).into_bytes()
            } else {
                h.to_vec()
            }
        })
        .and_then(|h| String::from_utf8(h).ok())
        .ok_or_else(|| corrupt("handle"))?;
    let rest: SessionRest<'_> =
        postcard::from_bytes(&bytes[handle_end..]).map_err(|_| corrupt("session"))?;
    let data = if rest.data.is_empty() {
        Map::new()
    } else {
        serde_json::from_str(rest.data).map_err(|_| corrupt("data"))?
    };
    Ok(Session {
        id_hash: id,
        handle: SessionHandle::new(handle),
        user_id: UserId::from_uuid(Uuid::from_bytes(rest.user)),
        email: Email::from_sealed(rest.email.to_owned()),
        roles: roles(role_text),
        email_verified,
        created_at: Timestamp::from_unix_millis(rest.created_at),
        last_seen: at(1),
        expires_at: at(9),
        absolute_expires_at: Timestamp::from_unix_millis(rest.absolute_expires_at),
        ip: rest
            .ip
            .map(|ip| compact::expand_ip(&ip).ok_or_else(|| corrupt("ip")))
            .transpose()?,
        user_agent: rest
            .user_agent
            .map(|ua| compact::expand_user_agent(&ua).ok_or_else(|| corrupt("user agent")))
            .transpose()?,
        data,
        rotate,
    })
}

fn user_id(bytes: &[u8]) -> Result<UserId, StoreError> {
    Uuid::from_slice(bytes)
        .map(UserId::from_uuid)
        .map_err(|_| corrupt("user id"))
}

pub(crate) fn value_bytes(value: Value) -> Result<Bytes, StoreError> {
    bytes_of(value).ok_or_else(|| corrupt("value"))
}

fn utf8<'a>(bytes: &'a Bytes, what: &str) -> Result<&'a str, StoreError> {
    std::str::from_utf8(bytes).map_err(|_| corrupt(what))
}

fn roles(text: &str) -> Vec<Role> {
    text.split(' ')
        .filter(|r| !r.is_empty())
        .map(|r| Role::from_sealed(r.to_owned()))
        .collect()
}

/// An alias as stored: the successor's id hash (32 bytes), then the end
/// of its window in decimal ms (which the scripts read too).
pub(crate) fn alias_until(until: Timestamp) -> Value {
    Value::from(until.unix_millis().to_string())
}

/// The successor and window end of a stored alias.
pub(crate) fn decode_alias(bytes: &[u8]) -> Result<(SessionIdHash, Timestamp), StoreError> {
    let (successor, until) = bytes.split_at_checked(32).ok_or_else(|| corrupt("alias"))?;
    let until = std::str::from_utf8(until)
        .ok()
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| corrupt("alias"))?;
    Ok((
        session_id_from_member(successor)?,
        Timestamp::from_unix_millis(until),
    ))
}

/// The id hash of a listed session, from its index member.
pub(crate) fn session_id_from_member(member: &[u8]) -> Result<SessionIdHash, StoreError> {
    let bytes: [u8; 32] = member.try_into().map_err(|_| corrupt("member"))?;
    Ok(SessionIdHash::from_bytes(bytes))
}

/// A family id from its index member.
pub(crate) fn family_id_from_member(member: &[u8]) -> Result<FamilyId, StoreError> {
    std::str::from_utf8(member)
        .map(FamilyId::new)
        .map_err(|_| corrupt("member"))
}

/// The field values of a family, in script order: u m g c p a.
pub(crate) fn family_fields(family: &TokenFamily) -> Result<Vec<Value>, StoreError> {
    let meta = FamilyMeta {
        email: family.email.as_str(),
        roles: family.roles.iter().map(Role::as_str).collect(),
        created_at: family.created_at.unix_millis(),
        expires_at: family.expires_at.unix_millis(),
    };
    let meta = postcard::to_stdvec(&meta).map_err(|e| corrupt(&e.to_string()))?;
    Ok(vec![
        Value::Bytes(Bytes::copy_from_slice(family.user_id.as_uuid().as_bytes())),
        Value::Bytes(meta.into()),
        Value::from(family.generation.to_string()),
        Value::Bytes(Bytes::copy_from_slice(&family.current_hash)),
        Value::Bytes(
            family
                .previous_hash
                .map_or_else(Bytes::new, |h| Bytes::copy_from_slice(&h)),
        ),
        Value::from(family.rotated_at.unix_millis().to_string()),
    ])
}

fn hash32(bytes: &Bytes, what: &str) -> Result<[u8; 32], StoreError> {
    bytes.as_ref().try_into().map_err(|_| corrupt(what))
}

fn number<T: std::str::FromStr>(bytes: &Bytes, what: &str) -> Result<T, StoreError> {
    utf8(bytes, what)?.parse().map_err(|_| corrupt(what))
}

/// A family from its hash fields.
pub(crate) fn decode_family(id: FamilyId, fields: &Fields) -> Result<TokenFamily, StoreError> {
    let meta: FamilyMeta<'_> = postcard::from_bytes(fields.need("m")?).map_err(|_| corrupt("m"))?;
    Ok(TokenFamily {
        id,
        user_id: user_id(fields.need("u")?)?,
        email: Email::from_sealed(meta.email.to_owned()),
        roles: meta
            .roles
            .iter()
            .map(|r| Role::from_sealed((*r).to_owned()))
            .collect(),
        created_at: Timestamp::from_unix_millis(meta.created_at),
        expires_at: Timestamp::from_unix_millis(meta.expires_at),
        generation: number(fields.need("g")?, "g")?,
        current_hash: hash32(fields.need("c")?, "c")?,
        previous_hash: fields.get("p").map(|p| hash32(p, "p")).transpose()?,
        rotated_at: Timestamp::from_unix_millis(number(fields.need("a")?, "a")?),
    })
}

/// A revocation's identity (one entry per family, token or user).
pub(crate) fn revocation_id(revocation: &Revocation) -> String {
    match revocation {
        Revocation::Family { id, .. } => format!("f:{id}"),
        Revocation::Token { jti, .. } => format!("t:{jti}"),
        Revocation::UserBefore { user, .. } => format!("u:{user}"),
        Revocation::Sealed(sealed) => format!("s:{}", sealed.handle.as_str()),
        Revocation::SealedBefore { user, .. } => format!("b:{user}"),
    }
}

/// The text form: `F <until> <family>`, `T <until> <jti>`,
/// `U <until> <before> <user>`, `S <until> <login> <user> <handle>` (an
/// ended sealed session), `B <until> <through> <user>` (a sealed cutoff;
/// the sealed-revocation script writes it too).
pub(crate) fn encode_revocation(revocation: &Revocation) -> String {
    match revocation {
        Revocation::Family { id, until } => format!("F {} {id}", until.unix_millis()),
        Revocation::Token { jti, until } => format!("T {} {jti}", until.unix_millis()),
        Revocation::UserBefore {
            user,
            before,
            until,
        } => format!("U {} {} {user}", until.unix_millis(), before.unix_millis()),
        Revocation::Sealed(sealed) => format!(
            "S {} {} {} {}",
            sealed.until.unix_millis(),
            sealed.login.unix_millis(),
            sealed.user,
            sealed.handle.as_str()
        ),
        Revocation::SealedBefore {
            user,
            through,
            until,
        } => format!("B {} {} {user}", until.unix_millis(), through.unix_millis()),
    }
}

/// Parses [`encode_revocation`]'s text.
pub(crate) fn decode_revocation(bytes: &[u8]) -> Result<Revocation, StoreError> {
    let text = std::str::from_utf8(bytes).map_err(|_| corrupt("revocation"))?;
    let bad = || corrupt("revocation");
    let mut parts = text.splitn(3, ' ');
    let (kind, until, rest) = (
        parts.next().ok_or_else(bad)?,
        parts.next().ok_or_else(bad)?,
        parts.next().ok_or_else(bad)?,
    );
    let until = Timestamp::from_unix_millis(until.parse().map_err(|_| bad())?);
    match kind {
        "F" => Ok(Revocation::Family {
            id: FamilyId::new(rest),
            until,
        }),
        "T" => Ok(Revocation::Token {
            jti: rest.to_owned(),
            until,
        }),
        "U" | "B" => {
            let (cutoff, user) = rest.split_once(' ').ok_or_else(bad)?;
            let user = user.parse().map_err(|_| bad())?;
            let cutoff = Timestamp::from_unix_millis(cutoff.parse().map_err(|_| bad())?);
            Ok(if kind == "U" {
                Revocation::UserBefore {
                    user,
                    before: cutoff,
                    until,
                }
            } else {
                Revocation::SealedBefore {
                    user,
                    through: cutoff,
                    until,
                }
            })
        }
        "S" => {
            let mut parts = rest.splitn(3, ' ');
            let (login, user, handle) = (
                parts.next().ok_or_else(bad)?,
                parts.next().ok_or_else(bad)?,
                parts.next().ok_or_else(bad)?,
            );
            Ok(Revocation::Sealed(SealedRevocation {
                user: user.parse().map_err(|_| bad())?,
                handle: SessionHandle::new(handle),
                login: Timestamp::from_unix_millis(login.parse().map_err(|_| bad())?),
                until,
            }))
        }
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(handle: SessionHandle) -> Session {
        let now = Timestamp::from_unix_millis(1_700_000_000_000);
        let user = UserId::generate();
        Session {
            id_hash: tessera_core::SessionId::generate_for(tessera_core::Route::of(user)).hash(),
            handle,
            user_id: user,
            email: Email::parse("a@example.com").unwrap(),
            roles: vec![Role::parse("admin").unwrap(), Role::parse("ops").unwrap()],
            email_verified: false,
            created_at: now,
            last_seen: now,
            expires_at: now.plus(std::time::Duration::from_secs(60)),
            absolute_expires_at: now.plus(std::time::Duration::from_secs(3600)),
            ip: Some("192.0.2.1".into()),
            user_agent: None,
            data: serde_json::json!({"theme": "dark"})
                .as_object()
                .cloned()
                .unwrap(),
            rotate: true,
        }
    }

    #[test]
    fn sessions_round_trip_with_generated_and_other_handles() {
        for handle in [
            SessionHandle::generate(),
            SessionHandle::new("a-handle of my own"),
        ] {
            let s = session(handle);
            let encoded = encode_session(&s).unwrap();
            assert_eq!(decode_session(s.id_hash, &encoded).unwrap(), s);
        }
        let generated = handle_section(&SessionHandle::generate()).unwrap();
        assert_eq!(
            generated.len(),
            17,
            "a generated handle is kept as 16 raw bytes"
        );
        assert!(handle_section(&SessionHandle::new("x".repeat(128))).is_err());
    }

    /// A session as layout 1 wrote it: no verified flag in the roles
    /// section (the encoder as it was, kept here).
    fn encode_layout_1(session: &Session) -> Vec<u8> {
        let mut v2 = encode_session(session).unwrap();
        let len = usize::from(u16::from_be_bytes([v2[17], v2[18]]));
        v2.remove(HEADER + 1);
        v2[0] = SESSION_LAYOUT_1;
        v2[17..19].copy_from_slice(&u16::try_from(len - 1).unwrap().to_be_bytes());
        v2
    }

    #[test]
    fn layout_1_records_still_decode_as_verified() {
        let s = session(SessionHandle::generate());
        let old = encode_layout_1(&s);
        // The record as layout 1 spelled it: rotate flag, then the roles.
        assert_eq!(&old[HEADER..HEADER + 10], b"1admin ops");
        let decoded = decode_session(s.id_hash, &old).unwrap();
        assert!(decoded.email_verified);
        assert_eq!(
            decoded,
            Session {
                email_verified: true,
                ..s.clone()
            }
        );
        for verified in [false, true] {
            let s = Session {
                email_verified: verified,
                ..s.clone()
            };
            let encoded = encode_session(&s).unwrap();
            assert_eq!(encoded[0], 2);
            assert_eq!(encoded.len(), old.len() + 1, "one byte more than layout 1");
            assert_eq!(decode_session(s.id_hash, &encoded).unwrap(), s);
        }
        let mut unknown = encode_session(&s).unwrap();
        unknown[0] = 3;
        assert!(decode_session(s.id_hash, &unknown).is_err());
        let mut bad_flag = encode_session(&s).unwrap();
        bad_flag[HEADER + 1] = b'x';
        assert!(decode_session(s.id_hash, &bad_flag).is_err());
    }

    #[test]
    fn truncated_or_foreign_values_are_corrupt_not_panics() {
        let s = session(SessionHandle::generate());
        let encoded = encode_session(&s).unwrap();
        for len in 0..encoded.len() {
            assert!(decode_session(s.id_hash, &encoded[..len]).is_err(), "{len}");
        }
        assert!(decode_session(s.id_hash, b"{\"json\": true}").is_err());
    }

    #[test]
    fn aliases_decode_what_the_rotation_script_writes() {
        let successor = session(SessionHandle::generate()).id_hash;
        let until = Timestamp::from_unix_millis(1_700_000_000_123);
        let mut stored = successor.as_bytes().to_vec();
        stored.extend_from_slice(b"1700000000123");
        assert_eq!(decode_alias(&stored).unwrap(), (successor, until));
        assert_eq!(
            alias_until(until).as_bytes().unwrap(),
            b"1700000000123".as_slice()
        );
        assert!(decode_alias(&stored[..31]).is_err());
        assert!(decode_alias(&stored[..32]).is_err());
        assert!(decode_alias(&[stored.as_slice(), b"x"].concat()).is_err());
    }

    #[test]
    fn revocations_round_trip_through_text() {
        let until = Timestamp::from_unix_millis(1_700_000_000_123);
        for r in [
            Revocation::Family {
                id: FamilyId::generate(),
                until,
            },
            Revocation::Token {
                jti: "a b c".into(),
                until,
            },
            Revocation::UserBefore {
                user: UserId::generate(),
                before: Timestamp::from_unix_millis(-5),
                until,
            },
            Revocation::Sealed(SealedRevocation {
                user: UserId::generate(),
                handle: SessionHandle::generate(),
                login: Timestamp::from_unix_millis(1_699_999_000_000),
                until,
            }),
            Revocation::SealedBefore {
                user: UserId::generate(),
                through: Timestamp::from_unix_millis(1_699_999_000_000),
                until,
            },
        ] {
            assert_eq!(
                decode_revocation(encode_revocation(&r).as_bytes()).unwrap(),
                r
            );
        }
        assert!(decode_revocation(b"X 1 y").is_err());
        assert!(decode_revocation(b"U 1 2").is_err());
        assert!(decode_revocation(b"S 1 2 3").is_err());
        assert!(decode_revocation(b"\xff").is_err());
    }
}
