//! `svcproxy run` serves every kind of Frontend, as Kubernetes' own e2e
//! service tests check a cluster does: a basic endpoint from Pods,
//! multiport endpoints with per-pod named targetPorts, endpoints spread over
//! several EndpointSlices, a NodePort on the node address, an externalIP and
//! a LoadBalancer ingress IP.
//!
//! Black-box: the real binary, real sockets, loopback addresses of each
//! test's own (see `support::net::fresh_ip`).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use crate::support::endpoint::Endpoint;
use crate::support::manifests::{Port, endpoint_slice, ipv4, pod, pod_at, service, simple_service};
use crate::support::net::{self, addr, fetch, fresh_ip, fresh_node_port, http_get};
use crate::support::proxy::Proxy;

/// The ServicePort every single-port test Service exposes.
const PORT: u16 = 8080;

/// Name servers for `names`, each on an address of its own, as Pods of
/// `app`: the servers (kept alive by the caller) and their Pod manifests.
fn name_pods(app: &str, names: &[&str]) -> (Vec<Endpoint>, String) {
    let mut yaml = String::new();
    let endpoints = names
        .iter()
        .map(|name| {
            let endpoint = Endpoint::name(fresh_ip(), name);
            yaml.push_str(&pod_at(name, app, endpoint.addr));
            endpoint
        })
        .collect();
    (endpoints, yaml)
}

/// How many of `count` sequential connections to `to` each name answered.
fn tally(to: SocketAddr, count: usize) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for i in 0..count {
        let name = fetch(to).unwrap_or_else(|e| panic!("connection {i} to {to}: {e}"));
        *seen.entry(name).or_default() += 1;
    }
    seen
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn serves_a_basic_endpoint_from_pods() {
    let cluster_ip = fresh_ip();
    let hello =
        [Endpoint::http_hello(fresh_ip(), "hello-1"), Endpoint::http_hello(fresh_ip(), "hello-2")];
    let mut yaml = simple_service("hello", cluster_ip, PORT, true);
    for (i, endpoint) in hello.iter().enumerate() {
        yaml.push_str(&pod_at(&format!("hello-{}", i + 1), "hello", endpoint.addr));
    }
    let frontend = addr(cluster_ip, PORT);
    let (_proxy, _) = Proxy::serving(&yaml, &[], || http_get(frontend));

    let mut bodies = BTreeSet::new();
    for _ in 0..10 {
        let (status, body) = http_get(frontend).expect("GET through the ClusterIP");
        assert_eq!(status, "HTTP/1.1 200 OK", "body: {body}");
        bodies.insert(body);
    }
    let expected: BTreeSet<String> =
        ["Hello, k8s! from hello-1", "Hello, k8s! from hello-2"].map(String::from).into();
    assert_eq!(bodies, expected, "10 requests should reach both ready pods");
}

#[test]
fn serves_multiport_endpoints_from_pods() {
    // Two ServicePorts with named targetPorts; each pod gives the names
    // its own numbers (the endpoints' ephemeral ports), so the proxy must
    // resolve them pod by pod.
    let cluster_ip = fresh_ip();
    let mut endpoints = Vec::new();
    let mut yaml = service(
        "multi",
        cluster_ip,
        Some("multi"),
        &[Port::new("http", PORT, "web-http"), Port::new("admin", PORT + 1, "web-admin")],
        "",
    );
    for pod_name in ["pod1", "pod2"] {
        let ip = fresh_ip();
        let http = Endpoint::name(ip, &format!("{pod_name}-http"));
        let admin = Endpoint::name(ip, &format!("{pod_name}-admin"));
        yaml.push_str(&pod(
            pod_name,
            "multi",
            ip,
            &[("web-admin", admin.port()), ("web-http", http.port())],
        ));
        endpoints.extend([http, admin]);
    }
    let http = addr(cluster_ip, PORT);
    let admin = addr(cluster_ip, PORT + 1);
    let (_proxy, _) = Proxy::serving(&yaml, &[], || fetch(http).and(fetch(admin)));

    let seen = tally(http, 8);
    assert_eq!(seen.keys().cloned().collect::<BTreeSet<_>>(), names(&["pod1-http", "pod2-http"]));
    let seen = tally(admin, 8);
    assert_eq!(seen.keys().cloned().collect::<BTreeSet<_>>(), names(&["pod1-admin", "pod2-admin"]));
}

#[test]
fn serves_endpoints_from_several_endpointslices() {
    // A Service without a selector whose endpoints a controller split over
    // three EndpointSlices (one per port number).
    let cluster_ip = fresh_ip();
    let mut yaml = simple_service("sliced", cluster_ip, PORT, false);
    let mut endpoints = Vec::new();
    for (i, name) in ["slice-a", "slice-b", "slice-c"].iter().enumerate() {
        let endpoint = Endpoint::name(fresh_ip(), name);
        let ip = ipv4(endpoint.addr);
        yaml.push_str(&endpoint_slice(
            &format!("sliced-{i}"),
            "sliced",
            "tcp",
            endpoint.port(),
            &[ip],
        ));
        endpoints.push(endpoint);
    }
    let frontend = addr(cluster_ip, PORT);
    let (_proxy, _) = Proxy::serving(&yaml, &[], || fetch(frontend));

    let seen = tally(frontend, 12);
    assert_eq!(
        seen.keys().cloned().collect::<BTreeSet<_>>(),
        names(&["slice-a", "slice-b", "slice-c"]),
        "every slice's endpoint should be reached: {seen:?}"
    );
}

