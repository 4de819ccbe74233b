//! Frontends that come and go with edits: Services deleted and created
//! again (at the same ClusterIP or another), ports added and deleted, an
//! ExternalName Service made ClusterIP and back, externalIPs and
//! LoadBalancer ingress IPs (never a Proxy-mode one), the labels that take
//! a Service away from kube-proxy and `--service-proxy-name`, and a
//! restarted proxy serving the same frontends again.

use std::net::Ipv4Addr;

use crate::jig::{
    NODE_PORT_FLAGS, edit, free_node_port, node, servers, start, wait_refused, wait_serving,
};
use crate::support::endpoint::Endpoint;
use crate::support::manifests::{PORT, PodState, Svc, pod_of, pod_with, ready_pods};
use crate::support::net::{self, addr, fresh_ip};

/// "should be able to up and down services" and "should work after the
/// service has been recreated": a Service deleted stops being served while
/// its neighbour keeps serving; a third one comes up; the first, created
/// again at the same ClusterIP and then at another one, serves again.
#[test]
fn services_deleted_and_recreated_at_the_same_and_another_cluster_ip_serve() {
    let (ip1, ip2, ip3, ip1b) = (fresh_ip(), fresh_ip(), fresh_ip(), fresh_ip());
    let eps = servers(&["s1", "s2", "s3"]);
    let service = |name: &str, ip: Ipv4Addr, e: &Endpoint| {
        Svc::new(name, ip).yaml() + &pod_of(name, name, e, PodState::Ready)
    };
    let (s1, s2, s3) = (
        service("service1", ip1, &eps[0]),
        service("service2", ip2, &eps[1]),
        service("service3", ip3, &eps[2]),
    );
    let mut proxy = start(&(s1.clone() + &s2), &[]);
    wait_serving(addr(ip1, PORT), &["s1"]);
    wait_serving(addr(ip2, PORT), &["s2"]);

    edit(&mut proxy, &s2);
    wait_refused(addr(ip1, PORT));
    wait_serving(addr(ip2, PORT), &["s2"]);
    edit(&mut proxy, &(s2.clone() + &s3));
    wait_serving(addr(ip3, PORT), &["s3"]);
    wait_serving(addr(ip2, PORT), &["s2"]);
    edit(&mut proxy, &(s1.clone() + &s2 + &s3));
    wait_serving(addr(ip1, PORT), &["s1"]);
    // Deleted, then created again with another ClusterIP.
    edit(&mut proxy, &(s2.clone() + &s3));
    wait_refused(addr(ip1, PORT));
    edit(&mut proxy, &(service("service1", ip1b, &eps[0]) + &s2 + &s3));
    wait_serving(addr(ip1b, PORT), &["s1"]);
    wait_refused(addr(ip1, PORT));
    wait_serving(addr(ip2, PORT), &["s2"]);
}

/// "should be updated after adding or deleting ports": a second port
/// added is served; the first deleted is no longer listened on.
#[test]
fn ports_added_and_deleted_are_served_and_released() {
    let ip = fresh_ip();
    let pod_ip = fresh_ip();
    let (a, b) = (Endpoint::name(pod_ip, "port-a"), Endpoint::name(pod_ip, "port-b"));
    let pod = pod_with(
        "ports-0",
        "ports",
        pod_ip,
        &[("tcp-a", a.port()), ("tcp-b", b.port())],
        &[],
        PodState::Ready,
    );
    let svc =
        |ports: &[(&str, u16, &str, Option<u16>)]| Svc::new("ports", ip).ports(ports).yaml() + &pod;
    let mut proxy = start(&svc(&[("a", 80, "tcp-a", None)]), &[]);
    wait_serving(addr(ip, 80), &["port-a"]);
    assert!(net::refuses(addr(ip, 81)));

    edit(&mut proxy, &svc(&[("a", 80, "tcp-a", None), ("b", 81, "tcp-b", None)]));
    wait_serving(addr(ip, 81), &["port-b"]);
    wait_serving(addr(ip, 80), &["port-a"]);
    edit(&mut proxy, &svc(&[("b", 81, "tcp-b", None)]));
    wait_refused(addr(ip, 80));
    wait_serving(addr(ip, 81), &["port-b"]);
}

