//! OTLP trace export (`otlp_endpoint`): the request and store spans
//! tessera-axum makes, sent over OTLP/HTTP (protobuf) to a collector by a
//! batch exporter on a thread of its own, with W3C `traceparent` continued
//! from trusted proxies.
//!
//! Off (the default), nothing here runs: the log subscriber is the plain
//! one, and the service makes no store spans.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use axum::http::HeaderMap;
use opentelemetry::KeyValue;
use opentelemetry::propagation::{Extractor, TextMapPropagator as _};
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_otlp::{Protocol, WithExportConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tessera_axum::traces::{TraceParent, Traces};
use tracing::Subscriber;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

/// The path of the traces signal under a collector's base URL.
const TRACES_PATH: &str = "/v1/traces";

/// How long one export may take before it is given up (the batch is lost,
/// the service goes on).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and how much to export.
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpSettings {
    /// The collector's traces URL (`.../v1/traces`).
    pub traces_url: String,
    /// The share of new traces sampled (0 to 1); a trusted proxy's sampling
    /// decision is followed for the traces it continues.
    pub sample_ratio: f64,
}

impl OtlpSettings {
    /// The settings for `endpoint` (a collector's base URL, e.g.
    /// `http://127.0.0.1:4318`, or its full traces URL) and `sample_ratio`.
    ///
    /// # Errors
    ///
    /// Not an `http://` URL (the exporter speaks plain HTTP: run the
    /// collector's agent beside tessera), or a ratio outside 0 to 1.
    pub fn new(endpoint: &str, sample_ratio: f64) -> anyhow::Result<Self> {
        let Some(rest) = endpoint.strip_prefix("http://") else {
            bail!(
                "otlp_endpoint must be an http:// URL (e.g. http://127.0.0.1:4318): \
                 spans are sent in plain HTTP to a collector beside tessera"
            );
        };
        if rest.is_empty() || rest.starts_with('/') {
            bail!("otlp_endpoint ({endpoint}) names no host");
        }
        if !(0.0..=1.0).contains(&sample_ratio) {
            bail!("otlp_sample_ratio ({sample_ratio}) must be between 0 and 1");
        }
        let base = endpoint.trim_end_matches('/');
        let traces_url = if base.ends_with(TRACES_PATH) {
            base.to_owned()
        } else {
            format!("{base}{TRACES_PATH}")
        };
        Ok(Self {
            traces_url,
            sample_ratio,
        })
    }
}

/// The running exporter. [`Exporter::shutdown`] sends what is queued; call
/// it outside the async runtime (its HTTP client blocks).
pub struct Exporter {
    provider: SdkTracerProvider,
    sample_ratio: f64,
}

impl Exporter {
    /// Starts the exporter thread. Call before the async runtime starts.
    ///
    /// # Errors
    ///
    /// The HTTP client could not be built.
    pub fn start(settings: &OtlpSettings) -> anyhow::Result<Self> {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(&settings.traces_url)
            .with_timeout(EXPORT_TIMEOUT)
            .build()
            .context("otlp_endpoint: cannot build the exporter")?;
        let resource = Resource::builder()
            .with_service_name("tessera")
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .build();
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            // The service samples its roots itself (`Traces`: an unsampled
            // request makes no span at all); a trusted proxy's flag decides
            // for the traces it continues.
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)))
            .with_resource(resource)
            .build();
        Ok(Self {
            provider,
            sample_ratio: settings.sample_ratio,
        })
    }

    /// The layer that turns spans into OpenTelemetry spans: the service's
    /// own spans (`tessera*` targets, the store spans at DEBUG included)
    /// and warnings and errors as span events; nothing else.
    pub fn layer<S>(&self) -> impl Layer<S>
    where
        S: Subscriber + for<'span> LookupSpan<'span> + Send + Sync,
    {
        let tracer = self.provider.tracer("tessera");
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
                if meta.is_span() {
                    meta.target().starts_with("tessera")
                } else {
                    *meta.level() <= tracing::Level::WARN
                }
            }))
    }

    /// What the service needs to continue trusted proxies' traces.
    pub fn traces(&self) -> Traces {
        Traces::new(
            Arc::new(W3cTraceParent(TraceContextPropagator::new())),
            self.sample_ratio,
        )
    }

    /// Sends what is queued and stops the exporter thread.
    pub fn shutdown(self) {
        if let Err(error) = self.provider.shutdown() {
            eprintln!("otlp: spans not sent at shutdown: {error}");
        }
    }
}

/// Continues W3C trace contexts (`traceparent`, `tracestate`).
struct W3cTraceParent(TraceContextPropagator);

impl TraceParent for W3cTraceParent {
    fn continue_trace(&self, span: &tracing::Span, headers: &HeaderMap) {
        let context = self.0.extract(&Headers(headers));
        // A malformed traceparent extracts to an empty context: the span
        // starts a trace of its own.
        if context.span().span_context().is_valid() {
            let _ = span.set_parent(context);
        }
    }
}

/// The request's headers as the propagator reads them.
struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|name| name.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_is_a_collector_base_or_its_traces_url() {
        let url = |e| OtlpSettings::new(e, 1.0).map(|s| s.traces_url);
        assert_eq!(
            url("http://127.0.0.1:4318").unwrap(),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            url("http://collector:4318/").unwrap(),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(
            url("http://collector:4318/v1/traces").unwrap(),
            "http://collector:4318/v1/traces"
        );
        for bad in [
            "https://collector:4318",
            "collector:4318",
            "http://",
            "http:///x",
        ] {
            assert!(url(bad).is_err(), "{bad}");
        }
        assert!(OtlpSettings::new("http://c:4318", 1.5).is_err());
        assert!(OtlpSettings::new("http://c:4318", -0.1).is_err());
        assert!(OtlpSettings::new("http://c:4318", f64::NAN).is_err());
    }
}
