//! Distributed tracing: which spans the service makes, and whose trace a
//! request may continue.
//!
//! Every request runs in a `request` span ([`crate::observe`]) and every
//! store call in a `store` span under it (level DEBUG, target
//! `tessera::store`, made by [`crate::store_calls`] when [`Traces`] are
//! configured). This library exports nothing itself: whatever subscribes
//! to the spans does (the `tessera` binary sends them over OTLP/HTTP with
//! `tracing-opentelemetry`). What belongs here is the trust decision: a
//! request continues the trace its W3C `traceparent` names only when it
//! comes from a trusted proxy (see [`crate::client_ip`]); anyone else's
//! starts a trace of its own, so that a client can neither join nor flood
//! somebody else's trace.
//!
//! Off (no [`Traces`] in the [`AppConfig`](crate::AppConfig)), a request
//! pays for none of it: no header is read, no field recorded, and the store
//! spans are not made.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::{HeaderMap, HeaderName};

/// `traceparent` (W3C Trace Context).
pub static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// `tracestate` (W3C Trace Context).
pub static TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// The log target of the store spans.
pub const STORE_SPANS: &str = "tessera::store";

/// Makes a request's span continue a trace begun upstream: implemented by
/// whatever exports the spans (it knows how its spans link to a remote
/// parent).
pub trait TraceParent: Send + Sync + 'static {
    /// Makes `span` a child of the remote span `headers` name
    /// (`traceparent`, `tracestate`). Called only for requests from a
    /// trusted proxy that carry a `traceparent`. A malformed one is ignored:
    /// the span starts a trace of its own.
    fn continue_trace(&self, span: &tracing::Span, headers: &HeaderMap);
}

/// Tracing is on: requests record their route and status on their span (as
/// the OpenTelemetry conventions name them), store calls get spans, and
/// trusted proxies' trace context is continued through the [`TraceParent`].
///
/// Sampling is decided here, before any span is made: a request that
/// continues a trusted proxy's trace gets its span (the exporter follows the
/// proxy's sampled flag); any other request gets one with probability
/// `sample_ratio`, and the others make no span at all, nor do their store
/// calls. (Deciding it in the exporter's sampler instead left every request
/// paying for a span the exporter then dropped.) The exporter should
/// therefore sample every root it is given.
#[derive(Clone)]
pub struct Traces {
    parent: Arc<dyn TraceParent>,
    /// Roots sampled when `splitmix64(n) < threshold`; `u64::MAX`: all.
    threshold: u64,
}

impl Traces {
    /// Tracing with `parent` linking requests to their upstream trace, and
    /// `sample_ratio` (0 to 1) of the other requests traced.
    pub fn new(parent: Arc<dyn TraceParent>, sample_ratio: f64) -> Self {
        let threshold = if sample_ratio >= 1.0 {
            u64::MAX
        } else if sample_ratio > 0.0 {
            // Lossy by design: a ratio, not an exact count.
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                clippy::cast_precision_loss
            )]
            let threshold = (sample_ratio * u64::MAX as f64) as u64;
            threshold
        } else {
            0
        };
        Self { parent, threshold }
    }

    /// Whether a request gets a span: it continues a trusted proxy's trace
    /// (`trusted` and a `traceparent`), or it is sampled.
    pub(crate) fn wants(&self, headers: &HeaderMap, trusted: bool) -> bool {
        (trusted && headers.contains_key(&TRACEPARENT)) || self.sampled()
    }

    fn sampled(&self) -> bool {
        static DRAWS: AtomicU64 = AtomicU64::new(0);
        match self.threshold {
            u64::MAX => true,
            0 => false,
            threshold => splitmix64(DRAWS.fetch_add(1, Ordering::Relaxed)) < threshold,
        }
    }

    /// Continues the trace `headers` name on `span`, when they carry a
    /// `traceparent`; `trusted`: the request came from a trusted proxy.
    pub(crate) fn continue_trace(&self, span: &tracing::Span, headers: &HeaderMap, trusted: bool) {
        if trusted && headers.contains_key(&TRACEPARENT) {
            self.parent.continue_trace(span, headers);
        }
    }
}

/// A well-spread 64-bit value of a counter (Steele, Lea and Flood's
/// SplitMix64 finaliser): uniform enough to sample by, and no shared RNG.
fn splitmix64(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl std::fmt::Debug for Traces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Traces")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Nobody;

    impl TraceParent for Nobody {
        fn continue_trace(&self, _: &tracing::Span, _: &HeaderMap) {}
    }

    #[test]
    fn a_ratio_samples_about_that_share_of_requests() {
        let none = HeaderMap::new();
        for (ratio, low, high) in [
            (0.0, 0, 0),
            (0.1, 800, 1200),
            (0.5, 4700, 5300),
            (1.0, 10_000, 10_000),
        ] {
            let traces = Traces::new(Arc::new(Nobody), ratio);
            let sampled = (0..10_000).filter(|_| traces.wants(&none, false)).count();
            assert!((low..=high).contains(&sampled), "{ratio}: {sampled}");
        }
        // A trusted proxy's trace is always continued (its flag decides).
        let mut continued = HeaderMap::new();
        continued.insert(
            &TRACEPARENT,
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
                .parse()
                .unwrap(),
        );
        let never = Traces::new(Arc::new(Nobody), 0.0);
        assert!(never.wants(&continued, true));
        assert!(!never.wants(&continued, false), "only from a trusted proxy");
    }
}
