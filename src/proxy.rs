//! Stage 6, proxy: one accepted connection to one endpoint.
//!
//! Input: an accepted client socket and the Route its frontend had at
//! accept time. Output: bytes copied both ways until both peers are done.
//! HTTP per-request forwarding and UDP come later; every Route is served as
//! TCP today.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::admin::Health;
use crate::balance::Balancer;
use crate::metrics::{self, Metrics};
use crate::shutdown::Tracker;
use crate::table::Snapshot;

pub mod copy;
pub mod dial;
mod pool;
pub mod splice;
pub mod tcp;

pub use splice::Splice;

/// Keepalive probes after 60 s of silence (the kernel's interval and count
/// after), on both sockets of a connection: a peer that vanished without
/// FIN or RST does not hold the connection forever. Client sockets inherit
/// it from their listener, endpoint sockets get it before they connect.
pub(crate) fn keepalive() -> socket2::TcpKeepalive {
    socket2::TcpKeepalive::new().with_time(Duration::from_secs(60))
}

/// What every connection shares: the routing table, balancing state, and
/// the settings of the data plane.
#[derive(Debug)]
pub struct Context {
    /// The one published Snapshot; a connection reads it once, at accept.
    pub table: ArcSwap<Snapshot>,
    pub balancer: Balancer,
    /// Bound on each attempt to connect to an endpoint.
    pub connect_timeout: Duration,
    /// When bulk directions move to `splice(2)`.
    pub splice: Splice,
    /// Live connections, for the drain on SIGTERM.
    pub tracker: Tracker,
    pub metrics: Metrics,
    /// What `/healthz` and the health check ports report.
    pub health: Arc<Health>,
}

// === impl Context ===

impl Context {
    pub fn new(connect_timeout: Duration, splice: Splice) -> Result<Self, metrics::Error> {
        Ok(Self {
            table: ArcSwap::from_pointee(Snapshot::default()),
            balancer: Balancer::default(),
            connect_timeout,
            splice,
            tracker: Tracker::default(),
            health: Arc::default(),
            metrics: Metrics::new()?,
        })
    }
}
