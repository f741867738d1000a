//! Prometheus metrics: what the service counts, and the text it answers a
//! scrape with.
//!
//! One [`Metrics`] handle lives in the [`AppState`](crate::AppState); the
//! code that decides an outcome counts it there (a login's result in
//! `authenticate`, a refresh's in the token service, a revocation in
//! [`Revocations`](crate::tokens::Revocations), a hash in the hashing
//! pool). Requests and store calls are counted in tables built at start-up
//! (see `calls`: atomics, no lock); the rarer outcomes in
//! `prometheus-client` families. A disabled handle (no `metrics_listen`)
//! counts nothing.
//! Values that already exist elsewhere (the revocation list's size, the
//! audit queue's drops, store up/down, the outbox) are read when scraped.
//!
//! Labels are low-cardinality by construction: route templates, methods,
//! status codes and fixed result names, never a user, address, IP or id.
//! [`serve`] answers `GET /metrics` on a listener of its own, never the
//! public one.

use std::fmt::Write as _;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use crate::state::AppState;

mod calls;

use calls::Calls;
pub(crate) use calls::StoreOps;
pub(crate) use calls::UNMATCHED;

/// How a login attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginResult {
    /// Credentials checked out (the session or tokens follow).
    Ok,
    /// Unknown account or wrong password.
    BadCredentials,
    /// Right password, disabled account.
    Disabled,
    /// Refused by the throttle before any check.
    Throttled,
    /// The hashing queue was full (503).
    Busy,
    /// Right password, address not verified while that is required.
    EmailNotVerified,
    /// A store did not answer (503).
    Unavailable,
}

impl LoginResult {
    fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::BadCredentials => "bad_credentials",
            Self::Disabled => "disabled",
            Self::Throttled => "throttled",
            Self::Busy => "busy",
            Self::EmailNotVerified => "email_not_verified",
            Self::Unavailable => "unavailable",
        }
    }
}

/// How a refresh-token exchange ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshResult {
    /// The current token: the family advanced.
    Rotated,
    /// The previous token within the grace window: the same successor.
    Grace,
    /// A rotated token presented again: the family was revoked.
    Reused,
    /// Malformed, unknown, expired or revoked family, or a disabled user.
    Unknown,
}

impl RefreshResult {
    fn as_str(self) -> &'static str {
        match self {
            Self::Rotated => "rotated",
            Self::Grace => "grace",
            Self::Reused => "reused",
            Self::Unknown => "unknown",
        }
    }
}

/// The kinds of revocation (`tessera_revocations_total{kind}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevocationKind {
    /// A refresh family and its access tokens.
    Family,
    /// One access token by `jti`.
    Token,
    /// Everything a user was issued before a cutoff.
    User,
    /// One ended sealed cookie session.
    Sealed,
    /// A user's sealed sessions before a cutoff.
    SealedBefore,
}

impl RevocationKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Family => "family",
            Self::Token => "token",
            Self::User => "user",
            Self::Sealed => "sealed",
            Self::SealedBefore => "sealed_before",
        }
    }

    /// The kind of a stored revocation.
    pub fn of(revocation: &tessera_core::Revocation) -> Self {
        use tessera_core::Revocation as R;
        match revocation {
            R::Family { .. } => Self::Family,
            R::Token { .. } => Self::Token,
            R::UserBefore { .. } => Self::User,
            R::Sealed(_) => Self::Sealed,
            R::SealedBefore { .. } => Self::SealedBefore,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StoreLabel {
    store: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Store probe latencies: 100 µs to ~6.5 s.
fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.000_1, 2.0, 17))
}

/// Password hashes: 5 ms to ~2.5 s.
fn hash_time() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 10))
}

struct Inner {
    registry: Registry,
    /// Requests and store calls: counted on the hot path without a lock.
    calls: Arc<Calls>,
    logins: Family<ResultLabel, Counter>,
    refreshes: Family<ResultLabel, Counter>,
    revocations: Family<KindLabel, Counter>,
    revocation_list: Family<KindLabel, Gauge>,
    hash_queue: Gauge,
    hash_seconds: Histogram,
    store_up: Family<StoreLabel, Gauge>,
    store_probe: Histograms<StoreLabel>,
    store_errors: Family<StoreLabel, Counter>,
    near_cache: Family<ResultLabel, Counter>,
    outbox: Family<StateLabel, Gauge>,
    audit_dropped: Counter,
}

