//! `spec.loadBalancerSourceRanges`: a LoadBalancer ingress IP serves only
//! the clients inside the ranges, as kube-proxy's firewall chain does; the
//! ClusterIP and the NodePort serve everyone; an edit applies to the next
//! connection; UDP datagrams from outside are dropped.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::support::admin::routes;
use crate::support::endpoint::Endpoint;
use crate::support::manifests::write_by_rename;
use crate::support::net::{addr, eventually, fetch_from, fresh_ip, fresh_node_port};
use crate::support::proxy::Proxy;
use crate::support::udp::{UdpPod, exchange};

/// A LoadBalancer Service `name` on port 80 with `ingress` as its ingress
/// IP, `ranges` as its source ranges, and `pod` as its endpoint.
fn load_balancer(
    name: &str,
    protocol: &str,
    (cluster_ip, ingress, node_port): (Ipv4Addr, Ipv4Addr, u16),
    ranges: &[String],
    pod: SocketAddr,
) -> String {
    let (pod_ip, pod_port) = (pod.ip(), pod.port());
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  type: LoadBalancer\n  \
         clusterIP: {cluster_ip}\n  loadBalancerSourceRanges: [{}]\n  ports: [{{port: 80, \
         targetPort: {pod_port}, nodePort: {node_port}, protocol: {protocol}}}]\nstatus:\n  loadBalancer:\n    \
         ingress: [{{ip: {ingress}}}]\n---\napiVersion: v1\nkind: Endpoints\nmetadata: {{name: {name}}}\n\
         subsets:\n- addresses: [{{ip: {pod_ip}}}]\n  ports: [{{port: {pod_port}, protocol: {protocol}}}]\n",
        ranges.join(", ")
    )
}

fn is_reset<T>(result: io::Result<T>) -> bool {
    matches!(result, Err(e) if e.kind() == io::ErrorKind::ConnectionReset)
}

fn rejected(name: &str) -> String {
    format!(
        "svcproxy_rejected_connections_total{{namespace=\"default\",service=\"{name}\",port=\"80\",\
         reason=\"source_range\"}}"
    )
}

#[test]
fn an_ingress_ip_serves_clients_inside_the_ranges_and_resets_the_others() {
    let pod = Endpoint::name(fresh_ip(), "pod");
    let frontends = (fresh_ip(), fresh_ip(), fresh_node_port());
    let (cluster_ip, ingress, node_port) = frontends;
    let (inside, outside, node_ip) = (fresh_ip(), fresh_ip(), fresh_ip());
    let ranges = [format!("{inside}/32"), "fd00::/8".to_owned()];
    let yaml = load_balancer("lb", "TCP", frontends, &ranges, pod.addr);
    let via = addr(ingress, 80);
    let (mut proxy, _) = Proxy::serving(&yaml, &[], || fetch_from(inside, via));
    assert!(is_reset(fetch_from(outside, via)), "a client outside the ranges was served");
    // The ClusterIP and the NodePort are not filtered.
    for other in [addr(cluster_ip, 80), addr(node_ip, node_port)] {
        assert_eq!(fetch_from(outside, other).unwrap(), "pod", "through {other}");
    }
    assert_eq!(proxy.metric(&rejected("lb")), 1.0);
    // /debug/routes shows the ranges on the ingress frontend only.
    let routes = routes(&proxy.admin());
    let shown = |frontend: SocketAddr| {
        let all = routes["frontends"].as_array().unwrap().iter();
        let found = all.clone().find(|f| f["frontend"] == format!("{frontend}/TCP"));
        found.unwrap_or_else(|| panic!("{frontend} not in {routes}"))["loadBalancerSourceRanges"]
            .clone()
    };
    assert_eq!(shown(via), serde_json::json!([format!("{inside}/32"), "fd00::/8"]));
    assert_eq!(shown(addr(cluster_ip, 80)), serde_json::Value::Null);
    let accepted = pod.accepted();

    // Edited: the next connections follow the new ranges.
    let yaml = load_balancer("lb", "TCP", frontends, &[format!("{outside}/32")], pod.addr);
    write_by_rename(&proxy.manifest(), &yaml);
    eventually("the new ranges applied", Duration::from_secs(10), || fetch_from(outside, via));
    assert!(is_reset(fetch_from(inside, via)), "a client the edit left out was served");
    assert!(pod.accepted() > accepted);
    assert!(proxy.metric(&rejected("lb")) >= 2.0);
}

#[test]
fn a_udp_ingress_ip_drops_datagrams_from_outside_the_ranges() {
    let pod = UdpPod::start(fresh_ip(), 8080, "echo");
    let frontends = (fresh_ip(), fresh_ip(), fresh_node_port());
    let (cluster_ip, ingress, _) = frontends;
    let (inside, outside) = (fresh_ip(), fresh_ip());
    let yaml = load_balancer("dns-lb", "UDP", frontends, &[format!("{inside}/32")], pod.addr);
    let client = |ip: Ipv4Addr| {
        let socket = std::net::UdpSocket::bind(addr(ip, 0)).unwrap();
        socket.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        socket
    };
    let (via, from_inside, from_outside) = (addr(ingress, 80), client(inside), client(outside));
    let (mut proxy, _) = Proxy::serving(&yaml, &[], || exchange(&from_inside, via, b"in"));
    assert!(exchange(&from_outside, via, b"out").is_err(), "answered outside the ranges");
    assert_eq!(exchange(&from_outside, addr(cluster_ip, 80), b"out").unwrap().0, b"out");
    let dropped = "svcproxy_udp_dropped_total{namespace=\"default\",service=\"dns-lb\",port=\"80\",\
                   reason=\"source_range\"}";
    assert_eq!(proxy.metric(dropped), 1.0);
}
