//! Topology-aware routing in file mode, as Kubernetes' e2e topology tests
//! check it: with this node's zone (its Node's label) hinted for some
//! endpoints, only those take the traffic; with none hinted for it, every
//! endpoint does; a changed label moves the choice. And the Node leaving
//! (its deletion, the autoscaler's taint) turns `/healthz` to 503.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::support::admin::get;
use crate::support::endpoint::Endpoint;
use crate::support::manifests::write_by_rename;
use crate::support::net::{addr, eventually, fetch, fresh_ip};
use crate::support::proxy::Proxy;

pub(crate) const NODE: &str = "node-1";

/// This node's Node object, in `zone`, with `extra` YAML under `spec`.
pub(crate) fn node(zone: &str, spec: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: {NODE}\n  labels: \
         {{topology.kubernetes.io/zone: {zone}}}\nspec: {{{spec}}}\n---\n"
    )
}

/// Service `web` on `cluster_ip:80` and one EndpointSlice per pod (each
/// listens on a port of its own), each endpoint hinted for its zone.
pub(crate) fn hinted_service(cluster_ip: std::net::Ipv4Addr, pods: &[(&Endpoint, &str)]) -> String {
    let mut yaml = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: web}}\nspec:\n  clusterIP: {cluster_ip}\n  \
         ports: [{{name: http, port: 80}}]\n"
    );
    for (i, (pod, zone)) in pods.iter().enumerate() {
        yaml += &format!(
            "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: web-{i}\n  \
             labels: {{kubernetes.io/service-name: web}}\naddressType: IPv4\nports: [{{name: http, \
             port: {}}}]\nendpoints:\n- addresses: [{}]\n  hints: {{forZones: [{{name: {zone}}}]}}\n",
            pod.addr.port(),
            pod.addr.ip()
        );
    }
    yaml
}

/// The pods that answered 12 connections to `to`.
pub(crate) fn answered(to: std::net::SocketAddr) -> BTreeSet<String> {
    (0..12).map(|_| fetch(to).unwrap()).collect()
}

pub(crate) fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn only_endpoints_hinted_for_this_zone_serve_and_a_changed_label_moves_the_choice() {
    let pods = [
        Endpoint::name(fresh_ip(), "a1"),
        Endpoint::name(fresh_ip(), "a2"),
        Endpoint::name(fresh_ip(), "b1"),
    ];
    let cluster_ip = fresh_ip();
    let service = hinted_service(cluster_ip, &[(&pods[0], "a"), (&pods[1], "a"), (&pods[2], "b")]);
    let frontend = addr(cluster_ip, 80);
    let flags = ["--node-name", NODE];
    let (mut proxy, _) = Proxy::serving(&(node("a", "") + &service), &flags, || fetch(frontend));
    assert_eq!(answered(frontend), names(&["a1", "a2"]));

    // The Node moved to zone b: only b1.
    write_by_rename(&proxy.manifest(), &(node("b", "") + &service));
    eventually("the zone b choice", Duration::from_secs(10), || {
        let got = answered(frontend);
        if got == names(&["b1"]) { Ok(()) } else { Err(format!("{got:?}")) }
    });
    // Zone c: no endpoint is hinted for it, so all of them.
    write_by_rename(&proxy.manifest(), &(node("c", "") + &service));
    eventually("every endpoint for zone c", Duration::from_secs(10), || {
        let got = answered(frontend);
        if got == names(&["a1", "a2", "b1"]) { Ok(()) } else { Err(format!("{got:?}")) }
    });
    proxy.assert_running();
}

#[test]
fn an_endpoint_without_a_hint_means_every_endpoint_serves() {
    let pods = [Endpoint::name(fresh_ip(), "a1"), Endpoint::name(fresh_ip(), "b1")];
    let cluster_ip = fresh_ip();
    let mut service = hinted_service(cluster_ip, &[(&pods[0], "a")]);
    // A second slice whose endpoint carries no hint.
    service += &format!(
        "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: web-plain\n  \
         labels: {{kubernetes.io/service-name: web}}\naddressType: IPv4\nports: [{{name: http, port: \
         {}}}]\nendpoints:\n- addresses: [{}]\n",
        pods[1].addr.port(),
        pods[1].addr.ip()
    );
    let frontend = addr(cluster_ip, 80);
    let flags = ["--node-name", NODE];
    let (_proxy, _) = Proxy::serving(&(node("a", "") + &service), &flags, || fetch(frontend));
    assert_eq!(answered(frontend), names(&["a1", "b1"]));
}

#[test]
fn healthz_fails_while_the_node_is_deleted_or_tainted_for_scale_down_and_livez_does_not() {
    let pod = Endpoint::name(fresh_ip(), "a1");
    let cluster_ip = fresh_ip();
    let service = hinted_service(cluster_ip, &[(&pod, "a")]);
    let frontend = addr(cluster_ip, 80);
    let flags = ["--node-name", NODE];
    let (mut proxy, _) = Proxy::serving(&(node("a", "") + &service), &flags, || fetch(frontend));
    let health = proxy.admin().healthz;
    let status = |path: &str| get(health, path).unwrap();
    eventually("healthy", Duration::from_secs(10), || match status("/healthz") {
        (200, body) if body.contains("\"nodeEligible\": true") => Ok(()),
        other => Err(format!("{other:?}")),
    });
    let tainted = "taints: [{key: ToBeDeletedByClusterAutoscaler, value: '1700000000', \
                   effect: NoSchedule}]";
    write_by_rename(&proxy.manifest(), &(node("a", tainted) + &service));
    eventually("503 while tainted", Duration::from_secs(10), || match status("/healthz") {
        (503, body) if body.contains("\"nodeEligible\": false") => Ok(()),
        other => Err(format!("{other:?}")),
    });
    assert_eq!(status("/livez").0, 200, "livez follows the proxy, not the Node");
    // Still serving: only load balancers are told to go elsewhere.
    assert_eq!(fetch(frontend).unwrap(), "a1");
    assert!(proxy.log().contains("/healthz answers 503"), "{}", proxy.log());

    let deleted = node("a", "")
        .replace("metadata:\n", "metadata:\n  deletionTimestamp: '2026-01-01T00:00:00Z'\n");
    write_by_rename(&proxy.manifest(), &(node("a", "") + &service));
    eventually("200 once untainted", Duration::from_secs(10), || match status("/healthz") {
        (200, _) => Ok(()),
        other => Err(format!("{other:?}")),
    });
    write_by_rename(&proxy.manifest(), &(deleted + &service));
    eventually("503 while deleted", Duration::from_secs(10), || match status("/healthz") {
        (503, _) => Ok(()),
        other => Err(format!("{other:?}")),
    });
}
