//! Connections to endpoints kept for the next HTTP request: per endpoint,
//! idle HTTP/1.1 keep-alive connections, or one multiplexed HTTP/2
//! connection. Shared by every client connection of every HTTP Route; an
//! endpoint that leaves the Snapshot loses its idle connections (in-flight
//! requests finish on theirs).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper::client::conn::{http1, http2};
use parking_lot::Mutex;
use rustc_hash::{FxHashMap, FxHashSet};

use crate::table::{Mode, Snapshot};

/// A request body as forwarded: the client's, streamed, or none.
pub type Body = BoxBody<Bytes, hyper::Error>;

/// Idle HTTP/1.1 connections kept per endpoint at most: enough for the
/// requests a busy node has in flight to one pod (400 HTTP/2 streams
/// spread over 3 pods need about 130 each: with 64, a quarter of the
/// requests opened a new connection).
const MAX_IDLE: usize = 1024;
/// A kept connection unused this long is closed the next time its pool
/// takes one back (HAProxy's `pool-purge-delay` is 5 s): a burst does not
/// leave hundreds open while traffic goes on, and a pod's own keep-alive
/// timeout (Node.js: 5 s) rarely closes one first. A pod closes those of
/// a pool that is no longer used.
const IDLE_FOR: Duration = Duration::from_secs(4);

/// Every endpoint's reusable connections.
#[derive(Debug, Default)]
pub struct Upstreams {
    pools: Mutex<FxHashMap<SocketAddr, Pool>>,
}

/// One endpoint's.
#[derive(Debug, Default)]
struct Pool {
    /// Oldest first: the most recent is taken (warm), the oldest closed.
    idle: VecDeque<(http1::SendRequest<Body>, Instant)>,
    h2: Option<http2::SendRequest<Body>>,
}

// === impl Upstreams ===

impl Upstreams {
    /// An idle HTTP/1.1 connection to `addr` ready for a request.
    pub fn http1(&self, addr: SocketAddr) -> Option<http1::SendRequest<Body>> {
        let mut pools = self.pools.lock();
        let idle = &mut pools.get_mut(&addr)?.idle;
        while let Some((sender, _)) = idle.pop_back() {
            if sender.is_ready() {
                return Some(sender);
            }
        }
        None
    }

    /// Keeps `sender` for the next request to `addr` (it is ready again).
    pub fn keep_http1(&self, addr: SocketAddr, sender: http1::SendRequest<Body>) {
        let mut pools = self.pools.lock();
        let now = Instant::now();
        let idle = &mut pools.entry(addr).or_default().idle;
        while idle.front().is_some_and(|(_, since)| now.duration_since(*since) >= IDLE_FOR) {
            idle.pop_front();
        }
        if idle.len() < MAX_IDLE {
            idle.push_back((sender, now));
        }
    }

    /// The HTTP/2 connection to `addr`, while it lives.
    pub fn h2(&self, addr: SocketAddr) -> Option<http2::SendRequest<Body>> {
        let mut pools = self.pools.lock();
        let pool = pools.get_mut(&addr)?;
        match &pool.h2 {
            Some(sender) if !sender.is_closed() => Some(sender.clone()),
            _ => {
                pool.h2 = None;
                None
            }
        }
    }

    /// `sender` is the HTTP/2 connection to `addr` from now on.
    pub fn keep_h2(&self, addr: SocketAddr, sender: http2::SendRequest<Body>) {
        self.pools.lock().entry(addr).or_default().h2 = Some(sender);
    }

    /// Drops the connections of endpoints no HTTP Route of `snapshot` has.
    pub fn retain(&self, snapshot: &Snapshot) {
        let mut pools = self.pools.lock();
        if pools.is_empty() {
            return;
        }
        let http = snapshot.routes().filter(|r| matches!(r.mode, Mode::Http(_)));
        let used: FxHashSet<SocketAddr> =
            http.flat_map(|r| r.endpoints.iter().map(|e| e.addr)).collect();
        pools.retain(|addr, _| used.contains(addr));
    }
}
