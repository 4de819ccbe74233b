//! Snapshot builds across rebuilds: what a new generation carries on.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::*;
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

/// The Snapshot of `text` that follows `previous`, counting into `metrics`.
fn build(text: &str, previous: &Snapshot, metrics: &Metrics) -> Snapshot {
    let node = [IpAddr::V4(Ipv4Addr::UNSPECIFIED)];
    let in_use = metrics.begin();
    let next = Snapshot::build(model(text), previous, &node, "node-a", Some((metrics, &in_use)));
    metrics.retain(in_use);
    next
}

/// The endpoint the next connection to the Service's ClusterIP tries first
/// when none is ejected: the balancer starts its rotation at the cursor.
fn next_pick(snapshot: &Snapshot) -> SocketAddr {
    let frontend =
        Frontend { addr: SocketAddr::from(([127, 0, 0, 10], 80)), protocol: Protocol::Tcp };
    let route = snapshot.route(&frontend).expect("the ClusterIP frontend");
    route.endpoints[route.cursor.next() % route.endpoints.len()].addr
}

#[test]
fn a_rebuild_continues_the_round_robin_rotation() {
    let metrics = Metrics::new().unwrap();
    let text = manifest(&["127.0.1.1", "127.0.1.2", "127.0.1.3"]);
    let first = build(&text, &Snapshot::default(), &metrics);
    assert_eq!(first.generation, 1);
    assert_eq!(next_pick(&first), SocketAddr::from(([127, 0, 1, 1], 8080)));
    // A reload that leaves the port as it was...
    let second = build(&text, &first, &metrics);
    assert_eq!(second.generation, 2);
    assert_eq!(next_pick(&second), SocketAddr::from(([127, 0, 1, 2], 8080)));
    // ...or changes its endpoints: the rotation goes on from where it was.
    let more = manifest(&["127.0.1.1", "127.0.1.2", "127.0.1.3", "127.0.1.4"]);
    let third = build(&more, &second, &metrics);
    assert_eq!(next_pick(&third), SocketAddr::from(([127, 0, 1, 3], 8080)));
    // A live connection's old Route shares the position too.
    let cursor = |s: &Snapshot| s.routes.values().map(|r| r.cursor.clone()).next().unwrap();
    assert!(Arc::ptr_eq(&cursor(&first), &cursor(&third)));
}

#[test]
fn a_port_that_leaves_and_comes_back_starts_its_rotation_again() {
    let metrics = Metrics::new().unwrap();
    let text = manifest(&["127.0.1.1", "127.0.1.2"]);
    let first = build(&text, &Snapshot::default(), &metrics);
    assert_eq!(next_pick(&first), SocketAddr::from(([127, 0, 1, 1], 8080)));
    let gone = build("", &first, &metrics);
    let back = build(&text, &gone, &metrics);
    assert_eq!(next_pick(&back), SocketAddr::from(([127, 0, 1, 1], 8080)));
}

#[test]
fn a_health_check_counts_this_nodes_ready_endpoints_once_each() {
    let metrics = Metrics::new().unwrap();
    let text = "apiVersion: v1\nkind: Service\nmetadata: {name: lb}\n\
        spec: {type: LoadBalancer, clusterIP: 127.0.0.20, externalTrafficPolicy: Local, \
        healthCheckNodePort: 30300, ports: [{name: a, port: 80, nodePort: 30080}, \
        {name: b, port: 81, nodePort: 30081}]}\n\
        ---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
        metadata: {name: lb-1, labels: {kubernetes.io/service-name: lb}}\n\
        addressType: IPv4\nports: [{name: a, port: 8080}, {name: b, port: 8081}]\nendpoints:\n\
        - {addresses: [127.0.2.1], nodeName: node-a}\n\
        - {addresses: [127.0.2.2], nodeName: node-a, conditions: {ready: false, terminating: true}}\n\
        - {addresses: [127.0.2.3], nodeName: node-b}\n";
    let snapshot = build(text, &Snapshot::default(), &metrics);
    let frontend =
        Frontend { addr: SocketAddr::from(([0, 0, 0, 0], 30300)), protocol: Protocol::Tcp };
    let check = snapshot.health_check(&frontend).expect("the health check port");
    // 127.0.2.1 serves both ports and counts once; terminating and remote ones not at all.
    assert_eq!(check.local, 1);
    assert!(snapshot.route(&frontend).is_none());
    assert!(snapshot.frontends().contains(&frontend) && snapshot.serves(&frontend));
}

