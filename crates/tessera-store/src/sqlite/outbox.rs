//! The mail outbox on SQLite (`mail_outbox`, migration 7).
//!
//! A claim is one write transaction (`BEGIN IMMEDIATE`: the database's one
//! writer), so two senders sharing the file, in one process or several,
//! never claim the same message while its lease holds.

use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};
use tessera_core::mail::truncate_error;
use tessera_core::{
    ClaimToken, ClaimedMail, MessageId, MessageState, Outbox, OutboxRecord, OutboxStats,
    OutgoingMail, Retry, StoreError, Timestamp,
};

use super::{Affected, SqliteStore, to_store_error};
use crate::outbox_rows::{decode, encode};

fn attempts(value: i64) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

#[async_trait]
impl Outbox for SqliteStore {
    async fn enqueue(&self, mail: &OutgoingMail, now: Timestamp) -> Result<(), StoreError> {
        let body = encode(&mail.notice)?;
        let kind = mail.notice.kind();
        let to = mail.to.as_str().to_owned();
        self.write(Affected::Nothing, move |tx| {
            tx.execute(
                "INSERT INTO mail_outbox (kind, recipient, body, state, enqueued_at, next_attempt_at)
                 VALUES (?1, ?2, ?3, 'pending', ?4, ?4)",
                params![kind, to, body, now.unix_millis()],
            )
            .map_err(to_store_error)?;
            Ok(())
        })
        .await
    }

