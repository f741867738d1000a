//! Recording audit events without slowing requests down.
//!
//! [`AuditTrail::record`] is a `try_send` into a bounded channel; a
//! background task drains it and appends the events to the user store in
//! batches (one transaction per batch). When the channel is full (a login
//! flood, a slow database) the event is dropped and counted, and a warning
//! with the count is logged at most every 10 s: the audit trail must not
//! become the way to slow tessera down, nor grow memory without bound.
//!
//! Short-lived processes (the `tessera user` commands) have no background
//! task: [`AuditTrail::direct`] writes each event to the store before
//! [`AuditTrail::record_now`] returns.
//!
//! [`AuditContext`] is who did it and from where: built from a request (an
//! extractor: client address through `trusted_proxies`, `User-Agent`;
//! [`AuditContext::by`] adds the authenticated caller) or for the CLI.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use tessera_core::{Actor, AuditEvent, AuditKind, StoreError, Timestamp, UserId, UserStore};
use tokio::sync::{mpsc, oneshot};

use crate::caller::Caller;
use crate::client_ip::{Peer, client_ip};
use crate::state::AppState;

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Keys [`AuditTrail::record_sampled`] remembers at most; past it, events
/// for new keys are dropped (and counted) until old windows end.
const SAMPLED_KEYS_MAX: usize = 10_000;

/// One key's window of [`AuditTrail::record_sampled`].
struct Sample {
    until: Instant,
    /// Events of this key not recorded in the window.
    skipped: u64,
}

/// How often, at most, dropped events are reported.
const DROP_WARNING_INTERVAL: Duration = Duration::from_secs(10);

/// Size of the queue and of the writer's batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditTrailConfig {
    /// Events that may wait for the writer; past it they are dropped.
    pub capacity: usize,
    /// Most events appended in one transaction.
    pub batch: usize,
    /// How long the writer gathers events before it writes them.
    pub linger: Duration,
}

impl Default for AuditTrailConfig {
    fn default() -> Self {
        Self {
            capacity: 4096,
            batch: 256,
            linger: Duration::from_millis(100),
        }
    }
}

enum Message {
    Event(AuditEvent),
    Flush(oneshot::Sender<()>),
}

enum Sink {
    /// The server: a channel to the background writer.
    Queue(mpsc::Sender<Message>),
    /// A command: straight to the store.
    Direct {
        users: Arc<dyn UserStore>,
        /// Events given to [`AuditTrail::record`], written at the next
        /// [`AuditTrail::record_now`] or [`AuditTrail::flush`].
        pending: Mutex<Vec<AuditEvent>>,
    },
}

struct Inner {
    sink: Sink,
    /// Keys recorded recently by [`AuditTrail::record_sampled`].
    sampled: Mutex<HashMap<String, Sample>>,
    /// Shared with the writer, which counts what the store refused.
    dropped: Arc<AtomicU64>,
    /// Drops already reported.
    reported: AtomicU64,
    /// When drops were last reported (unix millis).
    last_report: AtomicI64,
}

/// Where audit events go. Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct AuditTrail {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AuditTrail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match self.inner.sink {
            Sink::Queue(_) => "queue",
            Sink::Direct { .. } => "direct",
        };
        f.debug_struct("AuditTrail")
            .field("mode", &mode)
            .field("dropped", &self.dropped())
            .finish()
    }
}

impl AuditTrail {
    /// A trail whose events a background task appends to `users`. Must be
    /// called within a Tokio runtime; the task ends once every clone of the
    /// trail is gone and the queue is drained.
    pub fn spawn(users: Arc<dyn UserStore>, config: AuditTrailConfig) -> Self {
        let (tx, rx) = mpsc::channel(config.capacity.max(1));
        let trail = Self::with_sink(Sink::Queue(tx));
        let lost = Arc::clone(&trail.inner.dropped);
        tokio::spawn(write_batches(users, rx, config, lost));
        trail
    }

    /// A trail that writes straight to `users` (for commands, which run no
    /// background task and exit soon).
    pub fn direct(users: Arc<dyn UserStore>) -> Self {
        Self::with_sink(Sink::Direct {
            users,
            pending: Mutex::new(Vec::new()),
        })
    }

    fn with_sink(sink: Sink) -> Self {
        Self {
            inner: Arc::new(Inner {
                sink,
                sampled: Mutex::new(HashMap::new()),
                dropped: Arc::new(AtomicU64::new(0)),
                reported: AtomicU64::new(0),
                last_report: AtomicI64::new(0),
            }),
        }
    }

