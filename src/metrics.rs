//! Every metric family, registered once; names are a contract (DESIGN §5).
//!
//! The control loop updates the routing families on each rebuild. The
//! traffic families are resolved to their label children when a Snapshot is
//! built ([`PortStats`], [`EndpointStats`], [`HttpStats`]), so a connection
//! touches only atomics: no lock and no map lookup per connection, per HTTP
//! request or per byte. Series of Service ports and endpoints that leave
//! the Snapshot are removed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

use crate::model::ServiceId;

mod histogram;
mod http;
mod paused;
mod process;
mod traffic;
mod udp;

pub use http::HttpStats;
pub use paused::{AcceptPaused, Pause};
use traffic::Traffic;
pub use traffic::{Counter, EndpointStats, InUse, PortKey, PortStats};
pub use udp::{Direction, Dropped, UdpStats};

pub const CONFIG_RELOADS: &str = "svcproxy_config_reloads_total";
pub const CONFIG_INVALID_OBJECTS: &str = "svcproxy_config_invalid_objects";
pub const ROUTING_GENERATION: &str = "svcproxy_routing_generation";
pub const SERVICES: &str = "svcproxy_services";
pub const ENDPOINTS: &str = "svcproxy_endpoints";
pub const CONNECTIONS: &str = "svcproxy_connections_total";
pub const CONNECTIONS_ACTIVE: &str = "svcproxy_connections_active";
pub const RECEIVED_BYTES: &str = "svcproxy_received_bytes_total";
pub const SENT_BYTES: &str = "svcproxy_sent_bytes_total";
pub const CONNECTION_DURATION: &str = "svcproxy_connection_duration_seconds";
pub const REJECTED_CONNECTIONS: &str = "svcproxy_rejected_connections_total";
pub const ENDPOINT_CONNECTIONS: &str = "svcproxy_endpoint_connections_total";
pub const ENDPOINT_CONNECT_ERRORS: &str = "svcproxy_endpoint_connect_errors_total";
pub const HTTP_REQUESTS: &str = "svcproxy_http_requests_total";
pub const HTTP_REQUEST_DURATION: &str = "svcproxy_http_request_duration_seconds";
pub const HTTP_PROXY_ERRORS: &str = "svcproxy_http_proxy_errors_total";
pub const ENDPOINT_HTTP_REQUESTS: &str = "svcproxy_endpoint_http_requests_total";
pub const UDP_DATAGRAMS: &str = "svcproxy_udp_datagrams_total";
pub const UDP_FLOWS_ACTIVE: &str = "svcproxy_udp_flows_active";
pub const UDP_DROPPED: &str = "svcproxy_udp_dropped_total";
pub const ACCEPT_PAUSED: &str = "svcproxy_accept_paused_seconds_total";
/// kube-proxy's names, so its dashboards work.
pub const SYNC_DURATION: &str = "kubeproxy_sync_proxy_rules_duration_seconds";
pub const SYNC_LAST_TIMESTAMP: &str = "kubeproxy_sync_proxy_rules_last_timestamp_seconds";
pub const NETWORK_PROGRAMMING: &str = "kubeproxy_network_programming_duration_seconds";
pub const API_WATCH_EVENTS: &str = "svcproxy_api_watch_events_total";
pub const API_RELISTS: &str = "svcproxy_api_relists_total";
pub const API_UP: &str = "svcproxy_api_up";

/// Why a client was turned away (the `reason` label of
/// `svcproxy_rejected_connections_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reject {
    /// No usable endpoint: none ready, or all ejected.
    NoEndpoints,
    /// Every attempt to connect failed.
    ConnectFailed,
    /// This proxy ran short of descriptors, ports or memory to connect to
    /// an endpoint: its own fault, never counted against the endpoint.
    LocalResources,
    /// Not turned away but cut short: one side had closed and the other
    /// carried nothing for `--conntrack-tcp-timeout-close-wait`; both were
    /// reset.
    CloseWaitTimeout,
    /// A LoadBalancer ingress IP, and the client outside the Service's
    /// `loadBalancerSourceRanges`.
    SourceRange,
}

/// Why the proxy answered an HTTP request itself (the `reason` label of
/// `svcproxy_http_proxy_errors_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpError {
    /// No usable endpoint (503, or gRPC's UNAVAILABLE).
    NoEndpoints,
    /// Every endpoint tried refused or timed out (502).
    ConnectFailed,
    /// The endpoint reset or closed before its response head (502).
    EndpointReset,
    /// No response head within the Service's `svcproxy.io/request-timeout`
    /// (504).
    Timeout,
    /// This proxy ran short of descriptors, ports or memory to connect to
    /// an endpoint (503).
    LocalResources,
}

/// Why a connect to an endpoint failed (the `reason` label of
/// `svcproxy_endpoint_connect_errors_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectError {
    Refused,
    Timeout,
    Other,
}

