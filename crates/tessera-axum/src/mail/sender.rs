//! The background sender: drains the outbox, woken by [`Mail::send`] and
//! by a timer (for messages other nodes enqueued, and for retries).
//!
//! Each round claims a batch of due messages with a lease (so no other
//! node sends them meanwhile), sends them concurrently through the
//! transport (each bounded by the lease), and marks each sent, or failed
//! with its next attempt time (exponential backoff), or given up. Requests
//! never wait for any of it.
//!
//! [`Mail::send`]: super::Mail::send

use std::sync::Arc;
use std::time::{Duration, Instant};

use lettre::message::Mailbox;
use tessera_core::{ClaimToken, ClaimedMail, Outbox, Retry, Timestamp};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::templates::Templates;
use super::transport::{SendFailure, Transport, build};
use super::{CachedStats, MailConfig};
use crate::state::AppState;

/// Everything the sender needs, built at start-up.
pub(crate) struct Sender {
    pub(crate) state: Arc<AppState>,
    pub(crate) outbox: Arc<dyn Outbox>,
    pub(crate) transport: Arc<Transport>,
    pub(crate) templates: Arc<Templates>,
    pub(crate) from: Mailbox,
    pub(crate) config: MailConfig,
}

/// How often sent and undeliverable metadata past its retention is purged.
const PURGE_INTERVAL: Duration = Duration::from_secs(3600);

/// Sleep after the outbox failed to answer.
const STORE_RETRY: Duration = Duration::from_secs(5);