    /// Records an event without ever waiting: a channel send. If the queue
    /// is full the event is dropped and counted. (A direct trail keeps it
    /// until the next [`AuditTrail::record_now`] or [`AuditTrail::flush`].)
    pub fn record(&self, event: AuditEvent) {
        match &self.inner.sink {
            Sink::Queue(tx) => {
                if tx.try_send(Message::Event(event)).is_err() {
                    self.count_drop();
                }
            }
            Sink::Direct { pending, .. } => lock(pending).push(event),
        }
    }

    /// Records at most one event per `key` every `every`: the cheap,
    /// repeatable events an attacker could otherwise turn into a write each
    /// (throttled logins, API key use). The first of a window is recorded;
    /// the rest are counted, and the count is added to the detail of the
    /// next one recorded for the key. Never waits.
    pub fn record_sampled(&self, key: &str, every: Duration, mut event: AuditEvent) {
        let now = Instant::now();
        let skipped = {
            let mut sampled = lock(&self.inner.sampled);
            if let Some(sample) = sampled.get_mut(key) {
                if now < sample.until {
                    sample.skipped += 1;
                    return;
                }
                let skipped = sample.skipped;
                *sample = Sample {
                    until: now + every,
                    skipped: 0,
                };
                skipped
            } else {
                if sampled.len() >= SAMPLED_KEYS_MAX {
                    sampled.retain(|_, s| now < s.until);
                }
                if sampled.len() >= SAMPLED_KEYS_MAX {
                    drop(sampled);
                    self.count_drop();
                    return;
                }
                sampled.insert(
                    key.to_owned(),
                    Sample {
                        until: now + every,
                        skipped: 0,
                    },
                );
                0
            }
        };
        if skipped > 0 {
            let detail = format!(
                "{}{}{skipped} more like it before, not recorded one by one",
                event.detail,
                if event.detail.is_empty() { "" } else { "; " }
            );
            event = event.detail(detail);
        }
        self.record(event);
    }

    /// Records an event; a direct trail writes it (and anything pending)
    /// before returning, a queued one behaves as [`AuditTrail::record`].
    ///
    /// # Errors
    ///
    /// Store errors of a direct trail.
    pub async fn record_now(&self, event: AuditEvent) -> Result<(), StoreError> {
        match &self.inner.sink {
            Sink::Queue(_) => {
                self.record(event);
                Ok(())
            }
            Sink::Direct { users, pending } => {
                let mut events = std::mem::take(&mut *lock(pending));
                events.push(event);
                users.record_audit_batch(&events).await
            }
        }
    }

    /// Waits until every event recorded so far is written (or dropped).
    /// For shutdown and tests; never on the request path.
    ///
    /// # Errors
    ///
    /// Store errors of a direct trail.
    pub async fn flush(&self) -> Result<(), StoreError> {
        match &self.inner.sink {
            Sink::Queue(tx) => {
                let (done, written) = oneshot::channel();
                if tx.send(Message::Flush(done)).await.is_ok() {
                    let _ = written.await;
                }
                Ok(())
            }
            Sink::Direct { users, pending } => {
                let events = std::mem::take(&mut *lock(pending));
                users.record_audit_batch(&events).await
            }
        }
    }

    /// Events dropped so far (queue full, or the store failed).
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    fn count_drop(&self) {
        self.inner.dropped.fetch_add(1, Ordering::Relaxed);
        report_drops(&self.inner);
    }
}

/// Logs the drops not yet reported, at most every [`DROP_WARNING_INTERVAL`].
fn report_drops(inner: &Inner) {
    let now = Timestamp::now().unix_millis();
    let last = inner.last_report.load(Ordering::Relaxed);
    let interval = DROP_WARNING_INTERVAL.as_millis() as i64;
    if now - last < interval
        || inner
            .last_report
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
    {
        return;
    }
    let total = inner.dropped.load(Ordering::Relaxed);
    let before = inner.reported.swap(total, Ordering::Relaxed);
    tracing::warn!(
        dropped = total - before,
        dropped_total = total,
        "audit events dropped: the audit queue is full or the user store failed"
    );
}

