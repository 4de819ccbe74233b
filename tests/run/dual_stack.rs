//! Dual-stack: IPv6 ClusterIPs, NodePorts and external IPs, and each
//! family forwarding only to endpoints of its own family, as kube-proxy's
//! one proxier per family does. Only `::1` is local IPv6 here: every IPv6
//! frontend and endpoint is on it, on ports of its own (taken by binding
//! `[::1]:0`), since parallel tests share it.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::time::Duration;

use crate::support::admin::routes;
use crate::support::endpoint::Endpoint;
use crate::support::net::{addr, fetch, fresh_ip, fresh_node_port};
use crate::support::proxy::Proxy;
use crate::support::udp::exchange;

/// A port nothing listens on at `[::1]` right now.
fn free_v6_port() -> u16 {
    TcpListener::bind("[::1]:0").unwrap().local_addr().unwrap().port()
}

fn v6(port: u16) -> SocketAddr {
    SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port))
}

/// An EndpointSlice of `service` with one address and port `web`.
fn slice(service: &str, family: &str, at: SocketAddr) -> String {
    format!(
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {service}-{family}\n  \
         labels: {{kubernetes.io/service-name: {service}}}\naddressType: {family}\n\
         endpoints: [{{addresses: [\"{}\"]}}]\nports: [{{name: web, port: {}}}]\n",
        at.ip(),
        at.port()
    )
}

/// Every one of `n` connections to `to` answers `name`.
fn all_answer(to: SocketAddr, name: &str, n: usize) {
    for _ in 0..n {
        assert_eq!(fetch(to).unwrap(), name, "through {to}");
    }
}

#[test]
fn a_single_stack_ipv6_cluster_ip_forwards_tcp_to_its_ipv6_endpoint() {
    let pod = Endpoint::name_on(v6(0), "v6");
    let port = free_v6_port();
    let yaml = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: web6}}\nspec:\n  ipFamilies: [IPv6]\n  \
         clusterIP: \"::1\"\n  ports: [{{name: web, port: {port}}}]\n---\n{}",
        slice("web6", "IPv6", pod.addr)
    );
    let (_proxy, said) = Proxy::serving(&yaml, &[], || fetch(v6(port)));
    assert_eq!(said, "v6");
    all_answer(v6(port), "v6", 3);
}

#[test]
fn a_dual_stack_service_sends_each_family_only_to_its_own_endpoints() {
    let (pod4, pod6) = (Endpoint::name(fresh_ip(), "v4"), Endpoint::name_on(v6(0), "v6"));
    let (ip4, port) = (fresh_ip(), free_v6_port());
    let yaml = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: dual}}\nspec:\n  \
         ipFamilyPolicy: RequireDualStack\n  clusterIPs: [\"{ip4}\", \"::1\"]\n  \
         ports: [{{name: web, port: {port}}}]\n---\n{}---\n{}",
        slice("dual", "IPv4", pod4.addr),
        slice("dual", "IPv6", pod6.addr)
    );
    let (mut proxy, _) = Proxy::serving(&yaml, &[], || fetch(v6(port)));
    // Round robin would alternate if the families were mixed.
    all_answer(addr(ip4, port), "v4", 4);
    all_answer(v6(port), "v6", 4);
    let table = routes(&proxy.admin());
    let frontend = table["frontends"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["frontend"] == format!("[::1]:{port}/TCP"))
        .unwrap_or_else(|| panic!("no IPv6 frontend in /debug/routes: {table}"));
    let endpoints = frontend["endpoints"].as_array().unwrap();
    assert_eq!(endpoints.len(), 1, "{frontend}");
    assert_eq!(endpoints[0]["address"], pod6.addr.to_string(), "{frontend}");
}

#[test]
fn a_dual_stack_pod_is_reached_through_its_address_of_each_family() {
    // One pod, one port, two addresses (status.podIPs): each listener says
    // which family it was reached on.
    let pod6 = Endpoint::name_on(v6(0), "v6");
    let ip4 = fresh_ip();
    let pod4 = Endpoint::name_on(addr(ip4, pod6.addr.port()), "v4");
    let (cluster4, port) = (fresh_ip(), free_v6_port());
    let yaml = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: pods}}\nspec:\n  \
         ipFamilyPolicy: PreferDualStack\n  clusterIPs: [\"{cluster4}\", \"::1\"]\n  \
         selector: {{app: pods}}\n  ports: [{{port: {port}, targetPort: {}}}]\n---\n\
         apiVersion: v1\nkind: Pod\nmetadata: {{name: pods-1, labels: {{app: pods}}}}\n\
         spec: {{containers: [{{name: c, image: x}}]}}\nstatus:\n  phase: Running\n  \
         podIP: {ip4}\n  podIPs: [{{ip: {ip4}}}, {{ip: \"::1\"}}]\n",
        pod4.addr.port()
    );
    let (_proxy, _) = Proxy::serving(&yaml, &[], || fetch(v6(port)));
    all_answer(addr(cluster4, port), "v4", 3);
    all_answer(v6(port), "v6", 3);
}

