//! The accept loop: every connection has a deadline and a slot.
//!
//! [`serve`] accepts TCP connections and serves a [`Router`] (or any
//! [`HttpService`], such as [`crate::app::service`]) on each with
//! hyper's HTTP/1.1 server (what `axum::serve` spoke with axum's default
//! features: no h2c), within [`ConnectionLimits`]:
//!
//! - **TLS** ([`serve_tls`]): the handshake must be done within
//!   `header_read_timeout` of the accept, then the deadlines below apply.
//! - **request heads**: a connection must deliver each request head within
//!   `header_read_timeout`, counted from when it starts waiting for one:
//!   from its first byte (so a silent socket is closed too), and between
//!   requests on a kept-alive connection (hyper's header timer).
//! - **request bodies**: the whole body must arrive within
//!   `body_read_timeout` of the request head ([`DeadlineBody`]); a handler
//!   reading it then fails with [`BodyReadTimeout`], which the JSON
//!   extractors answer with 408 ([`ApiError::RequestTimeout`](crate::ApiError)).
//! - **writes**: a write the client does not take within `write_timeout`
//!   (it stopped reading) fails, and the connection with it.
//! - **caps**: at most `max_connections` at once (when they are all taken,
//!   nothing is accepted until one closes: new clients wait in the kernel's
//!   backlog, and `accept` never runs out of file descriptors), and at most
//!   `max_connections_per_client` per client (an IPv4 address or an IPv6
//!   network, keyed as login throttling keys it); a connection over its
//!   client's cap is closed at once. Trusted proxies have no per-client cap.
//! - **shutdown**: when `shutdown` completes, nothing more is accepted,
//!   every connection is asked to finish (idle ones close at once, busy ones
//!   after the request in flight), and whatever is still open after
//!   `shutdown_timeout` is dropped.
//!
//! - **request heads**, by size: a request target over [`MAX_URI_BYTES`]
//!   is answered 414 `uri_too_long`, header fields over
//!   [`MAX_HEADER_BYTES`] in all 431 `headers_too_large`, both with the
//!   usual JSON error body, before any route runs. hyper reads heads into a
//!   buffer of [`HEAD_BUFFER_BYTES`] (its default is ~400 KiB) so that it
//!   parses every head up to those limits and leaves the answer to us. What
//!   hyper refuses itself gets its own answer, with an empty body, and the
//!   connection closed: a head that does not fit the buffer or has more than
//!   [`MAX_HEADERS`] fields (431), a request target over 65,534 bytes
//!   (414), and a request it cannot parse (400: a malformed request line,
//!   header line, `Content-Length` or `Transfer-Encoding`). An HTTP/2
//!   connection preface is closed without an answer.
//!
//! Handlers receive [`ConnectInfo<SocketAddr>`] (the peer) as
//! `into_make_service_with_connect_info` would give them.

use std::convert::Infallible;
use std::error::Error as StdError;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::response::Response;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use ipnet::IpNet;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};
use tokio_io_timeout::TimeoutStream;

use crate::client_ip::{canonical, client_network};
use crate::error::ApiError;
use crate::header_timer::HeaderTimer;
use crate::shares::{Share, Shares};
use crate::state::AppConfig;
use crate::tls::ServerTls;

/// The longest request target (path and query, or the absolute URI) served;
/// a longer one is answered 414 `uri_too_long` (JSON).
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// The most bytes of header fields (names and values, with their `": "`
/// and line ends) a request may carry; more is answered 431
/// `headers_too_large` (JSON).
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// The most header fields hyper parses (its default, kept: a larger count
/// moves its parser's field array from the stack to a heap allocation per
/// request). More are refused by hyper: 431 with an empty body.
pub const MAX_HEADERS: usize = 100;

/// hyper's read buffer for a request head: room for a request line within
/// [`MAX_URI_BYTES`] and fields within [`MAX_HEADER_BYTES`] (so those get
/// our JSON answers), and bounded, so that a stalled client holds at most
/// this much (hyper's default is ~400 KiB). A head that does not fit is
/// refused by hyper: 431 with an empty body.
pub const HEAD_BUFFER_BYTES: usize = 64 * 1024;

