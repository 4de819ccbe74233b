//! Every metric family, registered once; names are a contract (DESIGN §5).
//!
//! The control plane updates the routing families on each rebuild. The
//! traffic families are resolved to their label children when a Snapshot is
//! built ([`PortStats`], [`EndpointStats`]), so a connection touches only
//! atomics: no lock and no map lookup per connection or per byte. Series of
//! Service ports and endpoints that leave the Snapshot are removed.

use std::collections::HashSet;
use std::sync::Arc;

use parking_lot::Mutex;
use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

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
/// kube-proxy's names, so its dashboards work.
pub const SYNC_DURATION: &str = "kubeproxy_sync_proxy_rules_duration_seconds";
pub const SYNC_LAST_TIMESTAMP: &str = "kubeproxy_sync_proxy_rules_last_timestamp_seconds";

const PORT_LABELS: [&str; 3] = ["namespace", "service", "port"];
const ENDPOINT_LABELS: [&str; 4] = ["namespace", "service", "port", "endpoint"];
/// Why a client was turned away: no usable endpoint, or every attempt failed.
pub const REJECT_REASONS: [&str; 2] = ["no_endpoints", "connect_failed"];
/// Why a connect to an endpoint failed.
pub const CONNECT_ERROR_REASONS: [&str; 3] = ["refused", "timeout", "other"];

/// The registry and a handle on each family.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    traffic: Traffic,
    /// Label sets exported now, to remove those a new Snapshot drops.
    series: Mutex<Series>,
    /// `result` = `success` | `failure` (any invalid file or object).
    pub config_reloads: IntCounterVec,
    pub config_invalid_objects: IntGauge,
    pub routing_generation: IntGauge,
    pub services: IntGauge,
    pub endpoints: IntGauge,
    pub sync_duration: Histogram,
    pub sync_last_timestamp: Gauge,
}

/// The per Service port and per endpoint families.
#[derive(Debug)]
struct Traffic {
    connections: IntCounterVec,
    active: IntGaugeVec,
    received: IntCounterVec,
    sent: IntCounterVec,
    duration: HistogramVec,
    rejected: IntCounterVec,
    endpoint_connections: IntCounterVec,
    endpoint_errors: IntCounterVec,
}

#[derive(Debug, Default)]
struct Series {
    ports: HashSet<[String; 3]>,
    endpoints: HashSet<[String; 4]>,
}

/// One Service port's traffic children, shared by its Routes.
#[derive(Clone, Debug)]
pub struct PortStats {
    pub connections: IntCounter,
    pub active: IntGauge,
    /// Bytes from clients.
    pub received: IntCounter,
    /// Bytes to clients.
    pub sent: IntCounter,
    pub duration: Histogram,
    /// By [`REJECT_REASONS`].
    pub rejected: [IntCounter; 2],
}

/// One endpoint's children under one Service port.
#[derive(Clone, Debug)]
pub struct EndpointStats {
    pub connections: IntCounter,
    /// By [`CONNECT_ERROR_REASONS`].
    pub errors: [IntCounter; 3],
}