/// "should be able to change the type from ExternalName to ClusterIP" and
/// back: an ExternalName Service is a DNS alias with no frontend; made a
/// ClusterIP Service it is served; made an ExternalName again it is not.
#[test]
fn external_name_to_cluster_ip_and_back() {
    let ip = fresh_ip();
    let e = Endpoint::name(fresh_ip(), "en-1");
    let pods = pod_of("en-1", "extname", &e, PodState::Ready);
    let mut alias = Svc::new("extname", ip).kind("ExternalName");
    alias.cluster_ip = None;
    alias.ports.clear();
    let alias = alias.spec("  externalName: foo.example.com\n").yaml() + &pods;
    let mut proxy = start(&alias, &[]);
    let frontend = addr(ip, PORT);
    wait_refused(frontend);

    edit(&mut proxy, &(Svc::new("extname", ip).yaml() + &pods));
    wait_serving(frontend, &["en-1"]);
    edit(&mut proxy, &alias);
    wait_refused(frontend);
}

/// externalIPs and `status.loadBalancer.ingress[].ip` added by an edit are
/// served, and released when removed.
#[test]
fn external_ips_and_load_balancer_ingress_ips_follow_edits() {
    let (ip, external, ingress, node_port) = (fresh_ip(), fresh_ip(), fresh_ip(), free_node_port());
    let e = Endpoint::name(fresh_ip(), "lb-1");
    let pods = pod_of("lb-1", "lb", &e, PodState::Ready);
    let bare = Svc::new("lb", ip).kind("LoadBalancer").node_port(node_port);
    let full = bare
        .clone()
        .spec(&format!("  externalIPs:\n    - {external}\n"))
        .status(&format!("  loadBalancer:\n    ingress:\n      - ip: {ingress}\n"));
    let mut proxy = start(&(bare.yaml() + &pods), &NODE_PORT_FLAGS);
    wait_serving(node(node_port), &["lb-1"]);
    assert!(net::refuses(addr(external, PORT)));
    assert!(net::refuses(addr(ingress, PORT)));

    edit(&mut proxy, &(full.yaml() + &pods));
    wait_serving(addr(external, PORT), &["lb-1"]);
    wait_serving(addr(ingress, PORT), &["lb-1"]);
    wait_serving(addr(ip, PORT), &["lb-1"]);
    edit(&mut proxy, &(bare.yaml() + &pods));
    wait_refused(addr(external, PORT));
    wait_refused(addr(ingress, PORT));
    wait_serving(node(node_port), &["lb-1"]);
}

/// A LoadBalancer ingress with `ipMode: Proxy` is the load balancer's own
/// address, not a VIP delivered to the node: kube-proxy does not capture
/// it (only VIP-mode ingress IPs are served), so the node must not listen
/// on it.
#[test]
fn a_proxy_mode_load_balancer_ingress_ip_is_not_captured() {
    let (ip, vip, proxied) = (fresh_ip(), fresh_ip(), fresh_ip());
    let e = Endpoint::name(fresh_ip(), "ipmode");
    let svc = Svc::new("ipmode", ip).kind("LoadBalancer").status(&format!(
        "  loadBalancer:\n    ingress:\n      - ip: {vip}\n        ipMode: VIP\n      \
         - ip: {proxied}\n        ipMode: Proxy\n"
    ));
    let yaml = svc.spec("  allocateLoadBalancerNodePorts: false\n").yaml()
        + &pod_of("ipmode", "ipmode", &e, PodState::Ready);
    let _proxy = start(&yaml, &[]);
    wait_serving(addr(vip, PORT), &["ipmode"]);
    assert!(net::refuses(addr(proxied, PORT)), "the Proxy-mode ingress IP {proxied} is served");
}