/// The JSON refusal of a request head over [`MAX_URI_BYTES`] or
/// [`MAX_HEADER_BYTES`], or `None` to serve it. Checked before any route
/// runs (so before the router's layers: the answer carries their headers
/// itself).
fn refuse_head<B>(request: &Request<B>) -> Option<axum::response::Response> {
    use axum::http::{HeaderValue, header};
    use axum::response::IntoResponse;

    let uri = request.uri();
    let target = uri.path_and_query().map_or(0, |p| p.as_str().len())
        + uri.authority().map_or(0, |a| a.as_str().len())
        + uri.scheme_str().map_or(0, |s| s.len() + 3);
    let fields: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    let error = if target > MAX_URI_BYTES {
        ApiError::UriTooLong(MAX_URI_BYTES)
    } else if fields > MAX_HEADER_BYTES {
        ApiError::HeadersTooLarge(MAX_HEADER_BYTES)
    } else {
        return None;
    };
    let mut response = error.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Some(response)
}

/// Deadlines and caps of the connections [`serve`] accepts. Plain data with
/// secure defaults; [`ConnectionLimits::check`] refuses values that would
/// turn a protection off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// How long a connection may take to deliver a request head, counted
    /// from when it starts waiting for one (so also: how long a silent or
    /// idle kept-alive connection stays open).
    pub header_read_timeout: Duration,
    /// How long the whole request body may take to arrive, from the
    /// request head on.
    pub body_read_timeout: Duration,
    /// How long a write may wait for a client that does not read.
    pub write_timeout: Duration,
    /// Connections open at once; beyond that nothing is accepted until one
    /// closes. Keep it below the process's file-descriptor limit.
    pub max_connections: usize,
    /// Connections open at once from one client (an IPv4 address, or an
    /// IPv6 network of the login throttle's prefix); trusted proxies have
    /// no such cap.
    pub max_connections_per_client: usize,
    /// How long shutdown waits for open connections before dropping them.
    pub shutdown_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            // Generous for any real client (a request head is one packet),
            // short enough that a stalled socket costs little.
            header_read_timeout: Duration::from_secs(15),
            // A 64 KiB body (the default limit) in 15 s is 4 KiB/s.
            body_read_timeout: Duration::from_secs(15),
            write_timeout: Duration::from_secs(15),
            max_connections: 10_000,
            // Room for a NAT of browsers (6 connections each); far below
            // what it takes to crowd out everyone else.
            max_connections_per_client: 100,
            // Below Kubernetes' default grace period of 30 s.
            shutdown_timeout: Duration::from_secs(20),
        }
    }
}