#[test]
fn nodeport_is_reachable_on_the_node_address() {
    let (cluster_ip, node_ip, other_ip) = (fresh_ip(), fresh_ip(), fresh_ip());
    let node_port = fresh_node_port();
    let (_endpoints, pods) = name_pods("np", &["np-1", "np-2"]);
    let ports = [Port::tcp(PORT).with_node_port(node_port)];
    let mut yaml = service("np", cluster_ip, Some("np"), &ports, "  type: NodePort\n");
    yaml.push_str(&pods);
    let node = addr(node_ip, node_port);
    let flag = format!("{node_ip}/32");
    let (_proxy, _) = Proxy::serving(&yaml, &["--nodeport-addresses", &flag], || fetch(node));

    let seen = tally(node, 6);
    assert_eq!(seen.keys().cloned().collect::<BTreeSet<_>>(), names(&["np-1", "np-2"]));
    // The ClusterIP serves too, and the NodePort is not opened on addresses
    // outside --nodeport-addresses.
    assert!(names(&["np-1", "np-2"]).contains(&fetch(addr(cluster_ip, PORT)).expect("ClusterIP")));
    assert!(
        net::refuses(addr(other_ip, node_port)),
        "NodePort {node_port} answered on {other_ip}, outside --nodeport-addresses {flag}"
    );
}

#[test]
fn external_ip_is_served() {
    let (cluster_ip, external_ip) = (fresh_ip(), fresh_ip());
    let (_endpoints, pods) = name_pods("ext", &["ext-1"]);
    let spec = format!("  externalIPs:\n    - {external_ip}\n");
    let mut yaml = service("ext", cluster_ip, Some("ext"), &[Port::tcp(PORT)], &spec);
    yaml.push_str(&pods);
    let external = addr(external_ip, PORT);
    let (_proxy, name) = Proxy::serving(&yaml, &[], || fetch(external));

    assert_eq!(name, "ext-1");
    assert_eq!(fetch(addr(cluster_ip, PORT)).expect("ClusterIP"), "ext-1");
}

#[test]
fn load_balancer_ingress_ip_is_served() {
    let (cluster_ip, ingress_ip, node_ip) = (fresh_ip(), fresh_ip(), fresh_ip());
    let node_port = fresh_node_port();
    let (_endpoints, pods) = name_pods("lb", &["lb-1"]);
    let mut yaml = service(
        "lb",
        cluster_ip,
        Some("lb"),
        &[Port::tcp(PORT).with_node_port(node_port)],
        &format!(
            "  type: LoadBalancer\nstatus:\n  loadBalancer:\n    ingress:\n      - ip: {ingress_ip}\n"
        ),
    );
    yaml.push_str(&pods);
    let ingress = addr(ingress_ip, PORT);
    let flag = format!("{node_ip}/32");
    let (_proxy, name) = Proxy::serving(&yaml, &["--nodeport-addresses", &flag], || fetch(ingress));

    assert_eq!(name, "lb-1");
    assert_eq!(fetch(addr(node_ip, node_port)).expect("NodePort of the LoadBalancer"), "lb-1");
}

#[test]
fn addresses_and_ports_without_a_frontend_are_not_opened() {
    let (cluster_ip, stray) = (fresh_ip(), fresh_ip());
    let (_endpoints, pods) = name_pods("only", &["only-1"]);
    let mut yaml = simple_service("only", cluster_ip, PORT, true);
    yaml.push_str(&pods);
    let (_proxy, _) = Proxy::serving(&yaml, &[], || fetch(addr(cluster_ip, PORT)));
    assert!(net::refuses(addr(stray, PORT)));
    assert!(net::refuses(addr(cluster_ip, PORT + 1)));
}

#[test]
fn sctp_ports_are_not_proxied_and_udp_ports_get_a_udp_socket_only() {
    let cluster_ip = fresh_ip();
    let (_endpoints, pods) = name_pods("mixed", &["mixed-1"]);
    // One TCP port and one UDP port (served), one SCTP port (not proxied).
    let yaml = service("mixed", cluster_ip, Some("mixed"), &[Port::tcp(PORT)], "")
        + "    - name: dns\n      protocol: UDP\n      port: 5353\n      targetPort: 5353\n"
        + "    - name: sig\n      protocol: SCTP\n      port: 3868\n      targetPort: 3868\n"
        + &pods;
    let (_proxy, name) = Proxy::serving(&yaml, &[], || fetch(addr(cluster_ip, PORT)));
    assert_eq!(name, "mixed-1");

    // The proxy holds the UDP port (we cannot bind it ourselves: no
    // SO_REUSEADDR), and no TCP listener stands in for the UDP or SCTP ports.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::net::UdpSocket::bind(addr(cluster_ip, 5353)).is_ok() {
        assert!(std::time::Instant::now() < deadline, "UDP {cluster_ip}:5353 is not bound");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(net::refuses(addr(cluster_ip, 5353)), "TCP listener on the UDP port");
    assert!(net::refuses(addr(cluster_ip, 3868)), "TCP listener on the SCTP port");
}

#[test]
fn kube_proxys_min_sync_period_flag_is_accepted() {
    // kube-proxy's command lines carry it (DESIGN §2); it is for the
    // API-server source, so file mode serves as without it.
    let cluster_ip = fresh_ip();
    let hello = Endpoint::http_hello(fresh_ip(), "hello-1");
    let mut yaml = simple_service("synced", cluster_ip, PORT, true);
    yaml.push_str(&pod_at("hello-1", "synced", hello.addr));
    let frontend = addr(cluster_ip, PORT);
    let flags = ["--min-sync-period", "250ms"];
    let (_proxy, (status, body)) = Proxy::serving(&yaml, &flags, || http_get(frontend));
    assert_eq!(status, "HTTP/1.1 200 OK", "body: {body}");
    assert_eq!(body, "Hello, k8s! from hello-1");
}
