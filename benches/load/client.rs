//! The load client's workers. Each loops until the run's end: keep-alive
//! workers hold one connection and send request after request; close
//! workers open a new connection per request and read it to the FIN.
//! Completions go to shared counters (the run samples them together with
//! the proxy's CPU); latencies completed inside the window are kept.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tokio::net::TcpStream;

use super::http::{self, TIMEOUT};

/// Shared by every worker of one run.
#[derive(Default)]
pub struct Counters {
    /// Responses (keep-alive) or connections (close) completed.
    pub done: AtomicU64,
    /// Response body bytes received.
    pub bytes: AtomicU64,
    pub errors: AtomicU64,
}

/// Where and when a run's workers work.
pub struct Plan {
    pub target: SocketAddr,
    /// The measured window: latencies are kept for completions inside it.
    pub start: Instant,
    /// Workers stop starting requests at this instant.
    pub end: Instant,
}

// === impl Plan ===

impl Plan {
    fn keep(&self, at: Instant) -> bool {
        at >= self.start && at <= self.end
    }
}

/// Microseconds, saturating.
fn micros(from: Instant, to: Instant) -> u32 {
    u32::try_from(to.duration_since(from).as_micros()).unwrap_or(u32::MAX)
}

/// Keep-alive requests for `path` on one connection (re-opened after an
/// error); the latencies completed inside the window, in µs.
pub async fn keep_alive(plan: &Plan, path: &str, counters: &Counters, buf: usize) -> Vec<u32> {
    let request = http::request(path, false);
    let mut scratch = vec![0u8; buf];
    let mut conn: Option<TcpStream> = None;
    let mut latencies = Vec::new();
    while Instant::now() < plan.end {
        let stream = match conn.as_mut() {
            Some(stream) => stream,
            None => match http::connect(plan.target).await {
                Ok(stream) => conn.insert(stream),
                Err(_) => {
                    counters.errors.fetch_add(1, Ordering::Relaxed);
                    pause_after_error().await;
                    continue;
                }
            },
        };
        let t0 = Instant::now();
        let result =
            tokio::time::timeout(TIMEOUT, http::exchange(stream, &request, &mut scratch)).await;
        match result {
            Ok(Ok(head)) if head.status == 200 => {
                record(plan, counters, &mut latencies, t0, head.length as u64);
            }
            _ => {
                counters.errors.fetch_add(1, Ordering::Relaxed);
                conn = None;
            }
        }
    }
    latencies
}

/// One connection per request (`Connection: close`), read to the FIN; the
/// latencies (connect to FIN) completed inside the window, in µs.
pub async fn one_shot(plan: &Plan, path: &str, counters: &Counters) -> Vec<u32> {
    let request = http::request(path, true);
    let mut scratch = vec![0u8; 4096];
    let mut latencies = Vec::new();
    while Instant::now() < plan.end {
        let t0 = Instant::now();
        let work = async {
            let mut stream = http::connect(plan.target).await?;
            let head = http::exchange(&mut stream, &request, &mut scratch).await?;
            // The endpoint closes first: the client's port is not left in
            // TIME_WAIT, so a long run cannot run out of ephemeral ports.
            http::expect_eof(&mut stream, &mut scratch).await?;
            Ok::<_, std::io::Error>(head)
        };
        match tokio::time::timeout(TIMEOUT, work).await {
            Ok(Ok(head)) if head.status == 200 => {
                record(plan, counters, &mut latencies, t0, head.length as u64);
            }
            _ => {
                counters.errors.fetch_add(1, Ordering::Relaxed);
                pause_after_error().await;
            }
        }
    }
    latencies
}

/// A failing proxy must not turn the client into a busy loop.
async fn pause_after_error() {
    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
}

/// Counts one exchange that succeeded at `t0`..now, and keeps its latency
/// when it ended inside the measured window.
fn record(plan: &Plan, counters: &Counters, latencies: &mut Vec<u32>, t0: Instant, bytes: u64) {
    let t1 = Instant::now();
    counters.done.fetch_add(1, Ordering::Relaxed);
    counters.bytes.fetch_add(bytes, Ordering::Relaxed);
    if plan.keep(t1) {
        latencies.push(micros(t0, t1));
    }
}