    async fn claim(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: usize,
        token: ClaimToken,
    ) -> Result<Vec<ClaimedMail>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let until = now.plus(lease);
        self.write(Affected::Nothing, move |tx| {
            let rows: Vec<(i64, Option<String>, Option<String>, i64, i64)> = tx
                .prepare_cached(
                    "UPDATE mail_outbox
                     SET attempts = attempts + 1, lease_until = ?2, token = ?3
                     WHERE id IN (
                         SELECT id FROM mail_outbox
                         WHERE state = 'pending' AND next_attempt_at <= ?1
                           AND (lease_until IS NULL OR lease_until <= ?1)
                         ORDER BY next_attempt_at, id LIMIT ?4)
                     RETURNING id, recipient, body, attempts, enqueued_at",
                )
                .map_err(to_store_error)?
                .query_map(
                    params![
                        now.unix_millis(),
                        until.unix_millis(),
                        token.as_i64(),
                        limit
                    ],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
                )
                .map_err(to_store_error)?
                .collect::<Result<_, _>>()
                .map_err(to_store_error)?;
            let mut claimed = Vec::with_capacity(rows.len());
            for (id, recipient, body, tries, enqueued_at) in rows {
                // A row that does not decode would fail every claim: give
                // it up instead of blocking the queue.
                let Ok(Some(mail)) = decode(recipient, body) else {
                    tx.execute(
                        "UPDATE mail_outbox
                         SET state = 'undeliverable', recipient = NULL, body = NULL,
                             finished_at = ?2, last_error = 'corrupt outbox record',
                             lease_until = NULL, token = NULL
                         WHERE id = ?1",
                        params![id, now.unix_millis()],
                    )
                    .map_err(to_store_error)?;
                    continue;
                };
                claimed.push(ClaimedMail {
                    id: MessageId(id),
                    token,
                    mail,
                    attempts: attempts(tries),
                    enqueued_at: Timestamp::from_unix_millis(enqueued_at),
                    lease_until: until,
                });
            }
            claimed.sort_by_key(|c| c.id);
            Ok(claimed)
        })
        .await
    }

    async fn mark_sent(
        &self,
        id: MessageId,
        token: ClaimToken,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.write(Affected::Nothing, move |tx| {
            let changed = tx
                .execute(
                    "UPDATE mail_outbox
                     SET state = 'sent', recipient = NULL, body = NULL, finished_at = ?3,
                         lease_until = NULL, token = NULL
                     WHERE id = ?1 AND token = ?2 AND state = 'pending'",
                    params![id.0, token.as_i64(), now.unix_millis()],
                )
                .map_err(to_store_error)?;
            Ok(changed > 0)
        })
        .await
    }

    async fn mark_failed(
        &self,
        id: MessageId,
        token: ClaimToken,
        error: &str,
        retry: Retry,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let error = truncate_error(error).to_owned();
        self.write(Affected::Nothing, move |tx| {
            let changed = match retry {
                Retry::At(at) => tx.execute(
                    "UPDATE mail_outbox
                     SET next_attempt_at = ?3, last_error = ?4, lease_until = NULL, token = NULL
                     WHERE id = ?1 AND token = ?2 AND state = 'pending'",
                    params![id.0, token.as_i64(), at.unix_millis(), error],
                ),
                Retry::GiveUp => tx.execute(
                    "UPDATE mail_outbox
                     SET state = 'undeliverable', recipient = NULL, body = NULL,
                         finished_at = ?3, last_error = ?4, lease_until = NULL, token = NULL
                     WHERE id = ?1 AND token = ?2 AND state = 'pending'",
                    params![id.0, token.as_i64(), now.unix_millis(), error],
                ),
            }
            .map_err(to_store_error)?;
            Ok(changed > 0)
        })
        .await
    }

    async fn stats(&self) -> Result<OutboxStats, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT
                    (SELECT count(*) FROM mail_outbox WHERE state = 'pending'),
                    (SELECT count(*) FROM mail_outbox WHERE state = 'undeliverable')",
            )?
            .query_row([], |r| {
                let pending: i64 = r.get(0)?;
                let undeliverable: i64 = r.get(1)?;
                Ok(OutboxStats {
                    pending: u64::try_from(pending).unwrap_or(0),
                    undeliverable: u64::try_from(undeliverable).unwrap_or(0),
                })
            })
        })
    }

    async fn next_due(&self) -> Result<Option<Timestamp>, StoreError> {
        let due: Option<i64> = self.read(|conn| {
            conn.prepare_cached(
                "SELECT min(max(next_attempt_at, coalesce(lease_until, next_attempt_at)))
                 FROM mail_outbox WHERE state = 'pending'",
            )?
            .query_row([], |r| r.get(0))
        })?;
        Ok(due.map(Timestamp::from_unix_millis))
    }

    async fn record(&self, id: MessageId) -> Result<Option<OutboxRecord>, StoreError> {
        type Row = (
            String,
            Option<String>,
            Option<String>,
            String,
            i64,
            i64,
            i64,
            Option<i64>,
            Option<String>,
        );
        let row: Option<Row> = self.read(|conn| {
            conn.prepare_cached(
                "SELECT kind, recipient, body, state, attempts, enqueued_at, next_attempt_at,
                        finished_at, last_error
                 FROM mail_outbox WHERE id = ?1",
            )?
            .query_row([id.0], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                ))
            })
            .optional()
        })?;
        let Some((kind, recipient, body, state, tries, enqueued, next, finished, error)) = row
        else {
            return Ok(None);
        };
        Ok(Some(OutboxRecord {
            id,
            kind,
            mail: decode(recipient, body)?,
            state: MessageState::parse(&state)
                .ok_or_else(|| StoreError::Corrupt(format!("outbox state {state:?}")))?,
            attempts: attempts(tries),
            enqueued_at: Timestamp::from_unix_millis(enqueued),
            next_attempt_at: Timestamp::from_unix_millis(next),
            finished_at: finished.map(Timestamp::from_unix_millis),
            last_error: error,
        }))
    }

    async fn purge(&self, before: Timestamp) -> Result<u64, StoreError> {
        self.write(Affected::Nothing, move |tx| {
            let deleted = tx
                .execute(
                    "DELETE FROM mail_outbox WHERE state <> 'pending' AND finished_at < ?1",
                    [before.unix_millis()],
                )
                .map_err(to_store_error)?;
            Ok(deleted as u64)
        })
        .await
    }
}
