//! The mail outbox in process memory (lost with the process, like
//! everything else in a [`MemoryStore`]).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use tessera_core::mail::truncate_error;
use tessera_core::{
    ClaimToken, ClaimedMail, MessageId, MessageState, Outbox, OutboxRecord, OutboxStats,
    OutgoingMail, Retry, StoreError, Timestamp,
};

use super::MemoryStore;
use crate::lock::lock;

/// Outbox state of a [`MemoryStore`].
#[derive(Debug, Default)]
pub(crate) struct Messages {
    next_id: i64,
    by_id: BTreeMap<i64, Message>,
}

#[derive(Debug)]
struct Message {
    record: OutboxRecord,
    lease_until: Option<Timestamp>,
    token: Option<ClaimToken>,
}

impl Message {
    fn claimable(&self, now: Timestamp) -> bool {
        self.record.state == MessageState::Pending
            && self.record.next_attempt_at <= now
            && self.lease_until.is_none_or(|until| until <= now)
    }

    fn held_by(&self, token: ClaimToken) -> bool {
        self.record.state == MessageState::Pending && self.token == Some(token)
    }

    fn finish(&mut self, state: MessageState, now: Timestamp) {
        self.record.state = state;
        self.record.mail = None;
        self.record.finished_at = Some(now);
        self.lease_until = None;
        self.token = None;
    }
}

/// The outbox of a [`MemoryStore`].
pub(crate) type OutboxState = Mutex<Messages>;

#[async_trait]
impl Outbox for MemoryStore {
    async fn enqueue(&self, mail: &OutgoingMail, now: Timestamp) -> Result<(), StoreError> {
        let mut messages = lock(&self.outbox);
        messages.next_id += 1;
        let id = messages.next_id;
        messages.by_id.insert(
            id,
            Message {
                record: OutboxRecord {
                    id: MessageId(id),
                    kind: mail.notice.kind().to_owned(),
                    mail: Some(mail.clone()),
                    state: MessageState::Pending,
                    attempts: 0,
                    enqueued_at: now,
                    next_attempt_at: now,
                    finished_at: None,
                    last_error: None,
                },
                lease_until: None,
                token: None,
            },
        );
        Ok(())
    }

    async fn claim(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: usize,
        token: ClaimToken,
    ) -> Result<Vec<ClaimedMail>, StoreError> {
        let mut messages = lock(&self.outbox);
        let mut due: Vec<(Timestamp, i64)> = messages
            .by_id
            .iter()
            .filter(|(_, m)| m.claimable(now))
            .map(|(id, m)| (m.record.next_attempt_at, *id))
            .collect();
        due.sort_unstable();
        let until = now.plus(lease);
        let mut claimed = Vec::new();
        for (_, id) in due.into_iter().take(limit) {
            let Some(message) = messages.by_id.get_mut(&id) else {
                continue;
            };
            let Some(mail) = message.record.mail.clone() else {
                continue;
            };
            message.record.attempts = message.record.attempts.saturating_add(1);
            message.lease_until = Some(until);
            message.token = Some(token);
            claimed.push(ClaimedMail {
                id: message.record.id,
                token,
                mail,
                attempts: message.record.attempts,
                enqueued_at: message.record.enqueued_at,
                lease_until: until,
            });
        }
        Ok(claimed)
    }

    async fn mark_sent(
        &self,
        id: MessageId,
        token: ClaimToken,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut messages = lock(&self.outbox);
        Ok(match messages.by_id.get_mut(&id.0) {
            Some(message) if message.held_by(token) => {
                message.finish(MessageState::Sent, now);
                true
            }
            _ => false,
        })
    }

    async fn mark_failed(
        &self,
        id: MessageId,
        token: ClaimToken,
        error: &str,
        retry: Retry,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut messages = lock(&self.outbox);
        let Some(message) = messages.by_id.get_mut(&id.0).filter(|m| m.held_by(token)) else {
            return Ok(false);
        };
        message.record.last_error = Some(truncate_error(error).to_owned());
        match retry {
            Retry::At(at) => {
                message.record.next_attempt_at = at;
                message.lease_until = None;
                message.token = None;
            }
            Retry::GiveUp => message.finish(MessageState::Undeliverable, now),
        }
        Ok(true)
    }

    async fn stats(&self) -> Result<OutboxStats, StoreError> {
        let messages = lock(&self.outbox);
        let mut stats = OutboxStats::default();
        for message in messages.by_id.values() {
            match message.record.state {
                MessageState::Pending => stats.pending += 1,
                MessageState::Undeliverable => stats.undeliverable += 1,
                MessageState::Sent => {}
            }
        }
        Ok(stats)
    }

    async fn next_due(&self) -> Result<Option<Timestamp>, StoreError> {
        let messages = lock(&self.outbox);
        Ok(messages
            .by_id
            .values()
            .filter(|m| m.record.state == MessageState::Pending)
            .map(|m| {
                m.lease_until.map_or(m.record.next_attempt_at, |until| {
                    until.max(m.record.next_attempt_at)
                })
            })
            .min())
    }

    async fn record(&self, id: MessageId) -> Result<Option<OutboxRecord>, StoreError> {
        Ok(lock(&self.outbox)
            .by_id
            .get(&id.0)
            .map(|m| m.record.clone()))
    }

    async fn purge(&self, before: Timestamp) -> Result<u64, StoreError> {
        let mut messages = lock(&self.outbox);
        let len = messages.by_id.len();
        messages
            .by_id
            .retain(|_, m| m.record.finished_at.is_none_or(|at| at >= before));
        Ok((len - messages.by_id.len()) as u64)
    }
}
