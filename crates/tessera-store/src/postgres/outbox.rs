//! The mail outbox on PostgreSQL (`mail_outbox`, migration 4).
//!
//! A claim is one `UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP
//! LOCKED)`: concurrent claimers on any nodes skip each other's rows
//! instead of waiting for them, and never take the same message while its
//! lease holds.

use std::time::Duration;

use async_trait::async_trait;
use tessera_core::mail::truncate_error;
use tessera_core::{
    ClaimToken, ClaimedMail, MessageId, MessageState, Outbox, OutboxRecord, OutboxStats,
    OutgoingMail, Retry, StoreError, Timestamp,
};

use super::PostgresUserStore;
use crate::outbox_rows::{decode, encode};

fn attempts(value: i32) -> u32 {
    u32::try_from(value).unwrap_or(0)
}

#[async_trait]
impl Outbox for PostgresUserStore {
    async fn enqueue(&self, mail: &OutgoingMail, now: Timestamp) -> Result<(), StoreError> {
        let body = encode(&mail.notice)?;
        let kind = mail.notice.kind();
        let to = mail.to.as_str().to_owned();
        self.with(|c| async move {
            c.execute(
                "INSERT INTO mail_outbox (kind, recipient, body, state, enqueued_at, next_attempt_at)
                 VALUES ($1, $2, $3, 'pending', $4, $4)",
                &[&kind, &to, &body, &now.unix_millis()],
            )
            .await
            .map(|_| ())
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
        let rows = self
            .with(|c| async move {
                c.query(
                    "UPDATE mail_outbox
                     SET attempts = attempts + 1, lease_until = $2, token = $3
                     WHERE id IN (
                         SELECT id FROM mail_outbox
                         WHERE state = 'pending' AND next_attempt_at <= $1
                           AND (lease_until IS NULL OR lease_until <= $1)
                         ORDER BY next_attempt_at, id LIMIT $4
                         FOR UPDATE SKIP LOCKED)
                     RETURNING id, recipient, body, attempts, enqueued_at",
                    &[
                        &now.unix_millis(),
                        &until.unix_millis(),
                        &token.as_i64(),
                        &limit,
                    ],
                )
                .await
            })
            .await?;
        let mut claimed = Vec::with_capacity(rows.len());
        for row in rows {
            // A row that does not decode would come back after every lease:
            // give it up instead.
            let Ok(Some(mail)) = decode(row.get(1), row.get(2)) else {
                let id: i64 = row.get(0);
                self.with(|c| async move {
                    c.execute(
                        "UPDATE mail_outbox
                         SET state = 'undeliverable', recipient = NULL, body = NULL,
                             finished_at = $2, last_error = 'corrupt outbox record',
                             lease_until = NULL, token = NULL
                         WHERE id = $1",
                        &[&id, &now.unix_millis()],
                    )
                    .await
                })
                .await?;
                continue;
            };
            claimed.push(ClaimedMail {
                id: MessageId(row.get(0)),
                token,
                mail,
                attempts: attempts(row.get(3)),
                enqueued_at: Timestamp::from_unix_millis(row.get(4)),
                lease_until: until,
            });
        }
        claimed.sort_by_key(|c| c.id);
        Ok(claimed)
    }

    async fn mark_sent(
        &self,
        id: MessageId,
        token: ClaimToken,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let changed = self
            .with(|c| async move {
                c.execute(
                    "UPDATE mail_outbox
                     SET state = 'sent', recipient = NULL, body = NULL, finished_at = $3,
                         lease_until = NULL, token = NULL
                     WHERE id = $1 AND token = $2 AND state = 'pending'",
                    &[&id.0, &token.as_i64(), &now.unix_millis()],
                )
                .await
            })
            .await?;
        Ok(changed > 0)
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
        let changed = self
            .with(|c| async move {
                match retry {
                    Retry::At(at) => {
                        c.execute(
                            "UPDATE mail_outbox
                             SET next_attempt_at = $3, last_error = $4, lease_until = NULL,
                                 token = NULL
                             WHERE id = $1 AND token = $2 AND state = 'pending'",
                            &[&id.0, &token.as_i64(), &at.unix_millis(), &error],
                        )
                        .await
                    }
                    Retry::GiveUp => {
                        c.execute(
                            "UPDATE mail_outbox
                             SET state = 'undeliverable', recipient = NULL, body = NULL,
                                 finished_at = $3, last_error = $4, lease_until = NULL,
                                 token = NULL
                             WHERE id = $1 AND token = $2 AND state = 'pending'",
                            &[&id.0, &token.as_i64(), &now.unix_millis(), &error],
                        )
                        .await
                    }
                }
            })
            .await?;
        Ok(changed > 0)
    }

    async fn stats(&self) -> Result<OutboxStats, StoreError> {
        let row = self
            .with(|c| async move {
                c.query_one(
                    "SELECT
                        (SELECT count(*) FROM mail_outbox WHERE state = 'pending'),
                        (SELECT count(*) FROM mail_outbox WHERE state = 'undeliverable')",
                    &[],
                )
                .await
            })
            .await?;
        let pending: i64 = row.get(0);
        let undeliverable: i64 = row.get(1);
        Ok(OutboxStats {
            pending: u64::try_from(pending).unwrap_or(0),
            undeliverable: u64::try_from(undeliverable).unwrap_or(0),
        })
    }

    async fn next_due(&self) -> Result<Option<Timestamp>, StoreError> {
        let row = self
            .with(|c| async move {
                c.query_one(
                    "SELECT min(greatest(next_attempt_at, coalesce(lease_until, next_attempt_at)))
                     FROM mail_outbox WHERE state = 'pending'",
                    &[],
                )
                .await
            })
            .await?;
        let due: Option<i64> = row.get(0);
        Ok(due.map(Timestamp::from_unix_millis))
    }

    async fn record(&self, id: MessageId) -> Result<Option<OutboxRecord>, StoreError> {
        let row = self
            .with(|c| async move {
                c.query_opt(
                    "SELECT kind, recipient, body, state, attempts, enqueued_at, next_attempt_at,
                            finished_at, last_error
                     FROM mail_outbox WHERE id = $1",
                    &[&id.0],
                )
                .await
            })
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let state: String = row.get(3);
        Ok(Some(OutboxRecord {
            id,
            kind: row.get(0),
            mail: decode(row.get(1), row.get(2))?,
            state: MessageState::parse(&state)
                .ok_or_else(|| StoreError::Corrupt(format!("outbox state {state:?}")))?,
            attempts: attempts(row.get(4)),
            enqueued_at: Timestamp::from_unix_millis(row.get(5)),
            next_attempt_at: Timestamp::from_unix_millis(row.get(6)),
            finished_at: row
                .get::<_, Option<i64>>(7)
                .map(Timestamp::from_unix_millis),
            last_error: row.get(8),
        }))
    }

    async fn purge(&self, before: Timestamp) -> Result<u64, StoreError> {
        self.with(|c| async move {
            c.execute(
                "DELETE FROM mail_outbox WHERE state <> 'pending' AND finished_at < $1",
                &[&before.unix_millis()],
            )
            .await
        })
        .await
    }
}
