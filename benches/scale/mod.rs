//! The cluster-scale input shared by the Snapshot benches.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::ops::Range;
use std::path::Path;

use svcproxy::manifest::{Loaded, Object};
use svcproxy::metrics::Metrics;
use svcproxy::model::{Model, Options};
use svcproxy::table::Snapshot;

pub const SERVICES: usize = 10_000;

/// A `kind: List` of `count` Services, each with two named ports and one
/// EndpointSlice of three ready endpoints.
pub fn manifest(count: usize) -> String {
    list(0..count, 0)
}

/// Services `range` as [`manifest`] writes them; `version` moves every
/// third endpoint, so two versions of one range differ in each slice.
pub fn list(range: Range<usize>, version: u8) -> String {
    let mut text = String::from("apiVersion: v1\nkind: List\nitems:\n");
    for i in range {
        let (a, b) = (i / 250, i % 250);
        let _ = write!(
            text,
            "- apiVersion: v1\n  kind: Service\n  metadata: {{name: svc-{i}, namespace: bench}}\n  \
             spec:\n    clusterIP: 127.{}.{a}.{b}\n    selector: {{app: svc-{i}}}\n    ports:\n    \
             - {{name: http, port: 80, targetPort: 8080}}\n    - {{name: metrics, port: 9090}}\n\
             - apiVersion: discovery.k8s.io/v1\n  kind: EndpointSlice\n  \
             metadata: {{name: svc-{i}-abc, namespace: bench, labels: {{kubernetes.io/service-name: svc-{i}}}}}\n  \
             addressType: IPv4\n  ports: [{{name: http, port: 8080}}, {{name: metrics, port: 9090}}]\n  endpoints:\n  \
             - addresses: [127.200.{a}.{b}]\n  - addresses: [127.201.{a}.{b}]\n  - addresses: [127.{}.{a}.{b}]\n",
            96 + i / 62_500,
            202 + version
        );
    }
    text
}

pub fn objects(text: &str) -> Vec<Object> {
    let mut loaded = Loaded::default();
    loaded.add_text(Path::new("bench.yaml"), text);
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors.first());
    loaded.objects
}

pub fn options() -> Options {
    Options {
        service_cidr: "10.96.0.0/12".parse().expect("cidr"),
        node_name: "bench".to_owned(),
        service_proxy_name: None,
        http_by_port_name: false,
    }
}

/// The addresses NodePorts are bound on.
pub const NODE: [IpAddr; 1] = [IpAddr::V4(Ipv4Addr::UNSPECIFIED)];

/// One cold build (`check`, or the daemon's first): objects → model →
/// Snapshot; `metrics` is the registry, whose per-port and per-endpoint
/// entries a build reuses when they exist.
pub fn snapshot(objects: &[Object], metrics: &Metrics) -> Snapshot {
    build(Model::build(objects, &options()), &Snapshot::default(), metrics)
}

/// The Snapshot of `model` that follows `previous`, counting into
/// `metrics` as the daemon does (series it no longer uses dropped).
pub fn build(model: Model, previous: &Snapshot, metrics: &Metrics) -> Snapshot {
    let in_use = metrics.begin();
    let snapshot = Snapshot::build(model, previous, &NODE, "bench", Some((metrics, &in_use)));
    metrics.retain(in_use);
    snapshot
}