/// Collects the label sets one Snapshot uses; [`Metrics::retain`] then
/// removes every other series.
#[derive(Debug, Default)]
pub struct InUse(Series);

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
        let traffic = Traffic::new(&registry)?;
        Ok(Self {
            registry,
            traffic,
            series: Mutex::new(Series::default()),
            config_reloads,
            config_invalid_objects,
            routing_generation,
            services,
            endpoints,
            sync_duration,
            sync_last_timestamp,
        })
    }

    /// The children of one Service port (created if new).
    pub fn port(&self, labels: [&str; 3], in_use: &mut InUse) -> Arc<PortStats> {
        let t = &self.traffic;
        let with =
            |reason: &str| t.rejected.with_label_values(&[labels[0], labels[1], labels[2], reason]);
        in_use.0.ports.insert(labels.map(str::to_owned));
        Arc::new(PortStats {
            connections: t.connections.with_label_values(&labels),
            active: t.active.with_label_values(&labels),
            received: t.received.with_label_values(&labels),
            sent: t.sent.with_label_values(&labels),
            duration: t.duration.with_label_values(&labels),
            rejected: REJECT_REASONS.map(with),
        })
    }

    /// The children of one endpoint of a Service port (created if new).
    pub fn endpoint(&self, labels: [&str; 4], in_use: &mut InUse) -> Arc<EndpointStats> {
        let t = &self.traffic;
        let with = |reason: &str| {
            t.endpoint_errors
                .with_label_values(&[labels[0], labels[1], labels[2], labels[3], reason])
        };
        in_use.0.endpoints.insert(labels.map(str::to_owned));
        Arc::new(EndpointStats {
            connections: t.endpoint_connections.with_label_values(&labels),
            errors: CONNECT_ERROR_REASONS.map(with),
        })
    }

    /// Removes the series of Service ports and endpoints `in_use` does not
    /// name: a removed Service's series disappear (a live connection that
    /// still counts into them does so unexported).
    pub fn retain(&self, in_use: InUse) {
        let mut series = self.series.lock();
        let t = &self.traffic;
        for gone in series.ports.difference(&in_use.0.ports) {
            let l: [&str; 3] = [&gone[0], &gone[1], &gone[2]];
            let _ = t.connections.remove_label_values(&l);
            let _ = t.active.remove_label_values(&l);
            let _ = t.received.remove_label_values(&l);
            let _ = t.sent.remove_label_values(&l);
            let _ = t.duration.remove_label_values(&l);
            for reason in REJECT_REASONS {
                let _ = t.rejected.remove_label_values(&[l[0], l[1], l[2], reason]);
            }
        }
        for gone in series.endpoints.difference(&in_use.0.endpoints) {
            let l: [&str; 4] = [&gone[0], &gone[1], &gone[2], &gone[3]];
            let _ = t.endpoint_connections.remove_label_values(&l);
            for reason in CONNECT_ERROR_REASONS {
                let _ = t.endpoint_errors.remove_label_values(&[l[0], l[1], l[2], l[3], reason]);
            }
        }
        *series = in_use.0;
    }

    /// Every family in Prometheus' text format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "encoding metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

// === impl Traffic ===

impl Traffic {
    fn new(registry: &Registry) -> Result<Self, Error> {
        let counter = |name: &str, help: &str, labels: &[&str]| -> Result<IntCounterVec, Error> {
            let vec = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(vec.clone()))?;
            Ok(vec)
        };
        let active = IntGaugeVec::new(
            Opts::new(CONNECTIONS_ACTIVE, "Client connections open now."),
            &PORT_LABELS,
        )?;
        registry.register(Box::new(active.clone()))?;
        let duration = HistogramVec::new(
            HistogramOpts::new(CONNECTION_DURATION, "How long client connections lasted.")
                .buckets(prometheus::exponential_buckets(0.001, 4.0, 12)?),
            &PORT_LABELS,
        )?;
        registry.register(Box::new(duration.clone()))?;
        let reject_labels = ["namespace", "service", "port", "reason"];
        let error_labels = ["namespace", "service", "port", "endpoint", "reason"];
        // Registered now, filled by the HTTP data plane.
        let http_requests = IntCounterVec::new(
            Opts::new(HTTP_REQUESTS, "HTTP requests forwarded, by status code."),
            &["namespace", "service", "port", "code"],
        )?;
        registry.register(Box::new(http_requests))?;
        let http_duration = HistogramVec::new(
            HistogramOpts::new(HTTP_REQUEST_DURATION, "HTTP request latency through the proxy."),
            &PORT_LABELS,
        )?;
        registry.register(Box::new(http_duration))?;
        Ok(Self {
            connections: counter(CONNECTIONS, "Client connections accepted.", &PORT_LABELS)?,
            active,
            received: counter(RECEIVED_BYTES, "Bytes received from clients.", &PORT_LABELS)?,
            sent: counter(SENT_BYTES, "Bytes sent to clients.", &PORT_LABELS)?,
            duration,
            rejected: counter(
                REJECTED_CONNECTIONS,
                "Client connections turned away.",
                &reject_labels,
            )?,
            endpoint_connections: counter(
                ENDPOINT_CONNECTIONS,
                "Connections established to an endpoint.",
                &ENDPOINT_LABELS,
            )?,
            endpoint_errors: counter(
                ENDPOINT_CONNECT_ERRORS,
                "Failed attempts to connect to an endpoint.",
                &error_labels,
            )?,
        })
    }
}
