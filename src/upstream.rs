//! Connections to endpoints kept for the next HTTP request: per endpoint,
//! idle HTTP/1.1 keep-alive connections, or one multiplexed HTTP/2
//! connection. Shared by every client connection of every HTTP Route; an
//! endpoint that leaves the Snapshot loses its idle connections (in-flight
//! requests finish on theirs).

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper::client::conn::{http1, http2};
use parking_lot::Mutex;
use rustc_hash::{FxHashMap, FxHashSet};

use crate::table::{Mode, Snapshot};

/// A request body as forwarded: the client's, streamed, or none.
pub type Body = BoxBody<Bytes, hyper::Error>;

/// Idle HTTP/1.1 connections kept per endpoint at most: enough for the
/// requests a busy node has in flight to one pod, few enough that a burst
/// does not leave hundreds open.
const MAX_IDLE: usize = 64;

/// Every endpoint's reusable connections.
#[derive(Debug, Default)]
pub struct Upstreams {
    pools: Mutex<FxHashMap<SocketAddr, Pool>>,
}

/// One endpoint's.
#[derive(Debug, Default)]
struct Pool {
    idle: Vec<http1::SendRequest<Body>>,
    h2: Option<http2::SendRequest<Body>>,
}

// === impl Upstreams ===

impl Upstreams {
    /// An idle HTTP/1.1 connection to `addr` ready for a request.
    pub fn http1(&self, addr: SocketAddr) -> Option<http1::SendRequest<Body>> {
        let mut pools = self.pools.lock();
        let idle = &mut pools.get_mut(&addr)?.idle;
        while let Some(sender) = idle.pop() {
            if sender.is_ready() {
                return Some(sender);
            }
        }
        None
    }

    /// Keeps `sender` for the next request to `addr` (it is ready again).
    pub fn keep_http1(&self, addr: SocketAddr, sender: http1::SendRequest<Body>) {
        let mut pools = self.pools.lock();
        let idle = &mut pools.entry(addr).or_default().idle;
        if idle.len() < MAX_IDLE {
            idle.push(sender);
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
