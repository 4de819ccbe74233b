//! Stage 4, table: the model to an immutable routing [`Snapshot`].
//!
//! Input: a [`Model`]. Output: a Snapshot mapping every [`Frontend`] (an
//! address svcproxy accepts on) to its [`Route`] (the endpoints that take
//! its traffic and how to pick one). The control loop publishes Snapshots
//! through one `ArcSwap` and never mutates one: a connection resolves its
//! Route once and keeps the `Arc<Route>`, not the Snapshot.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rustc_hash::FxHashMap;

use crate::metrics::{EndpointStats, InUse, Metrics, PortStats};
use crate::model::{
    Model, NodeInfo, Policy, Protocol, Resolved, ServiceId, ServicePort, SourceRanges, Topology,
};

mod build;
pub(crate) mod family;

/// An address svcproxy accepts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Frontend {
    pub addr: SocketAddr,
    pub protocol: Protocol,
}

/// Which field of the Service a Frontend comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrontendKind {
    ClusterIp,
    ExternalIp,
    LoadBalancer,
    NodePort,
}

/// How traffic on a Route is forwarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Byte stream, one endpoint per connection.
    Tcp,
    /// HTTP/1.1 or h2c from clients, one endpoint per request, spoken to
    /// the endpoints as this.
    Http(Upstream),
    /// Datagrams, one endpoint per flow (a client address on a frontend).
    Udp,
}

/// How an HTTP Route's endpoints are spoken to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upstream {
    /// HTTP/1.1, over a pool of keep-alive connections.
    Http1,
    /// HTTP/2 with prior knowledge, one multiplexed connection.
    H2c,
}

/// One endpoint a Route may pick, with its traffic under the Route's
/// Service port (a [`model::Endpoint`](crate::model::Endpoint) as routed).
#[derive(Clone, Debug)]
pub struct RouteEndpoint {
    pub addr: SocketAddr,
    /// Picked only because no endpoint is ready (kube-proxy's fallback).
    pub terminating: bool,
    /// This endpoint's metric children under the Route's Service port.
    pub stats: Arc<EndpointStats>,
}

/// A Frontend's endpoints and policy.
#[derive(Clone, Debug)]
pub struct Route {
    pub service: ServiceId,
    /// The ServicePort's name, or its number when unnamed (metric label).
    pub port: Arc<str>,
    pub kind: FrontendKind,
    pub mode: Mode,
    /// Usable endpoints, sorted by address; empty means reject at once.
    pub endpoints: Vec<RouteEndpoint>,
    /// `sessionAffinity: ClientIP` timeout.
    pub affinity: Option<Duration>,
    /// HTTP: how long a request may wait for its response head.
    pub request_timeout: Option<Duration>,
    /// How an endpoint is picked (`svcproxy.io/lb-policy`).
    pub policy: Policy,
    /// UDP: a flow ends once it has had this many replies per datagram
    /// sent (`svcproxy.io/udp-responses`); none: only silence ends it.
    pub udp_responses: Option<u32>,
    /// Which endpoints the topology hints left (Cluster policy only).
    pub topology: Topology,
    /// LoadBalancer ingress frontends with `loadBalancerSourceRanges`: the
    /// clients served; others are turned away at once. `None` everywhere
    /// else, so the check costs one branch.
    pub source_ranges: Option<Arc<SourceRanges>>,
    /// Round-robin position, shared by every Route of one ServicePort (its
    /// ClusterIP, NodePort and external frontends) and carried from one
    /// Snapshot to the next while the port keeps one of its frontends; the
    /// only mutable part.
    pub cursor: Arc<Cursor>,
    /// The Service port's metric children, resolved at build time.
    pub stats: Arc<PortStats>,
}

/// A round-robin counter shared by every connection of one ServicePort. A
/// new Snapshot carries it on while the port keeps a frontend, so a reload
/// does not send the next connections to the first endpoint again.
#[derive(Debug, Default)]
pub struct Cursor(AtomicUsize);

/// What a load balancer's probe of a Service on this node is told
/// (kube-proxy's service health server on `healthCheckNodePort`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCheck {
    pub service: ServiceId,
    /// Ready endpoints of the Service on this node.
    pub local: usize,
}

/// Every Route at one generation. Immutable once built.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub generation: u64,
    routes: FxHashMap<Frontend, Arc<Route>>,
    /// healthCheckNodePorts on the node addresses: answered, not proxied.
    health_checks: FxHashMap<Frontend, HealthCheck>,
    /// The Services it was built from, sorted by namespace/name.
    pub services: Vec<Resolved>,
    /// Frontends claimed by two Services (the first in sorted order wins).
    pub conflicts: Vec<String>,
    /// `--node-name`, and that Node when one was read.
    pub node_name: Arc<str>,
    pub node: Option<NodeInfo>,
}

