//! The counts taken on every request and store call, without a lock or a
//! map insert: a table with a row per declared route (and per store
//! operation) built at start-up, atomic counters in it, and latency
//! histograms whose buckets are atomics too. (`prometheus-client`'s
//! `Family` takes a lock and hashes the whole label set per count, and its
//! `Histogram` takes a write lock per observation: together they cost a
//! fast route a third of its throughput.) Registered as a
//! [`Collector`], so a scrape renders the rows next to the other metrics.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::http::StatusCode;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeMetric as _, NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;

/// The route label of a request no route matched.
pub(crate) const UNMATCHED: &str = "unmatched";

/// Upper bounds of the latency buckets: 100 µs × 2^k, k = 0..16 (to
/// ~6.5 s), and +Inf.
const BUCKETS: usize = 17;

/// The smallest bucket's upper bound, in nanoseconds.
const FIRST_BOUND_NS: u64 = 100_000;

/// A latency histogram with atomic buckets.
pub(crate) struct Timer {
    /// Observations per bucket (not cumulative), the last one +Inf.
    counts: [AtomicU64; BUCKETS + 1],
    sum_ns: AtomicU64,
}

impl Timer {
    fn new() -> Self {
        Self {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_ns: AtomicU64::new(0),
        }
    }

    fn observe(&self, elapsed: Duration) {
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.counts[bucket_of(ns)].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    fn encode(&self, encoder: &mut prometheus_client::encoding::MetricEncoder) -> std::fmt::Result {
        let mut cumulative = 0;
        let mut buckets = [(0.0, 0); BUCKETS + 1];
        for (k, (bucket, count)) in buckets.iter_mut().zip(&self.counts).enumerate() {
            cumulative += count.load(Ordering::Relaxed);
            let bound = if k < BUCKETS {
                (FIRST_BOUND_NS << k) as f64 / 1e9
            } else {
                f64::INFINITY
            };
            *bucket = (bound, cumulative);
        }
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(sum, cumulative, &buckets, None)
    }
}

/// The bucket of an observation of `ns` nanoseconds: the first whose bound
/// is at least `ns`, or +Inf.
fn bucket_of(ns: u64) -> usize {
    if ns <= FIRST_BOUND_NS {
        return 0;
    }
    // ns in (B·2^(k-1), B·2^k] <=> (ns-1)/B in [2^(k-1), 2^k).
    let quotient = (ns - 1) / FIRST_BOUND_NS;
    usize::try_from(u64::BITS - quotient.leading_zeros())
        .unwrap_or(BUCKETS)
        .min(BUCKETS)
}

/// Statuses a row counts: 100–599.
const STATUSES: usize = 500;

/// One route template and method: its latency and answers by status.
struct RouteRow {
    route: &'static str,
    method: &'static str,
    latency: Timer,
    statuses: Box<[AtomicU64; STATUSES]>,
}

impl RouteRow {
    fn new(route: &'static str, method: &'static str) -> Self {
        Self {
            route,
            method,
            latency: Timer::new(),
            statuses: Box::new(std::array::from_fn(|_| AtomicU64::new(0))),
        }
    }

