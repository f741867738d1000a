//! Rows to records and back: the column lists, decoding (with corrupt
//! values reported as such) and the one insert shared by single and bulk
//! session creation.

use rusqlite::{Row, params};
use serde_json::Value;
use tessera_core::{
    Email, PasswordHash, Role, Session, SessionHandle, SessionIdHash, StoreError, Timestamp, User,
    UserId,
};
use uuid::Uuid;

use super::to_store_error;

// Column lists as macros so that every statement is a `&'static str`
// (prepared-statement cache lookups without building the SQL each time).
macro_rules! session_columns {
    () => {
        "id_hash, handle, user_id, email, roles, created_at, last_seen, expires_at, \
         absolute_expires_at, ip, user_agent, data, rotate, email_verified"
    };
}
macro_rules! user_columns {
    () => {
        "id, email, roles, disabled, password_hash, created_at, email_verified"
    };
}
pub(super) use {session_columns, user_columns};

pub(super) fn corrupt(what: &str) -> impl Fn(String) -> rusqlite::Error + '_ {
    move |detail| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("{what}: {detail}").into(),
        )
    }
}

pub(super) fn encode_roles(roles: &[Role]) -> String {
    roles.iter().map(Role::as_str).collect::<Vec<_>>().join(" ")
}

pub(super) fn decode_roles(text: &str) -> rusqlite::Result<Vec<Role>> {
    text.split_whitespace()
        .map(|r| Role::parse(r).map_err(|e| corrupt("role")(e.to_string())))
        .collect()
}

pub(super) fn decode_uuid_blob(bytes: &[u8]) -> rusqlite::Result<UserId> {
    Uuid::from_slice(bytes)
        .map(UserId::from_uuid)
        .map_err(|e| corrupt("user id")(e.to_string()))
}

pub(super) fn session_from_row(row: &Row<'_>) -> rusqlite::Result<Session> {
    let id_hash: [u8; 32] = row.get(0)?;
    let user_id: Vec<u8> = row.get(2)?;
    let email: String = row.get(3)?;
    let roles: String = row.get(4)?;
    let data: String = row.get(11)?;
    let data = match serde_json::from_str::<Value>(&data) {
        Ok(Value::Object(map)) => map,
        _ => return Err(corrupt("session data")("not a JSON object".into())),
    };
    Ok(Session {
        id_hash: SessionIdHash::from_bytes(id_hash),
        handle: SessionHandle::new(row.get::<_, String>(1)?),
        user_id: decode_uuid_blob(&user_id)?,
        email: Email::from_sealed(email),
        roles: decode_roles(&roles)?,
        created_at: Timestamp::from_unix_millis(row.get(5)?),
        last_seen: Timestamp::from_unix_millis(row.get(6)?),
        expires_at: Timestamp::from_unix_millis(row.get(7)?),
        absolute_expires_at: Timestamp::from_unix_millis(row.get(8)?),
        ip: row.get(9)?,
        user_agent: row.get(10)?,
        data,
        rotate: row.get(12)?,
        email_verified: row.get(13)?,
    })
}

pub(super) fn user_from_row(row: &Row<'_>) -> rusqlite::Result<User> {
    let id: String = row.get(0)?;
    let email: String = row.get(1)?;
    let roles: String = row.get(2)?;
    Ok(User {
        id: id
            .parse()
            .map_err(|e: uuid::Error| corrupt("user id")(e.to_string()))?,
        email: Email::from_sealed(email),
        roles: decode_roles(&roles)?,
        disabled: row.get(3)?,
        password_hash: PasswordHash::from_trusted(row.get(4)?),
        created_at: Timestamp::from_unix_millis(row.get(5)?),
        email_verified: row.get(6)?,
    })
}

pub(super) fn insert_session(
    tx: &rusqlite::Transaction<'_>,
    s: &Session,
) -> Result<(), StoreError> {
    let data = serde_json::to_string(&s.data).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    tx.prepare_cached(concat!(
        "INSERT INTO sessions (",
        session_columns!(),
        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
    ))
    .and_then(|mut stmt| {
        stmt.execute(params![
            s.id_hash.as_bytes(),
            s.handle.as_str(),
            s.user_id.as_uuid().as_bytes(),
            s.email.as_str(),
            encode_roles(&s.roles),
            s.created_at.unix_millis(),
            s.last_seen.unix_millis(),
            s.expires_at.unix_millis(),
            s.absolute_expires_at.unix_millis(),
            s.ip,
            s.user_agent,
            data,
            s.rotate,
            s.email_verified,
        ])
    })
    .map_err(to_store_error)?;
    Ok(())
}