/// The service's metrics: a cheap handle (an `Arc`), or disabled.
#[derive(Clone, Default)]
pub struct Metrics(Option<Arc<Inner>>);

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Metrics(enabled)"
        } else {
            "Metrics(disabled)"
        })
    }
}

impl Metrics {
    /// Metrics that count nothing (no listener to read them).
    pub fn disabled() -> Self {
        Self(None)
    }

    /// Metrics that count, registered under the `tessera_` prefix.
    pub fn enabled() -> Self {
        let mut registry = Registry::with_prefix("tessera");
        let calls = Arc::new(Calls::new(crate::app::declared_routes()));
        registry.register_collector(Box::new(Arc::clone(&calls)));
        let inner = Inner {
            calls,
            logins: Family::default(),
            refreshes: Family::default(),
            revocations: Family::default(),
            revocation_list: Family::default(),
            hash_queue: Gauge::default(),
            hash_seconds: hash_time(),
            store_up: Family::default(),
            store_probe: Family::new_with_constructor(latency),
            store_errors: Family::default(),
            near_cache: Family::default(),
            outbox: Family::default(),
            audit_dropped: Counter::default(),
            registry: Registry::default(),
        };
        registry.register("logins", "Login attempts by result", inner.logins.clone());
        registry.register(
            "refreshes",
            "Refresh-token exchanges by result",
            inner.refreshes.clone(),
        );
        registry.register(
            "revocations",
            "Revocations saved, by kind",
            inner.revocations.clone(),
        );
        registry.register(
            "revocation_list_entries",
            "Entries of the in-memory revocation list, by kind",
            inner.revocation_list.clone(),
        );
        registry.register(
            "hash_queue_depth",
            "Password hashes running or waiting for a worker",
            inner.hash_queue.clone(),
        );
        registry.register(
            "hash_duration_seconds",
            "Time one password hash or verification took on its worker",
            inner.hash_seconds.clone(),
        );
        registry.register(
            "store_up",
            "Whether the store answered its last probe (1) or not (0)",
            inner.store_up.clone(),
        );
        registry.register(
            "store_probe_duration_seconds",
            "Round-trip time of the store probes",
            inner.store_probe.clone(),
        );
        registry.register(
            "store_errors",
            "Store probes that failed, by store",
            inner.store_errors.clone(),
        );
        registry.register(
            "session_cache_lookups",
            "Session-cache lookups (SQLite read cache, Redis near-cache) by result, since start",
            inner.near_cache.clone(),
        );
        registry.register(
            "outbox_messages",
            "Mail outbox messages by state (pending, undeliverable)",
            inner.outbox.clone(),
        );
        registry.register(
            "audit_events_dropped",
            "Audit events dropped since start (queue full or the store failed)",
            inner.audit_dropped.clone(),
        );
        Self(Some(Arc::new(Inner { registry, ..inner })))
    }

    /// Whether this handle counts.
    pub fn is_enabled(&self) -> bool {
        self.0.is_some()
    }

    /// Counts one answered request of the route `template`
    /// ([`UNMATCHED`] when no route took it).
    pub(crate) fn request(
        &self,
        template: &str,
        method: &Method,
        status: StatusCode,
        elapsed: Duration,
    ) {
        if let Some(inner) = &self.0 {
            inner
                .calls
                .request(template, method_label(method), status, elapsed);
        }
    }