    fn count(&self, status: StatusCode, elapsed: Duration) {
        self.latency.observe(elapsed);
        let slot = usize::from(status.as_u16()).saturating_sub(100);
        if let Some(counter) = self.statuses.get(slot) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// One store operation: its latency and failures.
struct OpRow {
    operation: &'static str,
    latency: Timer,
    errors: AtomicU64,
}

/// The operations of one store contract, by index.
pub(crate) struct StoreOps {
    store: &'static str,
    rows: Vec<OpRow>,
}

impl StoreOps {
    pub(crate) fn new(store: &'static str, operations: &'static [&'static str]) -> Self {
        Self {
            store,
            rows: operations
                .iter()
                .map(|&operation| OpRow {
                    operation,
                    latency: Timer::new(),
                    errors: AtomicU64::new(0),
                })
                .collect(),
        }
    }

    /// Counts a call of operation `op` (its index).
    pub(crate) fn observe(&self, op: usize, elapsed: Duration, failed: bool) {
        if let Some(row) = self.rows.get(op) {
            row.latency.observe(elapsed);
            if failed {
                row.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Requests by route and method, and store calls by store and operation.
pub(crate) struct Calls {
    /// The declared routes: template → its methods' rows (foldhash: looked
    /// up per request with a matched route's template, never a client's
    /// path).
    declared: HashMap<&'static str, Vec<RouteRow>, foldhash::fast::RandomState>,
    /// Anything else (no route matched, or a method the route does not
    /// answer), made at its first request: bounded by the templates times
    /// the method labels.
    others: RwLock<Vec<Arc<RouteRow>>>,
    stores: RwLock<Vec<Arc<StoreOps>>>,
}

impl std::fmt::Debug for Calls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Calls")
    }
}

impl Calls {
    /// A table with a row for each `(method, template)` of `routes`.
    pub(crate) fn new(routes: impl IntoIterator<Item = (&'static str, &'static str)>) -> Self {
        let mut declared: HashMap<&'static str, Vec<RouteRow>, _> =
            HashMap::with_hasher(foldhash::fast::RandomState::default());
        for (method, route) in routes {
            declared
                .entry(route)
                .or_default()
                .push(RouteRow::new(route, method));
        }
        Self {
            declared,
            others: RwLock::new(Vec::new()),
            stores: RwLock::new(Vec::new()),
        }
    }

    /// Counts one answered request.
    pub(crate) fn request(
        &self,
        route: &str,
        method: &'static str,
        status: StatusCode,
        elapsed: Duration,
    ) {
        let rows = self.declared.get_key_value(route);
        if let Some(row) = rows.and_then(|(_, rows)| rows.iter().find(|r| r.method == method)) {
            row.count(status, elapsed);
            return;
        }
        // The label is the declared template (a `'static` str), or
        // `unmatched`: never the request's own path.
        let route = rows.map_or(UNMATCHED, |(template, _)| *template);
        self.other(route, method).count(status, elapsed);
    }

    fn other(&self, route: &'static str, method: &'static str) -> Arc<RouteRow> {
        let found = |rows: &[Arc<RouteRow>]| {
            rows.iter()
                .find(|r| r.route == route && r.method == method)
                .cloned()
        };
        if let Some(row) = found(&self.others.read().unwrap_or_else(|e| e.into_inner())) {
            return row;
        }
        let mut others = self.others.write().unwrap_or_else(|e| e.into_inner());
        if let Some(row) = found(&others) {
            return row;
        }
        let row = Arc::new(RouteRow::new(route, method));
        others.push(Arc::clone(&row));
        row
    }

    pub(crate) fn add_store(&self, ops: Arc<StoreOps>) {
        self.stores
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(ops);
    }

    fn encode_requests(&self, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        let others = self.others.read().unwrap_or_else(|e| e.into_inner());
        let mut rows: Vec<&RouteRow> = self.declared.values().flatten().collect();
        rows.extend(others.iter().map(AsRef::as_ref));
        rows.retain(|row| row.latency.count() > 0);
        rows.sort_by_key(|row| (row.route, row.method));

        let mut counter = encoder.encode_descriptor(
            "http_requests",
            "HTTP requests answered, by route template, method and status",
            None,
            MetricType::Counter,
        )?;
        for row in &rows {
            for (slot, count) in row.statuses.iter().enumerate() {
                let n = count.load(Ordering::Relaxed);
                if n > 0 {
                    let status = u16::try_from(slot + 100).unwrap_or(0);
                    let labels = RequestLabels {
                        route: row.route,
                        method: row.method,
                        status,
                    };
                    ConstCounter::new(n).encode(counter.encode_family(&labels)?)?;
                }
            }
        }
        let mut histogram = encoder.encode_descriptor(
            "http_request_duration_seconds",
            "Time from a request's arrival to its response head, by route template and method",
            None,
            MetricType::Histogram,
        )?;
        for row in &rows {
            let labels = RouteLabels {
                route: row.route,
                method: row.method,
            };
            row.latency.encode(&mut histogram.encode_family(&labels)?)?;
        }
        Ok(())
    }

    fn encode_stores(&self, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        let stores = self.stores.read().unwrap_or_else(|e| e.into_inner());
        let rows = || {
            stores.iter().flat_map(|ops| {
                ops.rows
                    .iter()
                    .filter(|row| row.latency.count() > 0)
                    .map(|row| {
                        let labels = OpLabels {
                            store: ops.store,
                            operation: row.operation,
                        };
                        (labels, row)
                    })
            })
        };
        let mut histogram = encoder.encode_descriptor(
            "store_operation_duration_seconds",
            "Time store calls took, by store and operation",
            None,
            MetricType::Histogram,
        )?;
        for (labels, row) in rows() {
            row.latency.encode(&mut histogram.encode_family(&labels)?)?;
        }
        let mut errors = encoder.encode_descriptor(
            "store_operation_errors",
            "Store calls that failed, by store and operation",
            None,
            MetricType::Counter,
        )?;
        for (labels, row) in rows() {
            let n = row.errors.load(Ordering::Relaxed);
            ConstCounter::new(n).encode(errors.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

impl Collector for Calls {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        self.encode_requests(&mut encoder)?;
        self.encode_stores(&mut encoder)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    method: &'static str,
    status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
    method: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OpLabels {
    store: &'static str,
    operation: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_that_holds_them() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(100_000), 0);
        assert_eq!(bucket_of(100_001), 1);
        assert_eq!(bucket_of(200_000), 1);
        assert_eq!(bucket_of(200_001), 2);
        assert_eq!(bucket_of(400_000), 2);
        assert_eq!(bucket_of(400_001), 3);
        assert_eq!(bucket_of(FIRST_BOUND_NS << 16), 16);
        assert_eq!(bucket_of((FIRST_BOUND_NS << 16) + 1), BUCKETS);
        assert_eq!(bucket_of(u64::MAX), BUCKETS);
    }

    #[test]
    fn unknown_routes_and_methods_get_rows_of_their_own() {
        let calls = Calls::new([("GET", "/profile")]);
        let ms = Duration::from_millis(1);
        calls.request("/profile", "GET", StatusCode::OK, ms);
        calls.request("/profile", "DELETE", StatusCode::METHOD_NOT_ALLOWED, ms);
        calls.request("/profile", "DELETE", StatusCode::METHOD_NOT_ALLOWED, ms);
        calls.request("/nowhere", "GET", StatusCode::NOT_FOUND, ms);
        let others = calls.others.read().unwrap();
        let labels: Vec<_> = others
            .iter()
            .map(|r| (r.route, r.method, r.latency.count()))
            .collect();
        assert_eq!(
            labels,
            [("/profile", "DELETE", 2), (UNMATCHED, "GET", 1)],
            "a route's template is kept, an unmatched path is not"
        );
        let row = &calls.declared["/profile"][0];
        assert_eq!(row.statuses[200 - 100].load(Ordering::Relaxed), 1);
    }
}