// === impl Snapshot ===

impl Snapshot {
    /// Builds every Route of `model`: the Snapshot that follows `previous`
    /// (the next generation; each ServicePort's round-robin [`Cursor`]
    /// carried on). NodePorts are bound on `node_ips` (`0.0.0.0` for every
    /// local address). The Routes count their traffic into `metrics`,
    /// stamped as used by `in_use` (whose [`Metrics::retain`] drops the rest
    /// once this Snapshot is published); without it the Snapshot is one to
    /// list (`svcproxy check`), not to serve: all its ports count into one
    /// set of counters nobody exports.
    pub fn build(
        model: Model,
        previous: &Snapshot,
        node_ips: &[IpAddr],
        node_name: &str,
        metrics: Option<(&Metrics, &InUse)>,
    ) -> Self {
        build::build(model, previous, node_ips, node_name, metrics)
    }

    /// The Route of `frontend`.
    pub fn route(&self, frontend: &Frontend) -> Option<&Arc<Route>> {
        self.routes.get(frontend)
    }

    /// Every Route, in no order.
    pub fn routes(&self) -> impl Iterator<Item = &Arc<Route>> {
        self.routes.values()
    }

    /// The health check answered on `frontend`.
    pub fn health_check(&self, frontend: &Frontend) -> Option<&HealthCheck> {
        self.health_checks.get(frontend)
    }

    /// Every health check port and what it answers, sorted by frontend.
    pub fn health_checks(&self) -> Vec<(Frontend, &HealthCheck)> {
        let mut all: Vec<(Frontend, &HealthCheck)> =
            self.health_checks.iter().map(|(f, c)| (*f, c)).collect();
        all.sort_by_key(|(f, _)| *f);
        all
    }

    /// Every Frontend, routed or answering a health check, sorted.
    pub fn frontends(&self) -> Vec<Frontend> {
        let mut all: Vec<Frontend> =
            self.routes.keys().chain(self.health_checks.keys()).copied().collect();
        all.sort();
        all
    }

    /// True when a listener belongs on `frontend`.
    pub fn serves(&self, frontend: &Frontend) -> bool {
        self.routes.contains_key(frontend) || self.health_checks.contains_key(frontend)
    }

    /// How many Frontends are routed (health check ports not counted).
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// True when nothing is routed.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

// === impl Cursor ===

impl Cursor {
    /// The position for the next connection.
    pub fn next(&self) -> usize {
        self.0.fetch_add(1, Ordering::Relaxed)
    }
}

// === impl Mode ===

impl Mode {
    /// The port's `appProtocol` decides: `http` is HTTP spoken to the pods
    /// in HTTP/1.1; `kubernetes.io/h2c`, `h2c`, `http2` and `grpc` are HTTP
    /// spoken in HTTP/2 with prior knowledge; anything else, or none, is
    /// TCP. With `by_name` (`--http-by-port-name`, Istio's convention), a
    /// port without `appProtocol` named `http` or `http-*` is HTTP/1.1, one
    /// named `http2`, `grpc` or `grpc-*` is h2c. Off by default: a port
    /// named `http` that carries raw TCP keeps working.
    pub fn of(port: &ServicePort, by_name: bool) -> Self {
        let upstream = match port.app_protocol.as_deref() {
            Some("http") => Some(Upstream::Http1),
            Some("kubernetes.io/h2c" | "h2c" | "http2" | "grpc") => Some(Upstream::H2c),
            Some(_) => None,
            None if by_name => {
                let name = &*port.name;
                if name == "http" || name.starts_with("http-") {
                    Some(Upstream::Http1)
                } else if matches!(name, "http2" | "grpc") || name.starts_with("grpc-") {
                    Some(Upstream::H2c)
                } else {
                    None
                }
            }
            None => None,
        };
        upstream.map_or(Mode::Tcp, Mode::Http)
    }

    /// `tcp`, `http` (HTTP/1.1 to the pods), `h2c` or `udp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Tcp => "tcp",
            Mode::Udp => "udp",
            Mode::Http(Upstream::Http1) => "http",
            Mode::Http(Upstream::H2c) => "h2c",
        }
    }
}

impl fmt::Display for Frontend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.protocol)
    }
}

#[cfg(test)]
mod tests;