    /// The table `store`'s calls are counted in, one row per operation of
    /// `operations` (by index); `None` when disabled.
    pub(crate) fn store_ops(
        &self,
        store: &'static str,
        operations: &'static [&'static str],
    ) -> Option<Arc<StoreOps>> {
        let inner = self.0.as_ref()?;
        let ops = Arc::new(StoreOps::new(store, operations));
        inner.calls.add_store(Arc::clone(&ops));
        Some(ops)
    }

    /// Counts a login attempt's result.
    pub fn login(&self, result: LoginResult) {
        if let Some(inner) = &self.0 {
            inner
                .logins
                .get_or_create(&ResultLabel {
                    result: result.as_str(),
                })
                .inc();
        }
    }

    /// Counts a refresh's result.
    pub fn refresh(&self, result: RefreshResult) {
        if let Some(inner) = &self.0 {
            inner
                .refreshes
                .get_or_create(&ResultLabel {
                    result: result.as_str(),
                })
                .inc();
        }
    }

    /// Counts a saved revocation.
    pub fn revocation(&self, kind: RevocationKind) {
        if let Some(inner) = &self.0 {
            inner
                .revocations
                .get_or_create(&KindLabel {
                    kind: kind.as_str(),
                })
                .inc();
        }
    }

    /// A hash entered (+1) or left (-1) the hashing queue.
    pub(crate) fn hash_queue(&self, delta: i64) {
        if let Some(inner) = &self.0 {
            inner.hash_queue.inc_by(delta);
        }
    }

    /// How long one hash took on its worker.
    pub(crate) fn hash_time(&self, elapsed: Duration) {
        if let Some(inner) = &self.0 {
            inner.hash_seconds.observe(elapsed.as_secs_f64());
        }
    }

    /// A store probe's result and round trip.
    pub(crate) fn store_probe(&self, store: &'static str, up: bool, elapsed: Duration) {
        if let Some(inner) = &self.0 {
            let label = StoreLabel { store };
            inner
                .store_probe
                .get_or_create(&label)
                .observe(elapsed.as_secs_f64());
            if !up {
                inner.store_errors.get_or_create(&label).inc();
            }
        }
    }

    /// The exposition text of everything counted, with the values read from
    /// `state` at this moment.
    fn render(&self, state: &AppState) -> String {
        let Some(inner) = &self.0 else {
            return String::new();
        };
        let size = state.tokens().revocations().list().len();
        for (kind, n) in [
            ("family", size.families),
            ("token", size.tokens),
            ("user", size.users),
            ("sealed", size.sealed),
            ("sealed_before", size.sealed_cutoffs),
        ] {
            inner
                .revocation_list
                .get_or_create(&KindLabel { kind })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        for (store, up) in [("sessions", state.store_up()), ("users", state.users_up())] {
            inner
                .store_up
                .get_or_create(&StoreLabel { store })
                .set(i64::from(up));
        }
        if let Some(stats) = state.sessions().cache_stats() {
            for (result, n) in [("hit", stats.hits), ("miss", stats.misses)] {
                inner
                    .near_cache
                    .get_or_create(&ResultLabel { result })
                    .inner()
                    .store(n, Ordering::Relaxed);
            }
        }
        inner
            .audit_dropped
            .inner()
            .store(state.audit().dropped(), Ordering::Relaxed);
        if state.mail().is_configured() {
            // As the sender last saw them: a scrape costs no store call.
            let stats = state.mail().stats();
            for (what, n) in [
                ("pending", stats.pending),
                ("undeliverable", stats.undeliverable),
            ] {
                inner
                    .outbox
                    .get_or_create(&StateLabel { state: what })
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
        let mut text = String::with_capacity(8 * 1024);
        if prometheus_client::encoding::text::encode(&mut text, &inner.registry).is_err() {
            text.clear();
            let _ = writeln!(text, "# encoding failed");
        }
        text
    }
}

pub(crate) fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::PUT => "PUT",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The OpenMetrics text format the encoder writes (Prometheus reads it).
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

async fn scrape(State(state): State<Arc<AppState>>) -> Response {
    let text = state.metrics().render(&state);
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
        text,
    )
        .into_response()
}

/// The metrics router: `GET /metrics`, nothing else (404 elsewhere).
pub fn router(state: Arc<AppState>) -> axum::Router {
    axum::Router::new()
        .route("/metrics", get(scrape))
        .with_state(state)
}

/// Connections the metrics listener serves at once, and from one client
/// (a scraper keeps one open).
const METRICS_CONNECTIONS: usize = 16;
const METRICS_CONNECTIONS_PER_CLIENT: usize = 4;

/// Serves [`router`] on `listener` until `shutdown` completes, through the
/// same accept loop as the public listener ([`crate::connections`]: header,
/// body and write deadlines) with small caps of its own. Keep this
/// listener off the public address: the metrics describe the service's
/// traffic and health.
///
/// # Errors
///
/// The listener failed.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = crate::connections::ConnectionLimits {
        max_connections: METRICS_CONNECTIONS,
        max_connections_per_client: METRICS_CONNECTIONS_PER_CLIENT,
        ..crate::connections::ConnectionLimits::default()
    };
    let router = router(Arc::clone(&state));
    crate::connections::serve(listener, router, limits, &state.config, shutdown).await
}
