//! [`WriteDeadline`]: a write the peer does not take within the write
//! timeout fails, and the connection with it.
//!
//! Written here rather than taken from `tokio-io-timeout`, whose writer arms
//! its timer before every write and disarms it after (two timer-wheel
//! updates and two clock reads per response, a few per cent of a fast
//! route): this one starts the timer only when a write would block, which a
//! client that reads its answers never makes it do.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

pin_project_lite::pin_project! {
    /// `stream`, whose writes (and flushes and shutdown) fail with
    /// [`io::ErrorKind::TimedOut`] once one has waited `timeout` for the
    /// peer to take bytes. Reads pass through.
    #[derive(Debug)]
    pub struct WriteDeadline<S> {
        #[pin]
        stream: S,
        timeout: Duration,
        // Made at the first write that blocks, reset at the next ones.
        timer: Option<Pin<Box<Sleep>>>,
        // A write is waiting for the peer: the timer runs.
        blocked: bool,
    }
}

impl<S> WriteDeadline<S> {
    /// `stream` with writes bounded by `timeout`.
    pub fn new(stream: S, timeout: Duration) -> Self {
        Self {
            stream,
            timeout,
            timer: None,
            blocked: false,
        }
    }

    /// The stream within.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }
}

/// What a write returned, checked against the deadline: `Pending` starts
/// (or keeps) the timer, and fails once it has run out; anything else
/// stops it.
fn checked<T>(
    result: Poll<io::Result<T>>,
    timer: &mut Option<Pin<Box<Sleep>>>,
    blocked: &mut bool,
    timeout: Duration,
    cx: &mut Context<'_>,
) -> Poll<io::Result<T>> {
    if result.is_ready() {
        *blocked = false;
        return result;
    }
    if !*blocked {
        *blocked = true;
        let deadline = Instant::now() + timeout;
        match timer {
            Some(timer) => timer.as_mut().reset(deadline),
            None => *timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
        }
    }
    if let Some(timer) = timer {
        ready!(timer.as_mut().poll(cx));
        *blocked = false;
        return Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the peer took no bytes within the write timeout",
        )));
    }
    Poll::Pending
}

impl<S: AsyncRead> AsyncRead for WriteDeadline<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.project().stream.poll_read(cx, buf)
    }
}

impl<S: AsyncWrite> AsyncWrite for WriteDeadline<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let result = this.stream.poll_write(cx, buf);
        checked(result, this.timer, this.blocked, *this.timeout, cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let result = this.stream.poll_write_vectored(cx, bufs);
        checked(result, this.timer, this.blocked, *this.timeout, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        let result = this.stream.poll_flush(cx);
        checked(result, this.timer, this.blocked, *this.timeout, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        let result = this.stream.poll_shutdown(cx);
        checked(result, this.timer, this.blocked, *this.timeout, cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, duplex};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_write_the_client_never_takes_fails_after_the_write_timeout() {
        // The other end never reads: the 1 KiB pipe fills, then the write waits.
        let (ours, _theirs) = duplex(1024);
        let mut stream = Box::pin(WriteDeadline::new(ours, Duration::from_secs(15)));
        let started = Instant::now();
        let error = stream.write_all(&[0u8; 64 * 1024]).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(15));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_reader_that_keeps_taking_bytes_is_not_cut_off() {
        // The peer takes 1 KiB every 10 s: every wait is shorter than the
        // timeout, the whole write much longer.
        let (ours, mut theirs) = duplex(1024);
        let reader = tokio::spawn(async move {
            let mut total = 0;
            let mut chunk = [0u8; 1024];
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                match theirs.read(&mut chunk).await.unwrap() {
                    0 => return total,
                    n => total += n,
                }
            }
        });
        let mut stream = Box::pin(WriteDeadline::new(ours, Duration::from_secs(15)));
        let started = Instant::now();
        stream.write_all(&[0u8; 16 * 1024]).await.unwrap();
        stream.shutdown().await.unwrap();
        drop(stream);
        assert_eq!(reader.await.unwrap(), 16 * 1024);
        assert!(started.elapsed() > Duration::from_secs(100));
    }
}
