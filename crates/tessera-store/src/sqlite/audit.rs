//! The audit log on SQLite: `audit_log`, appended by the writer, paged by
//! its `AUTOINCREMENT` id (the single writer commits ids in order, so a
//! cursor never skips an event appended later).

use rusqlite::types::Value;
use tessera_core::{
    Actor, AuditEvent, AuditId, AuditOrder, AuditPage, AuditQuery, AuditRecord, StoreError,
    Timestamp,
};

use super::{Affected, SqliteStore, to_store_error};

impl SqliteStore {
    pub(super) async fn append_audit(&self, events: Vec<AuditEvent>) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        self.write(Affected::Nothing, move |tx| {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO audit_log (at, kind, actor_kind, actor_id, user_id, ip, \
                     user_agent, session, detail, request_id) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )
                .map_err(to_store_error)?;
            for event in &events {
                insert
                    .execute(rusqlite::params![
                        event.at.unix_millis(),
                        event.kind.as_str(),
                        event.actor.kind_str(),
                        event.actor.id(),
                        event.subject.map(|u| u.to_string()),
                        event.ip.map(|ip| ip.to_string()),
                        event.user_agent,
                        event.session,
                        event.detail,
                        event.request_id,
                    ])
                    .map_err(to_store_error)?;
            }
            Ok(())
        })
        .await
    }

    pub(super) fn audit_page(&self, query: &AuditQuery) -> Result<AuditPage, StoreError> {
        let size = query.page_size();
        let mut conditions = Vec::new();
        let mut params: Vec<Value> = Vec::new();
        if let Some(user) = query.user {
            params.push(Value::Text(user.to_string()));
            conditions.push(format!("user_id = ?{}", params.len()));
        }
        if let Some(kind) = query.kind {
            params.push(Value::Text(kind.as_str().to_owned()));
            conditions.push(format!("kind = ?{}", params.len()));
        }
        if let Some(since) = query.since {
            params.push(Value::Integer(since.unix_millis()));
            conditions.push(format!("at >= ?{}", params.len()));
        }
        let (cmp, order) = match query.order {
            AuditOrder::NewestFirst => ("<", "DESC"),
            AuditOrder::OldestFirst => (">", "ASC"),
        };
        if let Some(after) = query.after {
            params.push(Value::Integer(after.0));
            conditions.push(format!("id {cmp} ?{}", params.len()));
        }
        params.push(Value::Integer(i64::try_from(size + 1).unwrap_or(i64::MAX)));
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let sql = format!(
            "SELECT id, at, kind, actor_kind, actor_id, user_id, ip, user_agent, session, detail, \
             request_id FROM audit_log {filter} ORDER BY id {order} LIMIT ?{}",
            params.len()
        );
        let rows = self.read(|conn| {
            conn.prepare_cached(&sql)?
                .query_map(rusqlite::params_from_iter(params), |row| {
                    Ok(RawRecord {
                        id: row.get(0)?,
                        at: row.get(1)?,
                        kind: row.get(2)?,
                        actor_kind: row.get(3)?,
                        actor_id: row.get(4)?,
                        subject: row.get(5)?,
                        ip: row.get(6)?,
                        user_agent: row.get(7)?,
                        session: row.get(8)?,
                        detail: row.get(9)?,
                        request_id: row.get(10)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
        })?;
        let records = rows
            .into_iter()
            .map(RawRecord::decode)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(AuditPage::from_overfetch(records, size))
    }

    pub(super) async fn purge_audit_before(&self, before: Timestamp) -> Result<u64, StoreError> {
        self.write(Affected::Nothing, move |tx| {
            let gone = tx
                .execute(
                    "DELETE FROM audit_log WHERE at < ?1",
                    [before.unix_millis()],
                )
                .map_err(to_store_error)?;
            Ok(gone as u64)
        })
        .await
    }
}

/// A row as stored, before its text is checked.
struct RawRecord {
    id: i64,
    at: i64,
    kind: String,
    actor_kind: String,
    actor_id: Option<String>,
    subject: Option<String>,
    ip: Option<String>,
    user_agent: Option<String>,
    session: Option<String>,
    detail: String,
    request_id: Option<String>,
}

impl RawRecord {
    fn decode(self) -> Result<AuditRecord, StoreError> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("audit event {}: {what}", self.id));
        Ok(AuditRecord {
            id: AuditId(self.id),
            event: AuditEvent {
                at: Timestamp::from_unix_millis(self.at),
                kind: self.kind.parse().map_err(|_| corrupt("kind"))?,
                actor: Actor::from_parts(&self.actor_kind, self.actor_id.as_deref())
                    .map_err(|_| corrupt("actor"))?,
                subject: self
                    .subject
                    .as_deref()
                    .map(str::parse)
                    .transpose()
                    .map_err(|_| corrupt("subject"))?,
                ip: self
                    .ip
                    .as_deref()
                    .map(str::parse)
                    .transpose()
                    .map_err(|_| corrupt("ip"))?,
                user_agent: self.user_agent,
                session: self.session,
                request_id: self.request_id,
                detail: self.detail,
            },
        })
    }
}