/// The background writer: appends what arrives, up to `batch` at a time.
async fn write_batches(
    users: Arc<dyn UserStore>,
    mut rx: mpsc::Receiver<Message>,
    config: AuditTrailConfig,
    lost: Arc<AtomicU64>,
) {
    let batch = config.batch.max(1);
    let mut events = Vec::with_capacity(batch);
    let mut waiting = Vec::new();
    while let Some(first) = rx.recv().await {
        // Gather for up to `linger` (less if the batch fills or someone
        // waits for a flush): one write per batch, not per event, keeps the
        // writer off the database (and its lock, which SQLite shares with
        // session writes) under load.
        let deadline = tokio::time::Instant::now() + config.linger;
        let mut next = Some(first);
        loop {
            match next.take() {
                Some(Message::Event(event)) => events.push(event),
                Some(Message::Flush(done)) => waiting.push(done),
                None => {}
            }
            if events.len() >= batch || !waiting.is_empty() {
                break;
            }
            match rx.try_recv() {
                Ok(message) => next = Some(message),
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                Err(mpsc::error::TryRecvError::Empty) => {
                    match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(Some(message)) => next = Some(message),
                        Ok(None) | Err(_) => break,
                    }
                }
            }
        }
        if !events.is_empty() {
            if !append(users.as_ref(), &events).await {
                lost.fetch_add(events.len() as u64, Ordering::Relaxed);
            }
            events.clear();
        }
        for done in waiting.drain(..) {
            let _ = done.send(());
        }
    }
}

/// Appends one batch, retrying once after a pause; a batch the store
/// refuses twice is logged and lost (the writer must keep draining).
/// Whether it was written.
async fn append(users: &dyn UserStore, events: &[AuditEvent]) -> bool {
    for attempt in 0..2 {
        match users.record_audit_batch(events).await {
            Ok(()) => return true,
            Err(error) if attempt == 0 => {
                tracing::warn!(%error, events = events.len(), "audit write failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(error) => {
                tracing::error!(%error, events = events.len(), "audit events lost: the user store refused them");
            }
        }
    }
    false
}

/// Who caused an event and from where; every event of one request or
/// command shares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditContext {
    /// Who did it.
    pub actor: Actor,
    /// The client's address (through `trusted_proxies`).
    pub ip: Option<IpAddr>,
    /// The client's `User-Agent`.
    pub user_agent: Option<String>,
    /// The handle of the session (or token family) the caller used.
    pub session: Option<String>,
    /// The request's `X-Request-Id` (as [`observe`](crate::observe) set it:
    /// a trusted proxy's, or generated).
    pub request_id: Option<String>,
}

impl AuditContext {
    /// An operator at a shell.
    pub fn cli() -> Self {
        Self::of_actor(Actor::Cli)
    }

    /// tessera itself.
    pub fn system() -> Self {
        Self::of_actor(Actor::System)
    }

    /// `actor`, with no request behind it.
    pub fn of_actor(actor: Actor) -> Self {
        Self {
            actor,
            ip: None,
            user_agent: None,
            session: None,
            request_id: None,
        }
    }

    /// An anonymous request from `ip` with these headers.
    pub fn request(ip: Option<IpAddr>, headers: &HeaderMap) -> Self {
        Self {
            actor: Actor::Anonymous,
            ip,
            user_agent: headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            session: None,
            // The id the observe pass gave the request running on this
            // thread; without that pass (an app's own router), the header.
            request_id: crate::observe::with_current_request_id(|id| id.map(str::to_owned))
                .or_else(|| {
                    headers
                        .get(&crate::observe::X_REQUEST_ID)
                        .filter(|v| crate::observe::valid_request_id(v.as_bytes()))
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                }),
        }
    }

    /// The same request, made by this authenticated caller.
    #[must_use]
    pub fn by(mut self, caller: &Caller) -> Self {
        let credential = caller.credential();
        self.actor = credential.actor();
        self.session = credential.handle().map(|h| h.as_str().to_owned());
        self
    }

    /// An event of `kind` with this context (actor, address, user agent,
    /// session handle).
    pub fn event(&self, kind: AuditKind) -> AuditEvent {
        AuditEvent::new(kind, self.actor.clone())
            .ip(self.ip)
            .user_agent(self.user_agent.clone())
            .session(self.session.clone())
            .request_id(self.request_id.clone())
    }

    /// An event of `kind` about `subject`.
    pub fn event_about(&self, kind: AuditKind, subject: UserId) -> AuditEvent {
        self.event(kind).subject(subject)
    }
}

