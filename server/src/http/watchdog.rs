//! Write timeouts for every connection: a client that stops reading cannot
//! hold a response — and the memory and connection slot behind it — for
//! longer than the idle timeout, and a client that reads too slowly cannot
//! hold a long download beyond its time limit.
//!
//! hyper stops polling a response body while the socket is full, so a
//! timer inside the body would never fire for a client that does not read.
//! The watch is therefore on the connection's writes: [`WatchedIo`] wraps
//! the TLS stream, and when a write or flush stays blocked for the idle
//! timeout (no byte accepted by the socket), or is still blocked past the
//! connection's response deadline, it fails with `TimedOut` and hyper drops
//! the connection (and with it the body and its budget share).
//!
//! The response deadline is set by the handlers of long responses (blob
//! downloads) through the [`ResponseDeadline`] each request carries in its
//! extensions, and cleared when the last such body is dropped.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// The latest time by which the long responses in progress on one
/// connection must be sent.
#[derive(Debug, Default)]
pub struct ResponseDeadline {
    /// (long bodies in progress, latest deadline among them).
    state: Mutex<(usize, Option<Instant>)>,
}

impl ResponseDeadline {
    /// Registers a long body that must be sent by `deadline`; the returned
    /// guard unregisters it when dropped.
    pub fn arm(self: &Arc<Self>, deadline: Instant) -> DeadlineGuard {
        if let Ok(mut s) = self.state.lock() {
            s.0 += 1;
            s.1 = Some(s.1.map_or(deadline, |d| d.max(deadline)));
        }
        DeadlineGuard(self.clone())
    }

    /// The deadline in force, if a long body is in progress.
    fn get(&self) -> Option<Instant> {
        self.state.lock().ok().and_then(|s| s.1)
    }
}

/// Keeps a connection's response deadline armed while it lives.
#[derive(Debug)]
pub struct DeadlineGuard(Arc<ResponseDeadline>);

impl Drop for DeadlineGuard {
    fn drop(&mut self) {
        if let Ok(mut s) = self.0.state.lock() {
            s.0 = s.0.saturating_sub(1);
            if s.0 == 0 {
                s.1 = None;
            }
        }
    }
}

/// A connection whose writes time out (see the module documentation).
pub struct WatchedIo<T> {
    /// The TLS stream.
    inner: T,
    /// Longest a write may stay blocked.
    idle: Duration,
    /// Shared with the requests of this connection.
    deadline: Arc<ResponseDeadline>,
    /// Armed while a write is blocked: fires at the limit computed then.
    timer: Option<(Instant, Pin<Box<Sleep>>)>,
    /// When the current blocked episode began.
    blocked_since: Option<Instant>,
}

impl<T> WatchedIo<T> {
    /// Watches `inner`'s writes with `idle` as the idle timeout.
    pub fn new(inner: T, idle: Duration, deadline: Arc<ResponseDeadline>) -> Self {
        WatchedIo {
            inner,
            idle,
            deadline,
            timer: None,
            blocked_since: None,
        }
    }

    /// A write made progress: the idle clock restarts.
    fn progressed(&mut self) {
        self.blocked_since = None;
        self.timer = None;
    }

    /// A write is blocked: waits with it, or fails once a limit is passed.
    fn blocked(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let now = Instant::now();
        let since = *self.blocked_since.get_or_insert(now);
        let mut limit = since + self.idle;
        if let Some(deadline) = self.deadline.get() {
            limit = limit.min(deadline);
        }
        match &mut self.timer {
            Some((at, sleep)) if *at == limit => {
                ready!(sleep.as_mut().poll(cx));
            }
            timer => {
                let mut sleep = Box::pin(tokio::time::sleep_until(limit));
                let fired = sleep.as_mut().poll(cx).is_ready();
                *timer = Some((limit, sleep));
                if !fired {
                    return Poll::Pending;
                }
            }
        }
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "client stopped reading (write timeout)",
        )))
    }

    /// Fails a write made after the response deadline.
    fn past_deadline(&self) -> io::Result<()> {
        match self.deadline.get() {
            Some(d) if Instant::now() >= d => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "response took longer than its time limit",
            )),
            _ => Ok(()),
        }
    }

    /// Common handling of a write-side poll result.
    fn watch<R>(&mut self, cx: &mut Context<'_>, polled: Poll<io::Result<R>>) -> Poll<io::Result<R>>
    where
        R: Progress,
    {
        match polled {
            Poll::Ready(Ok(r)) => {
                if r.progressed() {
                    self.progressed();
                }
                Poll::Ready(Ok(r))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match self.blocked(cx) {
                Poll::Ready(Err(e)) => {
                    tracing::debug!(error = %e, "dropping a connection that does not read");
                    Poll::Ready(Err(e))
                }
                _ => Poll::Pending,
            },
        }
    }
}

/// Whether a write-side result moved bytes.
trait Progress {
    fn progressed(&self) -> bool;
}

impl Progress for usize {
    fn progressed(&self) -> bool {
        *self > 0
    }
}

impl Progress for () {
    fn progressed(&self) -> bool {
        true
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WatchedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WatchedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.past_deadline()?;
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.past_deadline()?;
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.watch(cx, polled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_never_reads_times_out_and_one_that_reads_does_not() {
        // A 1 KiB pipe the other side never reads: writes block.
        let (ours, theirs) = tokio::io::duplex(1024);
        let mut io = WatchedIo::new(
            ours,
            Duration::from_secs(30),
            Arc::new(ResponseDeadline::default()),
        );
        let start = Instant::now();
        let err = io.write_all(&[0u8; 64 * 1024]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(start.elapsed() >= Duration::from_secs(30));
        drop(theirs);

        // A reader that keeps reading, slowly but within the idle timeout,
        // gets everything.
        let (ours, mut theirs) = tokio::io::duplex(1024);
        let mut io = WatchedIo::new(
            ours,
            Duration::from_secs(30),
            Arc::new(ResponseDeadline::default()),
        );
        let reader = tokio::spawn(async move {
            let mut got = 0;
            let mut buf = [0u8; 1024];
            loop {
                tokio::time::sleep(Duration::from_secs(20)).await;
                match tokio::io::AsyncReadExt::read(&mut theirs, &mut buf).await {
                    Ok(0) | Err(_) => return got,
                    Ok(n) => got += n,
                }
            }
        });
        io.write_all(&[0u8; 8 * 1024]).await.unwrap();
        drop(io);
        assert_eq!(reader.await.unwrap(), 8 * 1024);
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_response_is_cut_at_its_deadline_even_when_the_peer_reads() {
        let (ours, mut theirs) = tokio::io::duplex(1024);
        let deadline = Arc::new(ResponseDeadline::default());
        let guard = deadline.arm(Instant::now() + Duration::from_secs(100));
        let mut io = WatchedIo::new(ours, Duration::from_secs(30), deadline.clone());
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                if tokio::io::AsyncReadExt::read(&mut theirs, &mut buf)
                    .await
                    .map_or(true, |n| n == 0)
                {
                    return;
                }
            }
        });
        // 1 KiB per 10 s: 64 KiB would take 640 s.
        let err = io.write_all(&[0u8; 64 * 1024]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        // Once the long body is gone, the connection has no deadline.
        drop(guard);
        assert!(deadline.get().is_none());
    }
}
