//! The API source's metric families.

use std::time::{Duration, SystemTime};

use super::{Cluster, ROUTED, service};
use crate::support::endpoint::Endpoint;
use crate::support::manifests::{Ep, slices};
use crate::support::net::{eventually, fetch, fresh_ip};

#[test]
fn watch_events_up_and_network_programming_latency_are_exported() {
    let cluster = Cluster::start();
    let (a, b) = (Endpoint::name(fresh_ip(), "a"), Endpoint::name(fresh_ip(), "b"));
    let (frontend, objects) = service("web", &[&a]);
    cluster.api.apply(&objects);
    let mut proxy = cluster.serving(&[], frontend, "a");
    proxy.wait_metric("svcproxy_api_up", Duration::from_secs(5), |v| v == 1.0);
    let modified = "svcproxy_api_watch_events_total{kind=\"EndpointSlice\",type=\"MODIFIED\"}";
    assert_eq!(proxy.metric(modified), 0.0);
    let programming = "kubeproxy_network_programming_duration_seconds_count";
    assert_eq!(proxy.metric(programming), 0.0);

    // The EndpointSlice controller stamps when it saw the change.
    let now = humantime::format_rfc3339_millis(SystemTime::now());
    let slice = slices("web", &[Ep::ready(&b)]).replace(
        "  labels:\n",
        &format!("  annotations:\n    endpoints.kubernetes.io/last-change-trigger-time: \"{now}\"\n  labels:\n"),
    );
    cluster.api.apply(&slice);
    eventually("routed to b", ROUTED, || match fetch(frontend) {
        Ok(name) if name == "b" => Ok(()),
        other => Err(format!("{other:?}")),
    });
    proxy.wait_metric(modified, ROUTED, |v| v == 1.0);
    proxy.wait_metric(programming, ROUTED, |v| v == 1.0);
    let added = "svcproxy_api_watch_events_total{kind=\"Service\",type=\"ADDED\"}";
    assert_eq!(proxy.metric(added), 0.0, "the initial list is no watch event");
}
