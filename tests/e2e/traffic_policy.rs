//! `internalTrafficPolicy: Local` and `externalTrafficPolicy: Local`: the
//! ClusterIP, respectively the NodePort, externalIP and LoadBalancer
//! ingress, reach only this node's endpoints (`--node-name`), rejecting at
//! once when there are none, and fall back to a local serving and
//! terminating endpoint before any remote one.

use crate::jig::{
    NODE_PORT_FLAGS, edit, free_node_port, node, servers, start, wait_rejected, wait_serving,
};
use crate::support::manifests::{NODE, PORT, Svc, local_and_remote, slices};
use crate::support::net::{addr, fresh_ip};

/// "should respect internalTrafficPolicy=Local": with no endpoint on this
/// node the ClusterIP has no endpoints (rejected at once) while the
/// NodePort (external traffic, policy Cluster) serves; with a local one,
/// the ClusterIP reaches only it. "should fallback to local terminating
/// endpoints when there are no ready endpoints with
/// internalTrafficPolicy=Local": a local serving+terminating endpoint is
/// used before a ready remote one.
#[test]
fn internal_traffic_policy_local_uses_only_this_nodes_endpoints() {
    let (ip, node_port) = (fresh_ip(), free_node_port());
    let eps = servers(&["itp-local", "itp-remote"]);
    let (local, remote) = local_and_remote(&eps[0], &eps[1]);
    let svc = Svc::new("itp", ip)
        .no_selector()
        .kind("NodePort")
        .node_port(node_port)
        .spec("  internalTrafficPolicy: Local\n")
        .yaml();
    let (cluster, np) = (addr(ip, PORT), node(node_port));
    let flags = ["--node-name", NODE, NODE_PORT_FLAGS[0], NODE_PORT_FLAGS[1]];
    let mut proxy = start(&(svc.clone() + &slices("itp", &[remote])), &flags);
    wait_serving(np, &["itp-remote"]);
    wait_rejected(cluster);

    edit(&mut proxy, &(svc.clone() + &slices("itp", &[local, remote])));
    wait_serving(cluster, &["itp-local"]);
    wait_serving(np, &["itp-local", "itp-remote"]);
    let draining = local.conditions(Some(false), Some(true), Some(true));
    edit(&mut proxy, &(svc.clone() + &slices("itp", &[draining, remote])));
    wait_serving(cluster, &["itp-local"]);
    wait_serving(np, &["itp-remote"]);
}

/// `externalTrafficPolicy: Local`: the NodePort, the externalIP and the
/// LoadBalancer ingress reach only this node's endpoints (none: rejected
/// at once), the ClusterIP every endpoint; "should fallback to local
/// terminating endpoints when there are no ready endpoints with
/// externalTrafficPolicy=Local".
#[test]
fn external_traffic_policy_local_uses_only_this_nodes_endpoints_from_outside() {
    let (ip, external, node_port) = (fresh_ip(), fresh_ip(), free_node_port());
    let eps = servers(&["etp-local", "etp-remote"]);
    let (local, remote) = local_and_remote(&eps[0], &eps[1]);
    let svc = Svc::new("etp", ip)
        .no_selector()
        .kind("NodePort")
        .node_port(node_port)
        .spec(&format!("  externalTrafficPolicy: Local\n  externalIPs:\n    - {external}\n"))
        .yaml();
    let (cluster, np, ext) = (addr(ip, PORT), node(node_port), addr(external, PORT));
    let flags = ["--node-name", NODE, NODE_PORT_FLAGS[0], NODE_PORT_FLAGS[1]];
    let mut proxy = start(&(svc.clone() + &slices("etp", &[local, remote])), &flags);
    wait_serving(cluster, &["etp-local", "etp-remote"]);
    wait_serving(np, &["etp-local"]);
    wait_serving(ext, &["etp-local"]);

    let draining = local.conditions(Some(false), Some(true), Some(true));
    edit(&mut proxy, &(svc.clone() + &slices("etp", &[draining, remote])));
    wait_serving(np, &["etp-local"]);
    wait_serving(cluster, &["etp-remote"]);
    edit(&mut proxy, &(svc.clone() + &slices("etp", &[remote])));
    wait_rejected(np);
    wait_rejected(ext);
    wait_serving(cluster, &["etp-remote"]);
}