#[test]
fn a_health_check_counts_the_endpoints_of_its_own_family() {
    let text = "apiVersion: v1\nkind: Service\nmetadata: {name: lb}\n\
        spec: {type: LoadBalancer, ipFamilyPolicy: RequireDualStack, \
        clusterIPs: [127.0.0.21, '::1'], externalTrafficPolicy: Local, \
        healthCheckNodePort: 30301, ports: [{name: a, port: 80, nodePort: 30082}]}\n\
        ---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
        metadata: {name: lb-4, labels: {kubernetes.io/service-name: lb}}\n\
        addressType: IPv4\nports: [{name: a, port: 8080}]\nendpoints:\n\
        - {addresses: [127.0.2.1], nodeName: node-a}\n\
        - {addresses: [127.0.2.2], nodeName: node-a}\n\
        ---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
        metadata: {name: lb-6, labels: {kubernetes.io/service-name: lb}}\n\
        addressType: IPv6\nports: [{name: a, port: 8080}]\nendpoints:\n\
        - {addresses: ['::1'], nodeName: node-a}\n";
    let node = [IpAddr::V4(Ipv4Addr::UNSPECIFIED), IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)];
    let snapshot = Snapshot::build(model(text), &Snapshot::default(), &node, "node-a", None);
    let local = |ip: IpAddr| {
        let frontend = Frontend { addr: SocketAddr::new(ip, 30301), protocol: Protocol::Tcp };
        snapshot.health_check(&frontend).expect("the health check port").local
    };
    // Two pods, one of them dual-stack: two IPv4 endpoints, one IPv6.
    assert_eq!(local(node[0]), 2);
    assert_eq!(local(node[1]), 1);
}

#[test]
fn a_build_without_metrics_routes_as_one_that_counts() {
    let text = manifest(&["127.0.1.1", "127.0.1.2"]);
    let node = [IpAddr::V4(Ipv4Addr::UNSPECIFIED)];
    let alone = Snapshot::build(model(&text), &Snapshot::default(), &node, "node-a", None);
    let counted = build(&text, &Snapshot::default(), &Metrics::new().unwrap());
    assert_eq!(alone.frontends(), counted.frontends());
    for frontend in alone.frontends() {
        let addrs = |s: &Snapshot| -> Vec<SocketAddr> {
            s.route(&frontend).unwrap().endpoints.iter().map(|e| e.addr).collect()
        };
        assert_eq!(addrs(&alone), addrs(&counted));
    }
    assert_eq!(next_pick(&alone), SocketAddr::from(([127, 0, 1, 1], 8080)));
}

#[test]
fn app_protocol_decides_the_mode_and_port_names_only_when_asked() {
    use crate::model::{Protocol, ServicePort, TargetPort};
    use crate::table::{Mode, Upstream};

    let port = |name: &str, app: Option<&str>| ServicePort {
        name: name.into(),
        label: name.into(),
        port: 80,
        protocol: Protocol::Tcp,
        target: TargetPort::Number(80),
        node_port: None,
        app_protocol: app.map(str::to_owned),
    };
    let cases = [
        (port("", Some("http")), false, Mode::Http(Upstream::Http1)),
        (port("", Some("kubernetes.io/h2c")), false, Mode::Http(Upstream::H2c)),
        (port("", Some("h2c")), false, Mode::Http(Upstream::H2c)),
        (port("", Some("http2")), false, Mode::Http(Upstream::H2c)),
        (port("", Some("grpc")), false, Mode::Http(Upstream::H2c)),
        (port("", Some("tcp")), false, Mode::Tcp),
        (port("http", Some("tcp")), true, Mode::Tcp),
        (port("", Some("kubernetes.io/ws")), false, Mode::Tcp),
        // A port named http carrying raw TCP keeps working by default.
        (port("http", None), false, Mode::Tcp),
        (port("http", None), true, Mode::Http(Upstream::Http1)),
        (port("http-api", None), true, Mode::Http(Upstream::Http1)),
        (port("http2", None), true, Mode::Http(Upstream::H2c)),
        (port("grpc", None), true, Mode::Http(Upstream::H2c)),
        (port("grpc-web", None), true, Mode::Http(Upstream::H2c)),
        (port("httpx", None), true, Mode::Tcp),
    ];
    for (port, by_name, want) in cases {
        assert_eq!(
            Mode::of(&port, by_name),
            want,
            "{:?} {:?} {by_name}",
            port.name,
            port.app_protocol
        );
    }
}