impl Reject {
    /// Every reason, in the order the counters are kept and shown.
    pub const ALL: [Self; 5] = [
        Self::NoEndpoints,
        Self::ConnectFailed,
        Self::LocalResources,
        Self::CloseWaitTimeout,
        Self::SourceRange,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Self::NoEndpoints => "no_endpoints",
            Self::ConnectFailed => "connect_failed",
            Self::LocalResources => "local_resources",
            Self::CloseWaitTimeout => "close_wait_timeout",
            Self::SourceRange => "source_range",
        }
    }
}

impl HttpError {
    /// Every reason, in the order the counters are kept and shown.
    pub const ALL: [Self; 5] = [
        Self::NoEndpoints,
        Self::ConnectFailed,
        Self::EndpointReset,
        Self::Timeout,
        Self::LocalResources,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Self::NoEndpoints => "no_endpoints",
            Self::ConnectFailed => "connect_failed",
            Self::EndpointReset => "endpoint_reset",
            Self::Timeout => "timeout",
            Self::LocalResources => "local_resources",
        }
    }
}

impl ConnectError {
    /// Every reason, in the order the counters are kept and shown.
    pub const ALL: [Self; 3] = [Self::Refused, Self::Timeout, Self::Other];

    pub fn label(self) -> &'static str {
        match self {
            Self::Refused => "refused",
            Self::Timeout => "timeout",
            Self::Other => "other",
        }
    }
}

/// The registry and a handle on each family.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    traffic: Traffic,
    /// Held by a publish and by a scrape, so that a scrape sees one
    /// Snapshot's series and gauges, never a mix of two.
    publishing: Mutex<()>,
    /// `result` = `success` | `failure` (any invalid file or object).
    pub config_reloads: IntCounterVec,
    pub config_invalid_objects: IntGauge,
    pub routing_generation: IntGauge,
    pub services: IntGauge,
    pub endpoints: IntGauge,
    pub sync_duration: Histogram,
    pub sync_last_timestamp: Gauge,
    pub api: ApiFamilies,
    /// `svcproxy_accept_paused_seconds_total`, by reason.
    pub accept_paused: AcceptPaused,
}

/// The API source's families.
#[derive(Clone, Debug)]
pub struct ApiFamilies {
    /// `kind`, `type` (`ADDED`, `MODIFIED`, `DELETED`).
    pub events: IntCounterVec,
    /// `kind`.
    pub relists: IntCounterVec,
    pub up: IntGauge,
    /// From an EndpointSlice's `last-change-trigger-time` to the publish of
    /// the Snapshot that serves it.
    pub programming: Histogram,
}

/// A metric family that could not be registered (a programming error: two
/// families of one name).
#[derive(Debug, thiserror::Error)]
#[error("metric registration: {0}")]
pub struct Error(#[from] prometheus::Error);

// === impl Metrics ===

impl Metrics {
    pub fn new() -> Result<Self, Error> {
        let registry = Registry::new();
        let config_reloads = IntCounterVec::new(
            Opts::new(CONFIG_RELOADS, "Routing table rebuilds, by whether every input was valid."),
            &["result"],
        )?;
        let config_invalid_objects = IntGauge::new(
            CONFIG_INVALID_OBJECTS,
            "Files and objects rejected by the last rebuild.",
        )?;
        let routing_generation =
            IntGauge::new(ROUTING_GENERATION, "Generation of the published routing Snapshot.")?;
        let services = IntGauge::new(SERVICES, "Services in the published Snapshot.")?;
        let endpoints =
            IntGauge::new(ENDPOINTS, "Endpoints of every ServicePort in the published Snapshot.")?;
        let sync_duration = Histogram::with_opts(
            HistogramOpts::new(SYNC_DURATION, "Time to rebuild and publish the routing table.")
                .buckets(prometheus::exponential_buckets(0.001, 2.0, 15)?),
        )?;
        let sync_last_timestamp =
            Gauge::new(SYNC_LAST_TIMESTAMP, "Unix time of the last published routing table.")?;
        registry.register(Box::new(config_reloads.clone()))?;
        registry.register(Box::new(config_invalid_objects.clone()))?;
        registry.register(Box::new(routing_generation.clone()))?;
        registry.register(Box::new(services.clone()))?;
        registry.register(Box::new(endpoints.clone()))?;
        registry.register(Box::new(sync_duration.clone()))?;
        registry.register(Box::new(sync_last_timestamp.clone()))?;
        for result in ["success", "failure"] {
            config_reloads.with_label_values(&[result]);
        }
        let api = ApiFamilies::register(&registry)?;
        Ok(Self {
            registry,
            traffic: Traffic::default(),
            publishing: Mutex::new(()),
            config_reloads,
            config_invalid_objects,
            routing_generation,
            services,
            endpoints,
            sync_duration,
            sync_last_timestamp,
            api,
            accept_paused: AcceptPaused::default(),
        })
    }

    /// Starts a Snapshot build: what it touches is kept by [`Self::retain`].
    pub fn begin(&self) -> InUse {
        self.traffic.begin()
    }

    /// The traffic of one Service port, kept from the last Snapshot when
    /// the port was already there.
    pub fn port(&self, service: &ServiceId, port: &Arc<str>, in_use: &InUse) -> Arc<PortStats> {
        self.traffic.port(service, port, in_use)
    }

    /// The traffic of one endpoint of a Service port.
    pub fn endpoint(
        &self,
        port: &PortStats,
        addr: SocketAddr,
        in_use: &InUse,
    ) -> Arc<EndpointStats> {
        self.traffic.endpoints(port, in_use, |lookup| lookup(addr))
    }

    /// Runs `with` with a lookup of the traffic of endpoints of one Service
    /// port: a Route's endpoints resolved under one lock.
    pub fn endpoints<T>(
        &self,
        port: &PortStats,
        in_use: &InUse,
        with: impl FnOnce(&mut dyn FnMut(SocketAddr) -> Arc<EndpointStats>) -> T,
    ) -> T {
        self.traffic.endpoints(port, in_use, with)
    }

    /// Forgets every Service port and endpoint `in_use` does not name, and
    /// nothing else: a Snapshot built outside the daemon (benchmarks).
    pub fn retain(&self, in_use: InUse) {
        let _scrapes = self.publishing.lock();
        self.traffic.retain(&in_use);
    }

    /// Publishes a Snapshot's metrics: forgets every Service port and
    /// endpoint `in_use` does not name (their series disappear; a live
    /// connection that still counts into them does so unexported) and sets
    /// the routing families, as one step for scrapes.
    pub fn publish(&self, in_use: InUse, published: &Published) {
        let _scrapes = self.publishing.lock();
        self.traffic.retain(&in_use);
        let result = if published.invalid == 0 { "success" } else { "failure" };
        self.config_reloads.with_label_values(&[result]).inc();
        self.config_invalid_objects.set(saturating(published.invalid));
        self.routing_generation.set(i64::try_from(published.generation).unwrap_or(i64::MAX));
        self.services.set(saturating(published.services));
        self.endpoints.set(saturating(published.endpoints));
        self.sync_duration.observe(published.took.as_secs_f64());
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        self.sync_last_timestamp.set(now);
    }

    /// Every family in Prometheus' text format.
    pub fn render(&self) -> String {
        let _publish = self.publishing.lock();
        let families = self.registry.gather();
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&families, &mut out) {
            tracing::warn!(error = %e, "encoding metrics");
        }
        let mut text = String::from_utf8(out).unwrap_or_default();
        self.traffic.render(&mut text);
        self.accept_paused.render(&mut text);
        process::render(&mut text);
        text
    }
}

