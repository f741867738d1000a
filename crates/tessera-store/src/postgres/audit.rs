//! The audit log on PostgreSQL: `audit_events`, paged by its `BIGSERIAL` id.
//!
//! Sequence values are handed out at insert but become visible at commit, so
//! two nodes' concurrent appends could commit out of id order and a reader
//! following the log by id could pass over the lower one. Appends therefore
//! take a transaction-scoped advisory lock: ids become visible in order, and
//! a cursor never skips an event appended later. The writer batches events,
//! so the lock is taken once per batch, not per event.

use tessera_core::{
    Actor, AuditEvent, AuditId, AuditOrder, AuditPage, AuditQuery, AuditRecord, StoreError,
    Timestamp, UserId,
};
use tokio_postgres::types::ToSql;

use super::PostgresUserStore;

/// The advisory lock that orders appends ("tessera" + 2).
const APPEND_LOCK: i64 = 0x7465_7373_6572_6102;

type Param = Box<dyn ToSql + Sync + Send>;

impl PostgresUserStore {
    pub(super) async fn append_audit(&self, events: Vec<AuditEvent>) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        self.with(|mut c| async move {
            let tx = c.transaction().await?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&APPEND_LOCK])
                .await?;
            // One statement per batch: the columns as arrays, unnested.
            let at: Vec<i64> = events.iter().map(|e| e.at.unix_millis()).collect();
            let kind: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
            let actor_kind: Vec<&str> = events.iter().map(|e| e.actor.kind_str()).collect();
            let actor_id: Vec<Option<String>> = events.iter().map(|e| e.actor.id()).collect();
            let subject: Vec<Option<uuid::Uuid>> = events
                .iter()
                .map(|e| e.subject.map(|u| *u.as_uuid()))
                .collect();
            let ip: Vec<Option<String>> = events
                .iter()
                .map(|e| e.ip.map(|ip| ip.to_string()))
                .collect();
            let user_agent: Vec<Option<&str>> =
                events.iter().map(|e| e.user_agent.as_deref()).collect();
            let session: Vec<Option<&str>> = events.iter().map(|e| e.session.as_deref()).collect();
            let detail: Vec<&str> = events.iter().map(|e| e.detail.as_str()).collect();
            let request_id: Vec<Option<&str>> =
                events.iter().map(|e| e.request_id.as_deref()).collect();
            let insert = tx
                .prepare_cached(
                    "INSERT INTO audit_events (at, kind, actor_kind, actor_id, user_id, ip, \
                     user_agent, session, detail, request_id) \
                     SELECT at, kind, actor_kind, actor_id, user_id, ip, user_agent, session, \
                     detail, request_id FROM UNNEST($1::BIGINT[], $2::TEXT[], $3::TEXT[], \
                     $4::TEXT[], $5::UUID[], $6::TEXT[], $7::TEXT[], $8::TEXT[], $9::TEXT[], \
                     $10::TEXT[]) \
                     WITH ORDINALITY AS batch(at, kind, actor_kind, actor_id, user_id, ip, \
                     user_agent, session, detail, request_id, n) ORDER BY n",
                )
                .await?;
            tx.execute(
                &insert,
                &[
                    &at,
                    &kind,
                    &actor_kind,
                    &actor_id,
                    &subject,
                    &ip,
                    &user_agent,
                    &session,
                    &detail,
                    &request_id,
                ],
            )
            .await?;
            tx.commit().await
        })
        .await
    }

    pub(super) async fn audit_page(&self, query: &AuditQuery) -> Result<AuditPage, StoreError> {
        let size = query.page_size();
        let mut conditions = Vec::new();
        let mut params: Vec<Param> = Vec::new();
        if let Some(user) = query.user {
            params.push(Box::new(*user.as_uuid()));
            conditions.push(format!("user_id = ${}", params.len()));
        }
        if let Some(kind) = query.kind {
            params.push(Box::new(kind.as_str()));
            conditions.push(format!("kind = ${}", params.len()));
        }
        if let Some(since) = query.since {
            params.push(Box::new(since.unix_millis()));
            conditions.push(format!("at >= ${}", params.len()));
        }
        let (cmp, order) = match query.order {
            AuditOrder::NewestFirst => ("<", "DESC"),
            AuditOrder::OldestFirst => (">", "ASC"),
        };
        if let Some(after) = query.after {
            params.push(Box::new(after.0));
            conditions.push(format!("id {cmp} ${}", params.len()));
        }
        params.push(Box::new(i64::try_from(size + 1).unwrap_or(i64::MAX)));
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let sql = format!(
            "SELECT id, at, kind, actor_kind, actor_id, user_id, ip, user_agent, session, detail, \
             request_id FROM audit_events {filter} ORDER BY id {order} LIMIT ${}",
            params.len()
        );
        let rows = self
            .with(|c| async move {
                let refs: Vec<&(dyn ToSql + Sync)> = params
                    .iter()
                    .map(|p| p.as_ref() as &(dyn ToSql + Sync))
                    .collect();
                let statement = c.prepare_cached(&sql).await?;
                c.query(&statement, &refs).await
            })
            .await?;
        let records = rows.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
        Ok(AuditPage::from_overfetch(records, size))
    }

    pub(super) async fn purge_audit_before(&self, before: Timestamp) -> Result<u64, StoreError> {
        self.with(|c| async move {
            c.execute(
                "DELETE FROM audit_events WHERE at < $1",
                &[&before.unix_millis()],
            )
            .await
        })
        .await
    }
}

fn decode(row: &tokio_postgres::Row) -> Result<AuditRecord, StoreError> {
    let id: i64 = row.get(0);
    let corrupt = |what: &str| StoreError::Corrupt(format!("audit event {id}: {what}"));
    let kind: String = row.get(2);
    let actor_kind: String = row.get(3);
    let actor_id: Option<String> = row.get(4);
    let ip: Option<String> = row.get(6);
    Ok(AuditRecord {
        id: AuditId(id),
        event: AuditEvent {
            at: Timestamp::from_unix_millis(row.get(1)),
            kind: kind.parse().map_err(|_| corrupt("kind"))?,
            actor: Actor::from_parts(&actor_kind, actor_id.as_deref())
                .map_err(|_| corrupt("actor"))?,
            subject: row.get::<_, Option<uuid::Uuid>>(5).map(UserId::from_uuid),
            ip: ip
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(|_| corrupt("ip"))?,
            user_agent: row.get(7),
            session: row.get(8),
            detail: row.get(9),
            request_id: row.get(10),
        },
    })
}
