//! The one pass every request takes through the service's cross-cutting
//! work, around the matched route:
//!
//! - its **request id**: a trusted proxy's `X-Request-Id` (see
//!   [`client_ip`](crate::client_ip) for which peers are trusted), when it
//!   is 1–128 characters of `A-Z a-z 0-9 - _ . :`; otherwise one generated
//!   here (a per-process random prefix and a counter: no system call). It
//!   is the thread's current request id while the request runs
//!   ([`with_current_request_id`]: the log writer adds it to every line the
//!   request writes, and [`AuditContext`](crate::AuditContext) puts it in
//!   audit events) and is echoed in the response. A refused header (an
//!   untrusted peer's, or malformed) is replaced in the request with the
//!   generated id, so that nothing downstream reads it;
//! - `Cache-Control: no-store` and `X-Content-Type-Options: nosniff` on
//!   every response;
//! - the body limit (`max_body_bytes`, axum's [`DefaultBodyLimit`], which
//!   the JSON extractors obey) on every request that has a body;
//! - error responses made outside our handlers (axum's rejections) rewritten
//!   to the JSON error shape;
//! - a panicking handler answered with the JSON 500;
//! - the request's metrics (route template, method, status, latency);
//! - the access-log line ([`crate::access_log`], when configured): method,
//!   route template, status, latency, client address through
//!   `trusted_proxies`, the session handle when there is one, the request
//!   id. Never a cookie, token, password or email: none of them is a field;
//! - with [`Traces`](crate::traces::Traces) on, the OpenTelemetry fields of
//!   the request's span (`http.route`, status, ...) and a trusted proxy's
//!   trace continued.
//!
//! It is one hand-written tower service (no boxing, no extra future) instead
//! of a layer per concern: each layer costs a service clone and a future
//! per request, and together they cost `/health` a tenth of its throughput.
//!
//! It works in either place: around the whole router ([`crate::service`],
//! what [`crate::connections`] serves: no per-route level at all), or
//! inside it as a route layer ([`crate::router`], for apps that nest the
//! API in their own router). Either way it learns the matched route's
//! template from the route's handler, which names it when it is called
//! ([`route_called`], on the thread that polls this pass's future), not
//! from axum's `MatchedPath`, which only a route layer could read.

use std::future::Future;
use std::net::IpAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tower::{Layer, Service};

use crate::access_log::Entry;
use crate::client_ip::{Peer, client_ip, from_trusted_proxy};
use crate::error::{ApiError, error_body};
use crate::metrics::UNMATCHED;
use crate::state::AppState;
use crate::traces::Traces;

/// `X-Request-Id`.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest request id taken from a proxy.
const MAX_REQUEST_ID: usize = 128;

/// The session handle a response was made for, for the access log (put
/// there by [`Caller::reply`](crate::Caller::reply) and the login routes,
/// only while the access log is on).
#[derive(Debug, Clone)]
pub struct LoggedSession(pub String);

thread_local! {
    /// The template of the route whose handler this thread called last
    /// (see [`route_called`]).
    static ROUTE_CALLED: std::cell::Cell<Option<&'static str>> = const { std::cell::Cell::new(None) };
}

/// Names the route about to run: called by each route's handler as it is
/// called (and by whatever answers in its place, such as a CORS
/// preflight), on the thread that polls [`Observe`]'s future, which reads
/// it right after. A request no route took stays `unmatched`.
pub(crate) fn route_called(template: &'static str) {
    ROUTE_CALLED.set(Some(template));
}

/// Runs `f` and returns, with its result, the route a handler named while
/// it ran ([`route_called`]), if one did.
fn route_named_by<R>(f: impl FnOnce() -> R) -> (R, Option<&'static str>) {
    ROUTE_CALLED.set(None);
    let result = f();
    (result, ROUTE_CALLED.take())
}

/// Whether `value` may serve as a request id.
pub fn valid_request_id(value: &[u8]) -> bool {
    !value.is_empty()
        && value.len() <= MAX_REQUEST_ID
        && value
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// A fresh request id: 32 hex digits, a random per-process prefix and a
/// counter (unique across nodes and restarts with overwhelming
/// probability; not a secret).
pub fn generate_request_id() -> HeaderValue {
    static PREFIX: LazyLock<u64> = LazyLock::new(|| uuid::Uuid::new_v4().as_u64_pair().0);
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut text = [0u8; 32];
    hex(*PREFIX, &mut text[..16]);
    hex(n, &mut text[16..]);
    HeaderValue::from_bytes(&text).expect("hex digits")
}

fn hex(mut n: u64, out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for slot in out.iter_mut().rev() {
        *slot = DIGITS[(n & 0xf) as usize];
        n >>= 4;
    }
}

/// The layer: around the whole router (`Layer::layer`), or on its routes
/// (`Router::layer`).
#[derive(Clone)]
pub struct ObserveLayer {
    state: Arc<AppState>,
}

impl ObserveLayer {
    /// The pass for the service behind `state`.
    pub fn new(state: Arc<AppState>) -> Self {
        Self { state }
    }
}

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Observe {
            inner,
            state: Arc::clone(&self.state),
        }
    }
}