/// What a published Snapshot holds, for the routing families.
#[derive(Debug)]
pub struct Published {
    pub generation: u64,
    pub services: usize,
    /// Of every Service port.
    pub endpoints: usize,
    /// Files and objects rejected by the build.
    pub invalid: usize,
    /// From the start of the rebuild to its publish.
    pub took: Duration,
}

fn saturating(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

// === impl ApiFamilies ===

impl ApiFamilies {
    fn register(registry: &Registry) -> Result<Self, Error> {
        let events = IntCounterVec::new(
            Opts::new(API_WATCH_EVENTS, "Watch events from the API server, by kind and type."),
            &["kind", "type"],
        )?;
        let relists = IntCounterVec::new(
            Opts::new(API_RELISTS, "Lists again after a watch ended (410 Gone), by kind."),
            &["kind"],
        )?;
        let up = IntGauge::new(API_UP, "1 while every watch on the API server is established.")?;
        // kube-proxy's buckets, so its dashboards read it alike.
        let buckets = [0.25, 0.5].into_iter().chain((1..60).map(f64::from));
        let buckets = buckets.chain((0..12).map(|i| f64::from(60 + 5 * i)));
        let buckets = buckets.chain((0..7).map(|i| f64::from(120 + 30 * i))).collect();
        let programming = Histogram::with_opts(
            HistogramOpts::new(
                NETWORK_PROGRAMMING,
                "From an EndpointSlice change (its last-change-trigger-time) to the publish of \
                 the routing table that serves it.",
            )
            .buckets(buckets),
        )?;
        registry.register(Box::new(events.clone()))?;
        registry.register(Box::new(relists.clone()))?;
        registry.register(Box::new(up.clone()))?;
        registry.register(Box::new(programming.clone()))?;
        Ok(Self { events, relists, up, programming })
    }
}

#[cfg(test)]
mod tests {
    use super::{ConnectError, HttpError, Reject};

    /// The counters are kept in an array indexed by the reason itself.
    #[test]
    fn each_reason_is_its_own_index() {
        for (i, reason) in Reject::ALL.into_iter().enumerate() {
            assert_eq!(reason as usize, i, "{reason:?}");
        }
        for (i, reason) in ConnectError::ALL.into_iter().enumerate() {
            assert_eq!(reason as usize, i, "{reason:?}");
        }
        for (i, reason) in HttpError::ALL.into_iter().enumerate() {
            assert_eq!(reason as usize, i, "{reason:?}");
        }
    }
}