/// Extracted from any request (never fails): anonymous, with the client's
/// address and `User-Agent`; add the caller with [`AuditContext::by`].
impl<S> FromRequestParts<S> for AuditContext
where
    Arc<AppState>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = Arc::<AppState>::from_ref(state);
        let ip = Peer::of(&parts.extensions)
            .0
            .map(|peer| client_ip(peer, &parts.headers, &state.config.trusted_proxies));
        Ok(Self::request(ip, &parts.headers))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_core::{AuditQuery, Timestamp};
    use tessera_store::MemoryStore;

    fn event(i: usize) -> AuditEvent {
        AuditEvent::new(AuditKind::LoginFailed, Actor::Anonymous).detail(format!("{i}"))
    }

    #[tokio::test]
    async fn queued_events_are_written_in_order() {
        let store = Arc::new(MemoryStore::default());
        let trail = AuditTrail::spawn(store.clone(), AuditTrailConfig::default());
        for i in 0..600 {
            trail.record(event(i));
        }
        trail.flush().await.unwrap();
        let mut query = AuditQuery::latest(500);
        query.order = tessera_core::AuditOrder::OldestFirst;
        let page = store.audit_events(&query).await.unwrap();
        let details: Vec<String> = page.events.iter().map(|r| r.event.detail.clone()).collect();
        let expected: Vec<String> = (0..500).map(|i| i.to_string()).collect();
        assert_eq!(details, expected);
        assert_eq!(trail.dropped(), 0);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let store = Arc::new(MemoryStore::default());
        let trail = AuditTrail::spawn(
            store.clone(),
            AuditTrailConfig {
                capacity: 8,
                batch: 4,
                linger: Duration::from_millis(100),
            },
        );
        // The writer cannot run before this task yields: 8 fit, 12 drop.
        let started = std::time::Instant::now();
        for i in 0..20 {
            trail.record(event(i));
        }
        assert!(started.elapsed() < Duration::from_millis(50));
        assert_eq!(trail.dropped(), 12);
        trail.flush().await.unwrap();
        let page = store.audit_events(&AuditQuery::latest(100)).await.unwrap();
        assert_eq!(page.events.len(), 8);
    }

    #[tokio::test]
    async fn a_direct_trail_writes_before_returning() {
        let store = Arc::new(MemoryStore::default());
        let trail = AuditTrail::direct(store.clone());
        trail.record(event(1));
        trail.record_now(event(2)).await.unwrap();
        let page = store.audit_events(&AuditQuery::latest(10)).await.unwrap();
        assert_eq!(page.events.len(), 2);
        trail.record(event(3));
        trail.flush().await.unwrap();
        let page = store.audit_events(&AuditQuery::latest(10)).await.unwrap();
        assert_eq!(page.events[0].event.detail, "3");
        assert!(page.events[0].event.at <= Timestamp::now());
    }

    #[tokio::test]
    async fn sampled_events_are_recorded_once_per_window_with_a_count() {
        let store = Arc::new(MemoryStore::default());
        let trail = AuditTrail::spawn(store.clone(), AuditTrailConfig::default());
        let window = Duration::from_millis(200);
        for _ in 0..1000 {
            trail.record_sampled("10.0.0.1", window, event(1).detail("throttled"));
        }
        trail.record_sampled("10.0.0.2", window, event(2));
        tokio::time::sleep(window + Duration::from_millis(50)).await;
        trail.record_sampled("10.0.0.1", window, event(3).detail("throttled"));
        trail.flush().await.unwrap();
        let page = store.audit_events(&AuditQuery::latest(100)).await.unwrap();
        let details: Vec<&str> = page
            .events
            .iter()
            .rev()
            .map(|r| r.event.detail.as_str())
            .collect();
        assert_eq!(
            details,
            [
                "throttled",
                "2",
                "throttled; 999 more like it before, not recorded one by one"
            ]
        );
        assert_eq!(trail.dropped(), 0);
    }

    #[test]
    fn request_context_keeps_the_user_agent_and_address() {
        let mut headers = HeaderMap::new();
        headers.insert(header::USER_AGENT, "curl/8".parse().unwrap());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let event = AuditContext::request(Some(ip), &headers).event(AuditKind::LoginFailed);
        assert_eq!(event.actor, Actor::Anonymous);
        assert_eq!(event.ip, Some(ip));
        assert_eq!(event.user_agent.as_deref(), Some("curl/8"));
        assert_eq!(event.session, None);
    }
}
