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
#[derive(Clone)]
pub struct Traces {
    parent: Arc<dyn TraceParent>,
}

impl Traces {
    /// Tracing with `parent` linking requests to their upstream trace.
    pub fn new(parent: Arc<dyn TraceParent>) -> Self {
        Self { parent }
    }

    /// Continues the trace `headers` name on `span`, when they carry a
    /// `traceparent`; `trusted`: the request came from a trusted proxy.
    pub(crate) fn continue_trace(&self, span: &tracing::Span, headers: &HeaderMap, trusted: bool) {
        if trusted && headers.contains_key(&TRACEPARENT) {
            self.parent.continue_trace(span, headers);
        }
    }
}

impl std::fmt::Debug for Traces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Traces")
    }
}