/// A [`ConnectionLimits`] value that would turn a protection off.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} must be greater than zero")]
pub struct LimitsError(pub &'static str);

impl ConnectionLimits {
    /// Refuses zero timeouts and caps (a zero timeout would refuse every
    /// request; a zero cap every connection). The error names the field.
    ///
    /// # Errors
    ///
    /// [`LimitsError`] naming the first field that is zero.
    pub fn check(&self) -> Result<(), LimitsError> {
        match self.refused().into_iter().next() {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// Every field [`ConnectionLimits::check`] would refuse, in order.
    pub fn refused(&self) -> Vec<LimitsError> {
        let fields = [
            ("header_read_timeout", self.header_read_timeout.is_zero()),
            ("body_read_timeout", self.body_read_timeout.is_zero()),
            ("write_timeout", self.write_timeout.is_zero()),
            ("max_connections", self.max_connections == 0),
            (
                "max_connections_per_client",
                self.max_connections_per_client == 0,
            ),
            ("shutdown_timeout", self.shutdown_timeout.is_zero()),
        ];
        fields
            .into_iter()
            .filter(|(_, zero)| *zero)
            .map(|(name, _)| LimitsError(name))
            .collect()
    }
}

/// What [`serve`] can serve: an axum [`Router`](axum::Router), or the API
/// with its [`observe`](crate::observe) pass around the router
/// ([`crate::app::service`]).
pub trait HttpService:
    tower::Service<Request<Body>, Response = Response, Error = Infallible, Future: Send + 'static>
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<S> HttpService for S where
    S: tower::Service<
            Request<Body>,
            Response = Response,
            Error = Infallible,
            Future: Send + 'static,
        > + Clone
        + Send
        + Sync
        + 'static
{
}

/// Serves `router` on `listener` within `limits` until `shutdown`
/// completes, then shuts down within `limits.shutdown_timeout`. Clients are
/// keyed, and trusted proxies recognised, as `app` has login throttling do
/// it (`trusted_proxies`, `throttle.ipv6_prefix`).
///
/// # Errors
///
/// None so far: errors of `accept` (such as running out of file
/// descriptors) are logged and retried, errors of a connection end that
/// connection. The `Result` leaves room for errors that must stop the
/// server.
pub async fn serve(
    listener: TcpListener,
    router: impl HttpService,
    limits: ConnectionLimits,
    app: &AppConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, router, limits, app, None, shutdown).await
}

/// As [`serve`], speaking HTTPS only with `tls`'s current certificate
/// (see [`crate::tls`]). The TLS handshake must be done within
/// `header_read_timeout`, as a request head must.
///
/// # Errors
///
/// As [`serve`].
pub async fn serve_tls(
    listener: TcpListener,
    router: impl HttpService,
    limits: ConnectionLimits,
    app: &AppConfig,
    tls: ServerTls,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, router, limits, app, Some(tls), shutdown).await
}

async fn serve_with<S: HttpService>(
    listener: TcpListener,
    router: S,
    limits: ConnectionLimits,
    app: &AppConfig,
    tls: Option<ServerTls>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let clients = Clients::new(
        app.trusted_proxies.clone(),
        app.throttle.ipv6_prefix,
        limits.max_connections_per_client,
    );
    let connection = Arc::new(PerConnection::new(router, &limits, tls));
    let (stop, stopping) = watch::channel(false);
    let mut open = JoinSet::new();
    let mut refusals = Refusals::default();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                refusals.cap_full(limits.max_connections);
                tokio::select! {
                    biased;
                    () = &mut shutdown => break,
                    slot = Arc::clone(&slots).acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => break, // never closed
                    },
                }
            }
        };
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    accept_failed(error, &mut refusals).await;
                    continue;
                }
            },
        };
        // Finished connections leave their (empty) results here.
        while open.try_join_next().is_some() {}
        let Some(client) = clients.admit(peer.ip()) else {
            refusals.over_client_cap(peer.ip(), limits.max_connections_per_client);
            drop(stream);
            continue;
        };
        let connection = Arc::clone(&connection);
        let stopping = stopping.clone();
        open.spawn(async move {
            connection.serve(stream, peer, stopping).await;
            drop((client, slot));
        });
    }
    drop(listener);
    let _ = stop.send(true);
    let count = open.len();
    if count > 0 {
        tracing::info!(
            open = count,
            timeout_s = limits.shutdown_timeout.as_secs_f64(),
            "no longer accepting; waiting for open connections"
        );
    }
    let drained = tokio::time::timeout(limits.shutdown_timeout, async {
        while open.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            dropped = open.len(),
            timeout_s = limits.shutdown_timeout.as_secs_f64(),
            "connections still open after shutdown_timeout: dropped"
        );
        open.shutdown().await;
    }
    Ok(())
}

/// What every connection is served with.
struct PerConnection<S> {
    router: S,
    builder: http1::Builder,
    body_read_timeout: Duration,
    write_timeout: Duration,
    /// The TLS handshake's deadline.
    header_read_timeout: Duration,
    tls: Option<ServerTls>,
}

