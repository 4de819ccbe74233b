use super::Topology;
use std::net::SocketAddr;

use crate::model::tests::model;

fn addrs(text: &str) -> Vec<Vec<String>> {
    let m = model(text);
    assert!(m.errors.is_empty(), "{:?}", m.errors);
    let r = &m.services[0];
    r.endpoints
        .iter()
        .map(|endpoints| {
            super::usable(endpoints, None, &Topology::Any).map(|e| e.addr.to_string()).collect()
        })
        .collect()
}

const SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports:\n  - {name: http, port: 80, targetPort: web}\n  - {name: admin, port: 81, targetPort: 9000}\n";

fn pod(name: &str, ip: &str, extra: &str) -> String {
    format!(
        "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, labels: {{app: web}}}}\n\
         spec:\n  nodeName: node-a\n  containers:\n  - name: c\n    image: x\n    ports: [{{name: web, containerPort: 8080}}]\n\
         status:\n  podIP: {ip}\n  phase: Running\n{extra}"
    )
}

#[test]
fn pods_matching_the_selector_resolve_named_target_ports_per_pod() {
    let other = "---\napiVersion: v1\nkind: Pod\nmetadata: {name: db, labels: {app: db}}\nspec: {containers: [{name: c, image: x}]}\nstatus: {podIP: 127.0.9.9, phase: Running}\n";
    let text =
        format!("{SERVICE}{}{}{other}", pod("a", "127.0.1.2", ""), pod("b", "127.0.1.1", ""));
    assert_eq!(
        addrs(&text),
        [vec!["127.0.1.1:8080", "127.0.1.2:8080"], vec!["127.0.1.1:9000", "127.0.1.2:9000"]]
    );
}

#[test]
fn a_pod_without_ip_or_with_a_false_ready_condition_is_not_used() {
    let not_ready = "  conditions: [{type: Ready, status: 'False'}]\n";
    let no_ip = "---\napiVersion: v1\nkind: Pod\nmetadata: {name: c, labels: {app: web}}\nspec: {containers: [{name: c, image: x}]}\n";
    let text = format!(
        "{SERVICE}{}{}{no_ip}",
        pod("a", "127.0.1.1", ""),
        pod("b", "127.0.1.2", not_ready)
    );
    assert_eq!(addrs(&text)[0], ["127.0.1.1:8080"]);
}

#[test]
fn endpoint_slices_win_over_endpoints_and_pods_and_are_merged() {
    let slice = |name: &str, ips: &str| {
        format!(
            "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
             metadata: {{name: {name}, labels: {{kubernetes.io/service-name: web}}}}\naddressType: IPv4\n\
             ports: [{{name: http, port: 8080}}, {{name: admin, port: 9000}}]\nendpoints:\n{ips}"
        )
    };
    let endpoints = "---\napiVersion: v1\nkind: Endpoints\nmetadata: {name: web}\nsubsets:\n- addresses: [{ip: 127.0.5.5}]\n  ports: [{name: http, port: 1}]\n";
    let text = format!(
        "{SERVICE}{}{}{}{endpoints}",
        pod("p", "127.0.9.9", ""),
        slice(
            "web-1",
            "- addresses: [127.0.1.1]\n- addresses: [127.0.1.2]\n  conditions: {ready: false}\n"
        ),
        slice("web-2", "- addresses: [127.0.1.3]\n- addresses: [127.0.1.2]\n"),
    );
    assert_eq!(addrs(&text)[0], ["127.0.1.1:8080", "127.0.1.2:8080", "127.0.1.3:8080"]);
}

#[test]
fn endpoints_objects_are_used_without_slices() {
    let endpoints = "---\napiVersion: v1\nkind: Endpoints\nmetadata: {name: web}\nsubsets:\n\
        - addresses: [{ip: 127.0.5.5}]\n  notReadyAddresses: [{ip: 127.0.5.6}]\n  ports: [{name: http, port: 7000}, {name: admin, port: 7001}]\n\
        - addresses: [{ip: 127.0.5.7}]\n  ports: [{name: http, port: 7002}]\n";
    let text = format!("{SERVICE}{endpoints}");
    assert_eq!(addrs(&text), [vec!["127.0.5.5:7000", "127.0.5.7:7002"], vec!["127.0.5.5:7001"]]);
}

#[test]
fn terminating_serving_endpoints_are_a_fallback_only() {
    let slice = |conditions: &str| {
        format!(
            "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
             metadata: {{name: s, labels: {{kubernetes.io/service-name: web}}}}\naddressType: IPv4\n\
             ports: [{{name: http, port: 80}}, {{name: admin, port: 81}}]\nendpoints:\n\
             - addresses: [127.0.1.1]\n  conditions: {{ready: false, serving: true, terminating: true}}\n\
             - addresses: [127.0.1.2]\n  conditions: {{ready: false, serving: false, terminating: true}}\n{conditions}"
        )
    };
    assert_eq!(addrs(&format!("{SERVICE}{}", slice("")))[0], ["127.0.1.1:80"]);
    let ready = "- addresses: [127.0.1.3]\n";
    assert_eq!(addrs(&format!("{SERVICE}{}", slice(ready)))[0], ["127.0.1.3:80"]);
}

#[test]
fn publish_not_ready_addresses_uses_not_ready_pods() {
    let service = SERVICE.replace("spec:\n", "spec:\n  publishNotReadyAddresses: true\n");
    let not_ready = "  conditions: [{type: Ready, status: 'False'}]\n";
    let text = format!("{service}{}", pod("a", "127.0.1.1", not_ready));
    assert_eq!(addrs(&text)[0], ["127.0.1.1:8080"]);
}

#[test]
fn local_traffic_policy_keeps_this_nodes_endpoints() {
    let m = model(&format!("{SERVICE}{}", pod("a", "127.0.1.1", "")));
    let endpoints = &m.services[0].endpoints[0];
    assert_eq!(super::usable(endpoints, Some("node-a"), &Topology::Any).count(), 1);
    assert_eq!(super::usable(endpoints, Some("node-b"), &Topology::Any).count(), 0);
    let _: SocketAddr = endpoints[0].addr;
}

#[test]
fn an_endpoint_listed_twice_keeps_the_ready_listings_node_whatever_the_order() {
    let slice = |name: &str, node: &str, ready: bool| {
        format!(
            "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
             metadata: {{name: {name}, labels: {{kubernetes.io/service-name: web}}}}\n\
             addressType: IPv4\nports: [{{name: http, port: 8080}}]\nendpoints:\n\
             - addresses: [127.0.1.1]\n  nodeName: {node}\n  conditions: {{ready: {ready}}}\n"
        )
    };
    let (stale, ready) = (slice("web-1", "node-a", false), slice("web-2", "node-b", true));
    for text in [format!("{SERVICE}{stale}{ready}"), format!("{SERVICE}{ready}{stale}")] {
        let m = model(&text);
        let endpoints = &m.services[0].endpoints[0];
        assert_eq!(endpoints.len(), 1, "{endpoints:?}");
        assert!(endpoints[0].ready, "{endpoints:?}");
        assert_eq!(endpoints[0].node_name.as_deref(), Some("node-b"), "{endpoints:?}");
    }
}