#[test]
fn an_ipv4_cluster_ip_never_forwards_to_an_ipv6_endpoint() {
    let pod6 = Endpoint::name_on(v6(0), "v6");
    // The IPv4 pod listens on the IPv6 pod's port: one Endpoints port for both.
    let pod4 = Endpoint::name_on(addr(fresh_ip(), pod6.addr.port()), "v4");
    let (with_v4, only_v6) = (fresh_ip(), fresh_ip());
    // Endpoints objects may list both families; each ClusterIP takes its own.
    let service = |name: &str, ip: Ipv4Addr, addresses: &str| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  clusterIP: {ip}\n  \
             ports: [{{name: web, port: 80}}]\n---\napiVersion: v1\nkind: Endpoints\n\
             metadata: {{name: {name}}}\nsubsets:\n- addresses: [{addresses}]\n  \
             ports: [{{name: web, port: {}}}]\n---\n",
            pod6.addr.port()
        )
    };
    let yaml = format!(
        "{}{}",
        service("mixed", with_v4, &format!("{{ip: \"::1\"}}, {{ip: {}}}", pod4.addr.ip())),
        service("v6-pods", only_v6, "{ip: \"::1\"}")
    );
    let (mut proxy, _) = Proxy::serving(&yaml, &[], || fetch(addr(with_v4, 80)));
    all_answer(addr(with_v4, 80), "v4", 4);
    // No endpoint of its family: rejected at once, never a byte of the pod.
    let table = routes(&proxy.admin());
    let frontend = format!("{only_v6}:80/TCP");
    let route = table["frontends"].as_array().unwrap().iter().find(|f| f["frontend"] == frontend);
    let route = route.unwrap_or_else(|| panic!("{frontend} not in /debug/routes: {table}"));
    assert_eq!(route["endpoints"].as_array().unwrap().len(), 0, "{route}");
    for _ in 0..3 {
        let said = fetch(addr(only_v6, 80)).unwrap_or_default();
        assert_eq!(said, "", "an IPv4 ClusterIP with only IPv6 endpoints answered");
    }
}

#[test]
fn external_ips_and_node_ports_of_each_family_reach_endpoints_of_that_family() {
    let (pod4, pod6) = (Endpoint::name(fresh_ip(), "v4"), Endpoint::name_on(v6(0), "v6"));
    let (cluster4, external4, node4) = (fresh_ip(), fresh_ip(), fresh_ip());
    let (port, node_port) = (free_v6_port(), fresh_node_port());
    // The IPv6 ClusterIP is not local: bound with IP_FREEBIND, never sent to.
    let yaml = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: edge}}\nspec:\n  type: NodePort\n  \
         ipFamilyPolicy: RequireDualStack\n  clusterIPs: [\"{cluster4}\", \"fd00:10:96::77\"]\n  \
         externalIPs: [\"{external4}\", \"::1\"]\n  \
         ports: [{{name: web, port: {port}, nodePort: {node_port}}}]\n---\n{}---\n{}",
        slice("edge", "IPv4", pod4.addr),
        slice("edge", "IPv6", pod6.addr)
    );
    let nodeport_addresses = format!("{node4}/32,::1/128");
    let (_proxy, _) = Proxy::serving(&yaml, &["--nodeport-addresses", &nodeport_addresses], || {
        fetch(v6(node_port))
    });
    all_answer(v6(port), "v6", 2);
    all_answer(v6(node_port), "v6", 2);
    all_answer(addr(external4, port), "v4", 2);
    all_answer(addr(node4, node_port), "v4", 2);
    all_answer(addr(cluster4, port), "v4", 2);
}

#[test]
fn a_udp_node_port_on_the_ipv6_wildcard_replies_from_the_address_asked() {
    // An IPv6-only Service: its NodePort is bound on `[::]` alone (the
    // default --nodeport-addresses), whose replies need IPV6_RECVPKTINFO to
    // leave from [::1].
    let pod = UdpSocket::bind(v6(0)).unwrap();
    let pod_port = pod.local_addr().unwrap().port();
    let echo = std::thread::spawn(move || {
        pod.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut buf = vec![0; 2048];
        while let Ok((n, from)) = pod.recv_from(&mut buf) {
            pod.send_to(&buf[..n], from).unwrap();
            if &buf[..n] == b"last" {
                break;
            }
        }
    });
    let (port, node_port) = (free_v6_port(), fresh_node_port());
    let yaml = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: dns6}}\nspec:\n  type: NodePort\n  \
         ipFamilies: [IPv6]\n  clusterIP: \"::1\"\n  \
         ports: [{{name: web, port: {port}, nodePort: {node_port}, protocol: UDP}}]\n---\n\
         apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: dns6\n  \
         labels: {{kubernetes.io/service-name: dns6}}\naddressType: IPv6\n\
         endpoints: [{{addresses: [\"::1\"]}}]\nports: [{{name: web, port: {pod_port}, protocol: UDP}}]\n"
    );
    let client = UdpSocket::bind(v6(0)).unwrap();
    client.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let frontend = v6(node_port);
    let (_proxy, _) = Proxy::serving(&yaml, &[], || exchange(&client, frontend, b"ready"));
    assert_eq!(exchange(&client, frontend, b"hello").unwrap(), (b"hello".to_vec(), frontend));
    assert_eq!(exchange(&client, frontend, b"last").unwrap(), (b"last".to_vec(), frontend));
    echo.join().unwrap();
}