/// The service [`ObserveLayer`] makes.
#[derive(Clone)]
pub struct Observe<S> {
    inner: S,
    state: Arc<AppState>,
}

impl<S> std::fmt::Debug for Observe<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Observe")
    }
}

impl std::fmt::Debug for ObserveLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ObserveLayer")
    }
}

/// What the response side needs to know about the request.
struct Seen {
    started: Instant,
    method: Method,
    /// The matched route's template, once its handler has been called.
    route: Option<&'static str>,
    request_id: HeaderValue,
    /// Resolved only while the access log is on.
    client: Option<IpAddr>,
    state: Arc<AppState>,
}

impl<S> Service<Request> for Observe<S>
where
    S: Service<Request, Response = Response, Error = std::convert::Infallible>,
{
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = ObserveFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let started = Instant::now();
        let peer = Peer::of(request.extensions()).0;
        let trusted = &self.state.config.trusted_proxies;
        let request_id = match request.headers().get(&X_REQUEST_ID) {
            Some(given)
                if valid_request_id(given.as_bytes()) && from_trusted_proxy(peer, trusted) =>
            {
                given.clone()
            }
            refused => {
                let id = generate_request_id();
                if refused.is_some() {
                    request
                        .headers_mut()
                        .insert(X_REQUEST_ID.clone(), id.clone());
                }
                id
            }
        };
        // Only a request with a body needs it (one extension fewer, and one
        // layer fewer than `Router::layer(DefaultBodyLimit)` would add).
        if !http_body::Body::is_end_stream(request.body()) {
            DefaultBodyLimit::max(self.state.config.max_body_bytes).apply(&mut request);
        }
        let client = if self.state.config.access_log.is_some() {
            peer.map(|peer| client_ip(peer, request.headers(), trusted))
        } else {
            None
        };
        let span = match &self.state.config.traces {
            None => tracing::Span::none(),
            Some(traces) => {
                let trusted = from_trusted_proxy(peer, trusted);
                if traces.wants(request.headers(), trusted) {
                    // Named before the router runs: an exporter takes a
                    // span's name when it starts.
                    let template = crate::app::template_of(request.uri().path());
                    request_span(traces, &request, template, &request_id, trusted)
                } else {
                    tracing::Span::none()
                }
            }
        };
        let current = CurrentRequest::of(&request_id);
        let method = request.method().clone();
        // A handler may be called right away (by a route layer's inner
        // service) or only when its future is first polled (a router's).
        let (inner, route) = {
            let _entered = span.enter();
            let _current = current.enter();
            route_named_by(|| catch_unwind(AssertUnwindSafe(|| self.inner.call(request))))
        };
        let seen = Seen {
            started,
            method,
            route,
            request_id,
            client,
            state: Arc::clone(&self.state),
        };
        ObserveFuture {
            inner: inner.ok(),
            seen: Some(seen),
            span,
            current,
        }
    }
}

pin_project_lite::pin_project! {
    /// The response side of [`Observe`].
    pub struct ObserveFuture<F> {
        #[pin]
        inner: Option<F>,
        seen: Option<Seen>,
        span: tracing::Span,
        current: CurrentRequest,
    }
}

impl<F> Future for ObserveFuture<F>
where
    F: Future<Output = Result<Response, std::convert::Infallible>>,
{
    type Output = Result<Response, std::convert::Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _entered = this.span.enter();
        let _current = this.current.enter();
        let seen = this.seen.as_mut().expect("polled after completion");
        let (polled, route) = route_named_by(|| {
            this.inner
                .as_pin_mut()
                .map(|inner| catch_unwind(AssertUnwindSafe(|| inner.poll(cx))))
        });
        seen.route = seen.route.or(route);
        let response = match polled {
            Some(Ok(Poll::Pending)) => return Poll::Pending,
            Some(Ok(Poll::Ready(Ok(response)))) => response,
            Some(Ok(Poll::Ready(Err(never)))) => match never {},
            Some(Err(_)) | None => panicked(),
        };
        let seen = this.seen.take().expect("polled after completion");
        Poll::Ready(Ok(finish(seen, response, this.span)))
    }
}