impl<S: HttpService> PerConnection<S> {
    fn new(router: S, limits: &ConnectionLimits, tls: Option<ServerTls>) -> Self {
        let mut builder = http1::Builder::new();
        // The timer runs whenever the connection waits for a request head:
        // from the first byte on (so a silent socket too), and between
        // requests on a kept-alive connection (its sleeps reused: see
        // `header_timer`).
        builder
            .timer(HeaderTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_buf_size(HEAD_BUFFER_BYTES);
        Self {
            router,
            builder,
            body_read_timeout: limits.body_read_timeout,
            write_timeout: limits.write_timeout,
            header_read_timeout: limits.header_read_timeout,
            tls,
        }
    }

    /// Serves one connection until it ends, or (after `stopping`) has
    /// finished the request in flight.
    async fn serve(&self, stream: TcpStream, peer: SocketAddr, stopping: watch::Receiver<bool>) {
        let mut stream = TimeoutStream::new(stream);
        stream.set_write_timeout(Some(self.write_timeout));
        let stream = Box::pin(stream);
        match &self.tls {
            None => self.serve_io(stream, peer, stopping).await,
            Some(tls) => {
                let handshake = tls.handshake(stream, self.header_read_timeout, peer);
                if let Some(stream) = handshake.await {
                    self.serve_io(stream, peer, stopping).await;
                }
            }
        }
    }

    async fn serve_io<I>(&self, stream: I, peer: SocketAddr, mut stopping: watch::Receiver<bool>)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let io = TokioIo::new(stream);
        let router = self.router.clone();
        let body_timeout = self.body_read_timeout;
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let refused = refuse_head(&request);
            // No body (most requests): nothing to time, nothing to box.
            let mut request = request.map(|body| {
                if http_body::Body::is_end_stream(&body) {
                    Body::empty()
                } else {
                    Body::new(DeadlineBody::new(body, body_timeout))
                }
            });
            request.extensions_mut().insert(ConnectInfo(peer));
            let mut router = router.clone();
            async move {
                match refused {
                    Some(response) => Ok(response),
                    None => router.call(request).await,
                }
            }
        });
        let connection = self.builder.serve_connection(io, service);
        let mut connection = std::pin::pin!(connection);
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%peer, %error, "connection ended with an error");
                }
                return;
            }
            // A dropped sender means the server is gone: stop too.
            _ = stopping.changed() => connection.as_mut().graceful_shutdown(),
        }
        if let Err(error) = connection.await {
            tracing::debug!(%peer, %error, "connection ended with an error");
        }
    }
}

/// Open connections per client, for the per-client cap.
struct Clients {
    exempt: Vec<IpNet>,
    ipv6_prefix: u8,
    open: Shares<IpAddr>,
}

impl Clients {
    fn new(exempt: Vec<IpNet>, ipv6_prefix: u8, cap: usize) -> Self {
        Self {
            exempt,
            ipv6_prefix,
            open: Shares::new(cap),
        }
    }

    /// The client a peer address belongs to (see [`client_network`]).
    fn key(&self, ip: IpAddr) -> IpAddr {
        client_network(ip, self.ipv6_prefix)
    }

    /// A slot for a connection from `ip`, or `None` when its client has
    /// `cap` open already. Trusted proxies always get one.
    fn admit(&self, ip: IpAddr) -> Option<ClientSlot> {
        let ip = canonical(ip);
        if self.exempt.iter().any(|net| net.contains(&ip)) {
            return Some(ClientSlot(None));
        }
        self.open
            .claim(self.key(ip))
            .map(|share| ClientSlot(Some(share)))
    }
}

/// One connection counted against its client's cap (none for a trusted
/// proxy), until dropped.
struct ClientSlot(#[allow(dead_code)] Option<Share<IpAddr>>);

/// Refused connections and accept errors, logged at most once per
/// [`Refusals::EVERY`] per kind, with how many there were since the last line.
#[derive(Default)]
struct Refusals {
    over_client_cap: Tally,
    cap_full: Tally,
    accept_errors: Tally,
}

#[derive(Default)]
struct Tally {
    since_logged: u64,
    logged_at: Option<Instant>,
}

impl Tally {
    /// Counts one; `Some(count)` when it is time for a log line.
    fn count(&mut self) -> Option<u64> {
        self.since_logged += 1;
        let now = Instant::now();
        if self
            .logged_at
            .is_some_and(|at| now.duration_since(at) < Refusals::EVERY)
        {
            return None;
        }
        self.logged_at = Some(now);
        Some(std::mem::take(&mut self.since_logged))
    }
}

impl Refusals {
    const EVERY: Duration = Duration::from_secs(10);

    fn over_client_cap(&mut self, ip: IpAddr, cap: usize) {
        if let Some(refused) = self.over_client_cap.count() {
            tracing::warn!(
                client = %ip,
                cap,
                refused,
                "connections over the per-client cap closed (count since the last such line)"
            );
        }
    }

    fn cap_full(&mut self, cap: usize) {
        if let Some(times) = self.cap_full.count() {
            tracing::warn!(
                cap,
                times,
                "connection cap reached: not accepting until a connection closes"
            );
        }
    }
}

async fn accept_failed(error: std::io::Error, refusals: &mut Refusals) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    // The client gave up before we took it: nothing wrong here.
    if matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    if let Some(errors) = refusals.accept_errors.count() {
        tracing::error!(%error, errors, "accept failed; retrying shortly");
    }
    // Out of file descriptors (EMFILE) or memory: give others time to close.
    tokio::time::sleep(Duration::from_millis(250)).await;
}