impl Sender {
    /// Runs until the task is aborted.
    pub(crate) async fn run(self: Arc<Self>) {
        let wake = self.state.mail().waker();
        let stats = self.state.mail().cached_stats();
        let mut last_purge: Option<Instant> = None;
        loop {
            self.refresh_stats(&stats).await;
            let drained = self.drain(&stats).await;
            self.refresh_stats(&stats).await;
            if last_purge.is_none_or(|at| at.elapsed() >= PURGE_INTERVAL) {
                last_purge = Some(Instant::now());
                self.purge().await;
            }
            let pause = match drained {
                Ok(()) => self.pause().await,
                Err(()) => STORE_RETRY,
            };
            tokio::select! {
                () = wake.notified() => {}
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// Claims and sends until nothing is due. `Err` when the outbox did not
    /// answer (logged).
    async fn drain(self: &Arc<Self>, stats: &CachedStats) -> Result<(), ()> {
        loop {
            let token = ClaimToken::random();
            let batch = self
                .outbox
                .claim(
                    Timestamp::now(),
                    self.config.lease,
                    self.batch_size(),
                    token,
                )
                .await
                .map_err(|error| tracing::warn!(%error, "mail outbox: claim failed"))?;
            if batch.is_empty() {
                return Ok(());
            }
            let mut sends = JoinSet::new();
            let in_flight = Arc::new(Semaphore::new(self.transport.concurrency().max(1)));
            for claimed in batch {
                sends.spawn(Arc::clone(self).deliver(Arc::clone(&in_flight), claimed));
            }
            while sends.join_next().await.is_some() {}
            self.refresh_stats(stats).await;
        }
    }

    /// Messages claimed at a time: no more than can be sent within one
    /// lease at the transport's concurrency, even if every send takes its
    /// whole deadline (a frozen relay), so that no claim runs out unsent.
    fn batch_size(&self) -> usize {
        let waves = self.transport.deadline().map_or(usize::MAX, |deadline| {
            let per_lease = self.config.lease.as_millis() / deadline.as_millis().max(1);
            usize::try_from(per_lease).unwrap_or(usize::MAX).max(1)
        });
        self.config
            .batch
            .min(self.transport.concurrency().saturating_mul(waves))
            .max(1)
    }

    /// Until the next message is due, at most the poll interval.
    async fn pause(&self) -> Duration {
        let poll = self.config.poll_interval;
        match self.outbox.next_due().await {
            Ok(Some(due)) => {
                let now = Timestamp::now();
                if due <= now {
                    Duration::from_millis(50)
                } else {
                    due.since(now).min(poll)
                }
            }
            Ok(None) => poll,
            Err(_) => STORE_RETRY,
        }
    }

    async fn refresh_stats(&self, cache: &CachedStats) {
        match self.outbox.stats().await {
            Ok(stats) => cache.set(stats),
            Err(error) => tracing::warn!(%error, "mail outbox: stats failed"),
        }
    }

    async fn purge(&self) {
        let Some(before) = Timestamp::now()
            .unix_millis()
            .checked_sub(i64::try_from(self.config.retention.as_millis()).unwrap_or(i64::MAX))
            .map(Timestamp::from_unix_millis)
        else {
            return;
        };
        match self.outbox.purge(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(purged = n, "mail outbox: old message records deleted"),
            Err(error) => tracing::warn!(%error, "mail outbox: purge failed"),
        }
    }
}

impl Sender {
    /// Sends one claimed message (once `in_flight` has room) and records the
    /// outcome.
    async fn deliver(self: Arc<Self>, in_flight: Arc<Semaphore>, claimed: ClaimedMail) {
        let Self {
            state,
            outbox,
            transport,
            templates,
            from,
            config,
        } = &*self;
        let kind = claimed.mail.notice.kind();
        let Ok(_permit) = in_flight.acquire().await else {
            return;
        };
        // Within the lease, so that no other node can claim it while we send.
        let lease = claimed
            .lease_until
            .since(Timestamp::now())
            .saturating_sub(Duration::from_secs(1));
        let budget = transport.deadline().map_or(lease, |d| d.min(lease));
        let outcome = async {
            let rendered = templates.render(&claimed.mail).map_err(|e| SendFailure {
                permanent: false,
                reason: e.to_string(),
            })?;
            let message = build(from, &claimed.mail, rendered)?;
            match tokio::time::timeout(budget, transport.send(claimed.id, message)).await {
                Ok(result) => result,
                Err(_) => Err(SendFailure {
                    permanent: false,
                    reason: format!("no answer within {} ms", budget.as_millis()),
                }),
            }
        }
        .await;
        let now = Timestamp::now();
        let recorded = match outcome {
            Ok(()) => {
                tracing::debug!(id = %claimed.id, kind, "mail sent");
                outbox.mark_sent(claimed.id, claimed.token, now).await
            }
            Err(failure) => {
                let retry = if failure.permanent {
                    Retry::GiveUp
                } else {
                    config
                        .retry
                        .after_failure(claimed.attempts, claimed.enqueued_at, now)
                };
                match retry {
                    Retry::At(at) => tracing::warn!(
                        id = %claimed.id,
                        kind,
                        attempts = claimed.attempts,
                        retry_in_s = at.since(now).as_secs(),
                        error = %failure.reason,
                        "mail not sent; will retry"
                    ),
                    Retry::GiveUp => undeliverable(state, &claimed, &failure.reason),
                }
                outbox
                    .mark_failed(claimed.id, claimed.token, &failure.reason, retry, now)
                    .await
            }
        };
        match recorded {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                id = %claimed.id,
                kind,
                "mail outbox: the claim ran out before the outcome was recorded"
            ),
            Err(error) => tracing::warn!(
                id = %claimed.id,
                kind,
                %error,
                "mail outbox: could not record the outcome; the message will be retried after its lease"
            ),
        }
    }
}

/// A message was given up: it counts in `/health` (`mail.undeliverable`),
/// is logged, and is recorded in the audit trail as `mail_undeliverable`
/// (kind, message id, attempts; no address, no link, no reason text, which
/// may quote the relay's answer about the address).
fn undeliverable(state: &AppState, claimed: &ClaimedMail, reason: &str) {
    state.audit().record(
        tessera_core::AuditEvent::new(
            tessera_core::AuditKind::MailUndeliverable,
            tessera_core::Actor::System,
        )
        .detail(format!(
            "{} message {} given up after {} attempts",
            claimed.mail.notice.kind(),
            claimed.id,
            claimed.attempts
        )),
    );
    tracing::error!(
        id = %claimed.id,
        kind = claimed.mail.notice.kind(),
        attempts = claimed.attempts,
        error = %reason,
        "mail undeliverable: given up"
    );
}
