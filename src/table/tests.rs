//! Snapshot builds across rebuilds: what a new generation carries on.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use super::*;
use crate::balance::Balancer;
use crate::model::tests::model;

/// A Service at 127.0.0.10:80 whose EndpointSlice lists `ips` on port 8080.
fn manifest(ips: &[&str]) -> String {
    let endpoints: String = ips.iter().map(|ip| format!("- addresses: [{ip}]\n")).collect();
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: web}}\n\
         spec: {{clusterIP: 127.0.0.10, ports: [{{port: 80, targetPort: 8080}}]}}\n\
         ---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
         metadata: {{name: web-1, labels: {{kubernetes.io/service-name: web}}}}\n\
         addressType: IPv4\nports: [{{port: 8080}}]\nendpoints:\n{endpoints}"
    )
}

fn build(text: &str, generation: u64, metrics: &Metrics) -> Snapshot {
    let node = [IpAddr::V4(Ipv4Addr::UNSPECIFIED)];
    Snapshot::build(model(text), generation, &node, "node-a", metrics)
}

/// The endpoint the next connection to the Service's ClusterIP tries first.
fn next_pick(snapshot: &Snapshot, balancer: &Balancer) -> SocketAddr {
    let frontend =
        Frontend { addr: SocketAddr::from(([127, 0, 0, 10], 80)), protocol: Protocol::Tcp };
    let route = snapshot.route(&frontend).expect("the ClusterIP frontend");
    let plan = balancer.plan(route, [127, 0, 0, 1].into(), Instant::now());
    let first = plan.iter().next().expect("an endpoint to try");
    route.targets[first].addr
}

#[test]
fn a_rebuild_continues_the_round_robin_rotation() {
    let (metrics, balancer) = (Metrics::new().unwrap(), Balancer::default());
    let text = manifest(&["127.0.1.1", "127.0.1.2", "127.0.1.3"]);
    let first = build(&text, 1, &metrics);
    assert_eq!(next_pick(&first, &balancer), SocketAddr::from(([127, 0, 1, 1], 8080)));
    // A reload that leaves the port as it was...
    let second = build(&text, 2, &metrics);
    assert_eq!(next_pick(&second, &balancer), SocketAddr::from(([127, 0, 1, 2], 8080)));
    // ...or changes its endpoints: the rotation goes on from where it was.
    let third =
        build(&manifest(&["127.0.1.1", "127.0.1.2", "127.0.1.3", "127.0.1.4"]), 3, &metrics);
    assert_eq!(next_pick(&third, &balancer), SocketAddr::from(([127, 0, 1, 3], 8080)));
    // A live connection's old Route shares the position too.
    let cursor = |s: &Snapshot| s.routes.values().map(|r| r.cursor.clone()).next().unwrap();
    assert!(Arc::ptr_eq(&cursor(&first), &cursor(&third)));
}

#[test]
fn a_port_that_leaves_and_comes_back_starts_its_rotation_again() {
    let (metrics, balancer) = (Metrics::new().unwrap(), Balancer::default());
    let text = manifest(&["127.0.1.1", "127.0.1.2"]);
    let first = build(&text, 1, &metrics);
    assert_eq!(next_pick(&first, &balancer), SocketAddr::from(([127, 0, 1, 1], 8080)));
    let _gone = build("", 2, &metrics);
    let back = build(&text, 3, &metrics);
    assert_eq!(next_pick(&back, &balancer), SocketAddr::from(([127, 0, 1, 1], 8080)));
}
