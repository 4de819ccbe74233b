//! Every metric family, registered once; names are a contract (DESIGN §5).
//!
//! The control plane updates the routing families on each rebuild. Traffic
//! families (per Service port and endpoint) come with the metrics issue.

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

pub const CONFIG_RELOADS: &str = "svcproxy_config_reloads_total";
pub const CONFIG_INVALID_OBJECTS: &str = "svcproxy_config_invalid_objects";
pub const ROUTING_GENERATION: &str = "svcproxy_routing_generation";
pub const SERVICES: &str = "svcproxy_services";
pub const ENDPOINTS: &str = "svcproxy_endpoints";
/// kube-proxy's names, so its dashboards work.
pub const SYNC_DURATION: &str = "kubeproxy_sync_proxy_rules_duration_seconds";
pub const SYNC_LAST_TIMESTAMP: &str = "kubeproxy_sync_proxy_rules_last_timestamp_seconds";

/// The registry and a handle on each family.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// `result` = `success` | `failure` (any invalid file or object).
    pub config_reloads: IntCounterVec,
    pub config_invalid_objects: IntGauge,
    pub routing_generation: IntGauge,
    pub services: IntGauge,
    pub endpoints: IntGauge,
    pub sync_duration: Histogram,
    pub sync_last_timestamp: Gauge,
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
        Ok(Self {
            registry,
            config_reloads,
            config_invalid_objects,
            routing_generation,
            services,
            endpoints,
            sync_duration,
            sync_last_timestamp,
        })
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