/// The request body did not arrive within `body_read_timeout`.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
pub struct BodyReadTimeout(pub Duration);

impl BodyReadTimeout {
    /// Whether `error`, or any error it was caused by, is a
    /// [`BodyReadTimeout`] (the body extractors wrap it in their rejections).
    pub fn is_cause_of(error: &(dyn StdError + 'static)) -> bool {
        let mut next = Some(error);
        while let Some(error) = next {
            if error.is::<Self>() {
                return true;
            }
            next = error.source();
        }
        false
    }
}

/// A request body that must arrive whole before a deadline, counted from
/// when it was created (the request head). Past it, the next frame is an
/// error: [`BodyReadTimeout`]. (A per-frame timeout would let a client
/// trickle one byte per period forever.)
#[derive(Debug)]
pub struct DeadlineBody<B> {
    inner: B,
    timeout: Duration,
    deadline: Instant,
    /// Set on the first wait: a body that is read at once needs no timer.
    timer: Option<Pin<Box<Sleep>>>,
}

impl<B> DeadlineBody<B> {
    /// `inner`, which must arrive whole within `timeout` from now.
    pub fn new(inner: B, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            deadline: Instant::now() + timeout,
            timer: None,
        }
    }
}

impl<B> http_body::Body for DeadlineBody<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn StdError + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        let deadline = this.deadline;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyReadTimeout(this.timeout))))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncWriteExt, duplex};

    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn request_heads_are_measured_as_sent() {
        let target = |uri: String| Request::get(uri).body(()).unwrap();
        let status = |request: &Request<()>| refuse_head(request).map(|r| r.status().as_u16());
        // Origin form: path and query.
        let at = format!("/{}", "a".repeat(MAX_URI_BYTES - 1));
        assert_eq!(status(&target(at.clone())), None);
        assert_eq!(status(&target(format!("{at}a"))), Some(414));
        // Absolute form: scheme, authority and the rest all count.
        let prefix = "http://example.com/";
        let path = "a".repeat(MAX_URI_BYTES - prefix.len());
        assert_eq!(status(&target(format!("{prefix}{path}"))), None);
        assert_eq!(status(&target(format!("{prefix}{path}a"))), Some(414));
        // Fields: name, value, ": " and CRLF each.
        let mut request = target("/".to_owned());
        let value = "v".repeat(MAX_HEADER_BYTES - "x-big".len() - 4);
        request
            .headers_mut()
            .insert("x-big", value.parse().unwrap());
        assert_eq!(status(&request), None);
        request
            .headers_mut()
            .append("x", axum::http::HeaderValue::from_static(""));
        assert_eq!(status(&request), Some(431));
    }

    #[test]
    fn zero_limits_are_refused_by_name() {
        assert_eq!(ConnectionLimits::default().check(), Ok(()));
        let limits = ConnectionLimits {
            body_read_timeout: Duration::ZERO,
            ..ConnectionLimits::default()
        };
        assert_eq!(limits.check(), Err(LimitsError("body_read_timeout")));
        let limits = ConnectionLimits {
            write_timeout: Duration::ZERO,
            max_connections: 0,
            ..limits
        };
        assert_eq!(
            limits.refused(),
            vec![
                LimitsError("body_read_timeout"),
                LimitsError("write_timeout"),
                LimitsError("max_connections")
            ]
        );
    }

    #[test]
    fn a_client_is_an_ipv4_address_or_an_ipv6_64() {
        let clients = Clients::new(Vec::new(), 64, 2);
        assert_eq!(clients.key(ip("192.0.2.1")), ip("192.0.2.1"));
        assert_eq!(clients.key(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
        assert_eq!(
            clients.key(ip("2001:db8:1:2:aaaa::1")),
            clients.key(ip("2001:db8:1:2:bbbb::2"))
        );
        assert_ne!(
            clients.key(ip("2001:db8:1:2::1")),
            clients.key(ip("2001:db8:1:3::1"))
        );
    }

    #[test]
    fn the_per_client_cap_frees_slots_and_spares_trusted_proxies() {
        let clients = Clients::new(vec!["10.0.0.0/8".parse().unwrap()], 64, 2);
        let first = clients.admit(ip("192.0.2.1"));
        let second = clients.admit(ip("192.0.2.1"));
        assert!(first.is_some() && second.is_some());
        assert!(clients.admit(ip("192.0.2.1")).is_none());
        assert!(clients.admit(ip("192.0.2.2")).is_some(), "another client");
        drop(first);
        assert!(clients.admit(ip("192.0.2.1")).is_some(), "a slot freed");
        let proxies: Vec<_> = (0..5).map(|_| clients.admit(ip("10.1.2.3"))).collect();
        assert!(proxies.iter().all(Option::is_some));
        drop(proxies);
        assert!(!clients.open.holds(&ip("10.1.2.3")));
    }

    #[test]
    fn refusals_are_logged_once_per_period_with_a_count() {
        let mut tally = Tally::default();
        assert_eq!(tally.count(), Some(1));
        assert_eq!(tally.count(), None);
        assert_eq!(tally.count(), None);
        tally.logged_at = Some(Instant::now() - Refusals::EVERY);
        assert_eq!(tally.count(), Some(3));
    }

    /// A body that yields one byte every `every`, `count` times.
    struct Trickle {
        every: Duration,
        left: usize,
        next: Pin<Box<Sleep>>,
    }

    impl http_body::Body for Trickle {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            if self.left == 0 {
                return Poll::Ready(None);
            }
            std::task::ready!(self.next.as_mut().poll(cx));
            self.left -= 1;
            let next = Instant::now() + self.every;
            self.next.as_mut().reset(next);
            Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"x")))))
        }
    }

    fn trickle(every: Duration, count: usize) -> Trickle {
        Trickle {
            every,
            left: count,
            next: Box::pin(tokio::time::sleep(every)),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickled_body_fails_at_its_deadline_not_per_frame() {
        let body = DeadlineBody::new(
            trickle(Duration::from_secs(5), 100),
            Duration::from_secs(15),
        );
        let started = Instant::now();
        let error = axum::body::to_bytes(Body::new(body), usize::MAX)
            .await
            .unwrap_err();
        assert_eq!(started.elapsed(), Duration::from_secs(15));
        assert!(BodyReadTimeout::is_cause_of(&error), "{error}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_json_extractors_answer_a_late_body_with_408() {
        use axum::extract::FromRequest;

        use crate::ApiError;
        use crate::json::{ApiJson, OptionalJson};

        let late = || {
            axum::http::Request::builder()
                .method("POST")
                .header("content-type", "application/json")
                .body(Body::new(DeadlineBody::new(
                    trickle(Duration::from_secs(5), 100),
                    Duration::from_secs(15),
                )))
                .unwrap()
        };
        let strict = ApiJson::<serde_json::Value>::from_request(late(), &()).await;
        assert!(
            matches!(strict, Err(ApiError::RequestTimeout)),
            "{strict:?}"
        );
        let optional = OptionalJson::<serde_json::Value>::from_request(late(), &()).await;
        assert!(
            matches!(optional, Err(ApiError::RequestTimeout)),
            "{optional:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_within_its_deadline_arrives_whole() {
        let body = DeadlineBody::new(trickle(Duration::from_secs(1), 10), Duration::from_secs(15));
        let bytes = axum::body::to_bytes(Body::new(body), usize::MAX)
            .await
            .unwrap();
        assert_eq!(bytes.len(), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_the_client_never_takes_fails_after_the_write_timeout() {
        // The other end never reads: the 1 KiB pipe fills, then the write waits.
        let (ours, _theirs) = duplex(1024);
        let mut stream = TimeoutStream::new(ours);
        stream.set_write_timeout(Some(Duration::from_secs(15)));
        let mut stream = Box::pin(stream);
        let started = Instant::now();
        let error = stream.write_all(&[0u8; 64 * 1024]).await.unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(15));
    }
}