/// "should implement service.kubernetes.io/service-proxy-name" and
/// "should implement service.kubernetes.io/headless": the label added,
/// the Service is no longer served (its neighbour is); removed, it is
/// served again.
#[test]
fn proxy_name_and_headless_labels_added_stop_serving_and_removed_serve_again() {
    let (ip, other_ip) = (fresh_ip(), fresh_ip());
    let (a, b) = (Endpoint::name(fresh_ip(), "labelled"), Endpoint::name(fresh_ip(), "plain"));
    let pods = pod_of("labelled", "labelled", &a, PodState::Ready)
        + &pod_of("plain", "plain", &b, PodState::Ready);
    let plain = Svc::new("plain", other_ip).yaml();
    let labelled = |label: Option<(&str, &str)>| {
        let svc = Svc::new("labelled", ip);
        let svc = match label {
            Some((k, v)) => svc.label(k, v),
            None => svc,
        };
        svc.yaml() + &plain + &pods
    };
    let (frontend, other) = (addr(ip, PORT), addr(other_ip, PORT));
    let mut proxy = start(&labelled(None), &[]);
    wait_serving(frontend, &["labelled"]);

    for label in [
        ("service.kubernetes.io/service-proxy-name", "foo-bar"),
        ("service.kubernetes.io/headless", ""),
    ] {
        edit(&mut proxy, &labelled(Some(label)));
        wait_refused(frontend);
        wait_serving(other, &["plain"]);
        edit(&mut proxy, &labelled(None));
        wait_serving(frontend, &["labelled"]);
    }
}

/// `--service-proxy-name NAME` (DESIGN §2): only Services labelled with
/// that name are served.
#[test]
fn service_proxy_name_flag_serves_only_services_labelled_with_it() {
    let (mine, theirs, unlabelled) = (fresh_ip(), fresh_ip(), fresh_ip());
    let eps = servers(&["mine", "theirs", "unlabelled"]);
    let label = "service.kubernetes.io/service-proxy-name";
    let yaml = Svc::new("mine", mine).label(label, "svcproxy-e2e").yaml()
        + &Svc::new("theirs", theirs).label(label, "other").yaml()
        + &Svc::new("unlabelled", unlabelled).yaml()
        + &pod_of("mine", "mine", &eps[0], PodState::Ready)
        + &pod_of("theirs", "theirs", &eps[1], PodState::Ready)
        + &pod_of("unlabelled", "unlabelled", &eps[2], PodState::Ready);
    let _proxy = start(&yaml, &["--service-proxy-name", "svcproxy-e2e"]);
    wait_serving(addr(mine, PORT), &["mine"]);
    assert!(net::refuses(addr(theirs, PORT)), "a Service of another proxy is served");
    assert!(net::refuses(addr(unlabelled, PORT)), "an unlabelled Service is served");
}

/// "should work after restarting kube-proxy": a new proxy process on the
/// same manifests serves the same ClusterIP and NodePort again at once,
/// though the first one's connections left TIME_WAIT sockets on them.
#[test]
fn a_restarted_proxy_serves_the_same_frontends_again() {
    let (ip, node_port) = (fresh_ip(), free_node_port());
    let eps = servers(&["restart-1", "restart-2"]);
    let yaml = Svc::new("restart", ip).kind("NodePort").node_port(node_port).yaml()
        + &ready_pods("restart", &[("restart-1", &eps[0]), ("restart-2", &eps[1])]);
    let (cluster, np) = (addr(ip, PORT), node(node_port));
    let first = start(&yaml, &NODE_PORT_FLAGS);
    wait_serving(cluster, &["restart-1", "restart-2"]);
    wait_serving(np, &["restart-1", "restart-2"]);
    drop(first);
    wait_refused(cluster);

    let _second = start(&yaml, &NODE_PORT_FLAGS);
    wait_serving(cluster, &["restart-1", "restart-2"]);
    wait_serving(np, &["restart-1", "restart-2"]);
}
