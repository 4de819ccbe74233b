//! What every connection shares: the one published Snapshot, the balancing
//! state, the forwarding settings, the metrics, the drain tracker and
//! the node's health. Built once by the daemon; every stage below it reads
//! it, only the control loop publishes into it.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::access::AccessLog;
use crate::admission::Admission;
use crate::balance::Balancer;
use crate::health::Health;
use crate::metrics::{self, Metrics};
use crate::shutdown::Tracker;
use crate::table::Snapshot;
use crate::upstream::Upstreams;

/// The daemon's shared state.
#[derive(Debug)]
pub struct Context {
    /// The one published Snapshot; a connection reads it once, at accept.
    pub table: ArcSwap<Snapshot>,
    pub balancer: Balancer,
    /// Bound on each attempt to connect to an endpoint.
    pub connect_timeout: Duration,
    /// When bulk directions move to `splice(2)`.
    pub splice: Splice,
    /// Once one side of a TCP connection has closed, how long the other
    /// may carry nothing before both are reset
    /// (`--conntrack-tcp-timeout-close-wait`; `None`: for ever).
    pub close_wait: Option<Duration>,
    /// Live connections, for the drain on SIGTERM.
    pub tracker: Tracker,
    /// Client connections open, under `--max-connections`.
    pub admission: Arc<Admission>,
    pub metrics: Metrics,
    /// What `/healthz` and the health check ports report.
    pub health: Health,
    /// Connections to endpoints kept for the next HTTP request.
    pub upstreams: Upstreams,
    /// What an HTTP client connection may ask of the proxy.
    pub http: HttpLimits,
    /// Where HTTP requests are logged, when they are (`--http-access-log`).
    pub access: Option<Arc<AccessLog>>,
    /// How long UDP flows live and how many there may be.
    pub udp: UdpLimits,
    /// UDP flows open now, across every frontend.
    pub udp_flows: AtomicUsize,
}

/// Bounds on UDP flows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpLimits {
    /// A flow ends after this much silence both ways (`--udp-timeout`).
    pub timeout: Duration,
    /// Flows open at once, across every frontend (`--udp-max-flows`, bounded
    /// by the descriptor limit): each holds one socket.
    pub max_flows: usize,
}

impl Default for UdpLimits {
    fn default() -> Self {
        Self { timeout: Duration::from_secs(30), max_flows: 10_000 }
    }
}

/// Bounds on HTTP clients, as HAProxy and Envoy set them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    /// A request head must arrive whole within this of its first byte
    /// (of the accept, for a connection's first request): slowloris.
    pub header_timeout: Duration,
    /// The next request must begin within this of the last response's end.
    pub idle_timeout: Duration,
    /// Bound on a request head; 431 beyond.
    pub max_header_bytes: usize,
    /// Streams a client may have open at once on one HTTP/2 connection.
    pub max_streams: u32,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_header_bytes: 64 * 1024,
            max_streams: 100,
        }
    }
}

/// When a TCP direction switches from copying to splicing (`--splice`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Splice {
    /// Once a read fills a whole copy buffer: small exchanges never pay for
    /// a pipe, bulk transfers skip the userspace copy.
    #[default]
    Auto,
    /// From the first byte.
    Always,
    /// Never: always copy through a userspace buffer.
    Never,
}

// === impl Context ===

impl Context {
    /// Shared state with no `--max-connections` bound (the daemon sets it).
    pub fn new(connect_timeout: Duration, splice: Splice) -> Result<Self, metrics::Error> {
        let metrics = Metrics::new()?;
        let admission = Admission::new(usize::MAX, metrics.accept_paused.max_connections.clone());
        Ok(Self {
            table: ArcSwap::from_pointee(Snapshot::default()),
            balancer: Balancer::default(),
            connect_timeout,
            splice,
            close_wait: Some(Duration::from_secs(3600)),
            tracker: Tracker::default(),
            health: Health::default(),
            upstreams: Upstreams::default(),
            http: HttpLimits::default(),
            access: None,
            udp: UdpLimits::default(),
            udp_flows: AtomicUsize::new(0),
            admission,
            metrics,
        })
    }
}