/// A request's span, for tracing: named and described as the OpenTelemetry
/// conventions name an HTTP server span, continuing a trusted proxy's trace.
/// Its `request_id` attribute ties the trace to the request's log lines.
fn request_span(
    traces: &Traces,
    request: &Request,
    template: Option<&'static str>,
    request_id: &HeaderValue,
    trusted: bool,
) -> tracing::Span {
    let method = request.method().as_str();
    let template = template.unwrap_or(UNMATCHED);
    let span = tracing::info_span!(
        "request",
        otel.name = format!("{method} {template}"),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = method,
        http.route = template,
        http.response.status_code = tracing::field::Empty,
        request_id = request_id.to_str().unwrap_or_default(),
    );
    traces.continue_trace(&span, request.headers(), trusted);
    span
}

/// The longest request id, as [`CurrentRequest`] keeps it.
const ID_CAPACITY: usize = MAX_REQUEST_ID;

/// A request's id, kept inline (copied into the thread-local while the
/// request runs: no allocation, no reference count).
#[derive(Clone, Copy)]
struct CurrentRequest {
    id: [u8; ID_CAPACITY],
    len: u8,
}

thread_local! {
    static CURRENT: std::cell::Cell<Option<CurrentRequest>> = const { std::cell::Cell::new(None) };
}

impl CurrentRequest {
    fn of(request_id: &HeaderValue) -> Self {
        let bytes = request_id.as_bytes();
        let len = bytes.len().min(ID_CAPACITY);
        let mut id = [0u8; ID_CAPACITY];
        id[..len].copy_from_slice(&bytes[..len]);
        Self {
            id,
            len: u8::try_from(len).unwrap_or(0),
        }
    }

    /// Makes this the thread's current request until the guard drops.
    fn enter(&self) -> CurrentGuard {
        CurrentGuard(CURRENT.replace(Some(*self)))
    }
}

/// Restores the thread's previous current request.
struct CurrentGuard(Option<CurrentRequest>);

impl Drop for CurrentGuard {
    fn drop(&mut self) {
        CURRENT.set(self.0.take());
    }
}

/// Calls `f` with the id of the request this thread is running, if any:
/// for log writers, so that every line a request writes carries its id
/// (the `tessera` binary adds it to each line).
pub fn with_current_request_id<R>(f: impl FnOnce(Option<&str>) -> R) -> R {
    match CURRENT.get() {
        // Request ids are ASCII (checked or generated).
        Some(current) => f(std::str::from_utf8(&current.id[..usize::from(current.len)]).ok()),
        None => f(None),
    }
}

fn panicked() -> Response {
    ApiError::Internal("a handler panicked".into()).into_response()
}

fn finish(seen: Seen, response: Response, span: &tracing::Span) -> Response {
    let mut response = json_errors(response);
    let status = response.status();
    let route = seen.route.unwrap_or(UNMATCHED);
    if seen.state.config.traces.is_some() {
        span.record("http.response.status_code", status.as_u16());
        if status.is_server_error() {
            span.record("otel.status_code", "ERROR");
        }
    }
    let elapsed = seen.started.elapsed();
    seen.state
        .metrics()
        .request(route, &seen.method, status, elapsed);
    if let Some(log) = &seen.state.config.access_log {
        log.write(&Entry {
            // Valid ids are visible ASCII (checked or generated above).
            request_id: seen.request_id.to_str().unwrap_or_default(),
            method: seen.method.as_str(),
            route,
            status: status.as_u16(),
            latency_us: u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            client: seen.client,
            session: response
                .extensions()
                .get::<LoggedSession>()
                .map(|s| s.0.as_str()),
        });
    }
    headers_out(&mut response, seen.request_id);
    response
}

/// The headers every response carries.
fn headers_out(response: &mut Response, request_id: HeaderValue) {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(X_REQUEST_ID.clone(), request_id);
}

/// Rewrites error responses produced outside our handlers (axum's own
/// rejections, e.g. a malformed path) into the JSON error shape.
fn json_errors(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json {
        return response;
    }
    let code = match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        s if s.is_server_error() => "internal",
        _ => "request_error",
    };
    let message = status.canonical_reason().unwrap_or("error");
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(
        parts,
        axum::body::Body::from(error_body(code, message).to_string()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_bounded_and_plain() {
        assert!(valid_request_id(b"abc-123_x.y:z"));
        assert!(valid_request_id(&[b'a'; 128]));
        assert!(!valid_request_id(&[b'a'; 129]));
        assert!(!valid_request_id(b""));
        assert!(!valid_request_id(b"a b"));
        assert!(!valid_request_id(b"a\"b"));
        assert!(!valid_request_id("é".as_bytes()));
    }

    #[test]
    fn generated_ids_are_unique_and_valid() {
        let a = generate_request_id();
        let b = generate_request_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(valid_request_id(a.as_bytes()));
    }
}
