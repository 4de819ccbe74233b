//! How long a client connection may stay quiet, as HAProxy's
//! `timeout http-request` and `timeout http-keep-alive`: a request head
//! must arrive whole within the header timeout of its first byte (of the
//! accept, for the first request: a connection that sends nothing is
//! slowloris too), and the next request must begin within the idle timeout
//! of the last response's end. While a request is in flight nothing is
//! due: long polls and streams live.
//!
//! hyper's own `header_read_timeout` cannot tell the two apart (it runs
//! from the moment hyper waits for a head, so it also bounds the idle
//! wait), and hyper-util's auto server waits for the HTTP/2 preface with no
//! bound at all: the connection's reads are watched here instead.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::context::HttpLimits;
use crate::metrics::PortStats;

/// One client connection's requests and reads, as far as timeouts care.
#[derive(Debug)]
pub struct Activity {
    start: Instant,
    /// Requests whose response has not ended.
    in_flight: AtomicU32,
    /// When the last response ended, in nanoseconds after `start`.
    idle_since: AtomicU64,
    /// When the first byte of the next head arrived, in nanoseconds after
    /// `start`, plus one; 0 while none did.
    head_since: AtomicU64,
    /// HTTP/2: what arrives between requests are frames (PING, SETTINGS),
    /// not the start of a head.
    multiplexed: AtomicBool,
    /// Whether any byte arrived yet.
    spoken: AtomicBool,
}

/// What is due on a connection now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Due {
    /// Nothing before this instant (look again then).
    Not(Instant),
    /// No request for the idle timeout: close it gracefully.
    Idle,
    /// A head begun and not finished within the header timeout: cut it.
    Head,
}

/// A request in flight on a connection: see [`Activity::began`].
#[derive(Debug)]
pub struct Busy(Arc<Activity>);

/// A client connection's stream, telling [`Activity`] of its reads and
/// counting its bytes into its Service port (`received`, `sent`), as the
/// TCP path counts them.
#[derive(Debug)]
pub struct Watched<S> {
    stream: S,
    activity: Arc<Activity>,
    stats: Arc<PortStats>,
}

// === impl Activity ===

impl Activity {
    /// A connection accepted now: its first head is awaited from now.
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
            in_flight: AtomicU32::new(0),
            idle_since: AtomicU64::new(0),
            head_since: AtomicU64::new(1),
            multiplexed: AtomicBool::new(false),
            spoken: AtomicBool::new(false),
        }
    }

    /// `bytes` arrived: the start of a head when no request is in flight.
    /// An HTTP/2 client's preface is a connection's start, not a head's: a
    /// gRPC channel may connect long before its first call, and is idle
    /// until then.
    fn read(&self, bytes: &[u8]) {
        if !self.spoken.swap(true, Ordering::Relaxed) && bytes.starts_with(b"PRI ") {
            self.multiplexed.store(true, Ordering::Relaxed);
            self.idle_since.store(self.nanos(), Ordering::Relaxed);
            self.head_since.store(0, Ordering::Relaxed);
            return;
        }
        if self.in_flight.load(Ordering::Acquire) == 0
            && self.head_since.load(Ordering::Relaxed) == 0
            && !self.multiplexed.load(Ordering::Relaxed)
        {
            self.head_since.store(self.nanos() + 1, Ordering::Relaxed);
        }
    }

    /// A request's head arrived whole (`multiplexed`: over HTTP/2): busy
    /// until the guard is dropped, with the response's end (or the
    /// request's, when the client gives up on it).
    pub fn began(self: &Arc<Self>, multiplexed: bool) -> Busy {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_since.store(0, Ordering::Relaxed);
        if multiplexed && !self.multiplexed.load(Ordering::Relaxed) {
            self.multiplexed.store(true, Ordering::Relaxed);
        }
        Busy(self.clone())
    }

    fn ended(&self) {
        // Before the count drops, so an idle connection never reads an
        // older end.
        self.idle_since.store(self.nanos(), Ordering::Relaxed);
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    /// What `limits` make due at `now`.
    pub fn due(&self, limits: &HttpLimits, now: Instant) -> Due {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return Due::Not(now + limits.idle_timeout.min(limits.header_timeout));
        }
        let (at, limit, due) = match self.head_since.load(Ordering::Relaxed) {
            0 => (self.idle_since.load(Ordering::Relaxed), limits.idle_timeout, Due::Idle),
            head => (head - 1, limits.header_timeout, Due::Head),
        };
        let deadline = self.start + Duration::from_nanos(at) + limit;
        if deadline <= now { due } else { Due::Not(deadline) }
    }

    /// How long since the connection was accepted.
    pub fn age(&self) -> Duration {
        self.start.elapsed()
    }

    fn nanos(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX - 1)
    }
}

/// Returns when something is due on the connection of `activity`.
pub async fn due(activity: &Activity, limits: &HttpLimits) -> Due {
    loop {
        match activity.due(limits, Instant::now()) {
            Due::Not(at) => tokio::time::sleep_until(at.into()).await,
            due => return due,
        }
    }
}

// === impl Busy ===

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.ended();
    }
}

// === impl Watched ===

impl<S> Watched<S> {
    pub fn new(stream: S, activity: Arc<Activity>, stats: Arc<PortStats>) -> Self {
        Self { stream, activity, stats }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.read(&buf.filled()[before..]);
            self.stats.received.inc_by((buf.filled().len() - before) as u64);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            self.stats.sent.inc_by(n as u64);
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = polled {
            self.stats.sent.inc_by(n as u64);
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::{Activity, Due};
    use crate::context::HttpLimits;

    fn limits() -> HttpLimits {
        HttpLimits {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            ..HttpLimits::default()
        }
    }

    #[test]
    fn the_first_head_is_due_within_the_header_timeout_of_the_accept() {
        let a = Activity::new();
        let now = a.start;
        assert_eq!(a.due(&limits(), now), Due::Not(now + Duration::from_secs(10)));
        assert_eq!(a.due(&limits(), now + Duration::from_secs(10)), Due::Head);
    }

    #[test]
    fn between_requests_the_idle_timeout_runs_until_a_head_begins() {
        let a = Arc::new(Activity::new());
        let busy = a.began(false);
        let long = a.start + Duration::from_secs(3600);
        assert!(matches!(a.due(&limits(), long), Due::Not(_)), "in flight: nothing due");
        drop(busy);
        let ended = a.start + Duration::from_nanos(a.idle_since.load(super::Ordering::Relaxed));
        let idle = limits().idle_timeout;
        assert_eq!(a.due(&limits(), ended + Duration::from_secs(59)), Due::Not(ended + idle));
        assert_eq!(a.due(&limits(), ended + idle), Due::Idle);
        // The next head's first byte: the header timeout runs from it.
        a.read(b"GET");
        assert_eq!(a.due(&limits(), ended + Duration::from_secs(11)), Due::Head);
    }

    #[test]
    fn over_http2_frames_between_requests_do_not_start_a_head() {
        let a = Arc::new(Activity::new());
        drop(a.began(true));
        a.read(b"\0\0\0\x06");
        assert_eq!(a.head_since.load(super::Ordering::Relaxed), 0);
    }

    #[test]
    fn an_http2_preface_makes_the_connection_idle_not_a_head_begun() {
        let a = Activity::new();
        a.read(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        let later = a.start + Duration::from_secs(30);
        assert!(matches!(a.due(&limits(), later), Due::Not(_)), "a gRPC channel may wait");
        assert_eq!(a.due(&limits(), a.start + Duration::from_secs(61)), Due::Idle);
    }
}
