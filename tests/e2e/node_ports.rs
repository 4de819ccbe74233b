//! NodePorts: bound and released as a Service's type, ports and
//! targetPort change, and when its type alone goes back to ClusterIP;
//! allocated, when none is written, as `check` prints it; out of range or
//! colliding, rejected alone by `check` and served around by `run`, which
//! keeps the last good version.

use std::net::Ipv4Addr;

use crate::jig::{
    NODE_PORT_FLAGS, edit, free_node_port, node, servers, start, wait_refused, wait_released,
    wait_serving,
};
use crate::support;
use crate::support::endpoint::Endpoint;
use crate::support::manifests::{PORT, PodState, Svc, pod_of, pod_with};
use crate::support::net::{self, addr, fresh_ip};

/// "should be able to change the type and ports of a TCP service" and
/// "should release NodePorts on delete": ClusterIP → NodePort (the
/// NodePort listener appears) → another nodePort (the first released) →
/// another port → another targetPort → ClusterIP (the NodePort released).
#[test]
fn type_and_ports_changes_bind_and_release_node_ports() {
    let (ip, np1, np2) = (fresh_ip(), free_node_port(), free_node_port());
    // One pod whose container names two ports: `first` (server a) and
    // `second` (server b), both on the pod's address.
    let pod_ip = fresh_ip();
    let (a, b) = (Endpoint::name(pod_ip, "a"), Endpoint::name(pod_ip, "b"));
    let pod = pod_with(
        "mutable-0",
        "mutable",
        pod_ip,
        &[("first", a.port()), ("second", b.port())],
        &[],
        PodState::Ready,
    );
    let base =
        |port: u16, target: &str| Svc::new("mutable", ip).ports(&[("tcp", port, target, None)]);
    let mut proxy = start(&(base(80, "first").yaml() + &pod), &NODE_PORT_FLAGS);
    wait_serving(addr(ip, 80), &["a"]);
    assert!(net::refuses(node(np1)), "a ClusterIP Service has no NodePort");

    let as_node_port = |port: u16, target: &str, np: u16| {
        base(port, target).kind("NodePort").node_port(np).yaml() + &pod
    };
    edit(&mut proxy, &as_node_port(80, "first", np1));
    wait_serving(node(np1), &["a"]);
    wait_serving(addr(ip, 80), &["a"]);
    edit(&mut proxy, &as_node_port(80, "first", np2));
    wait_serving(node(np2), &["a"]);
    wait_refused(node(np1));
    wait_released(node(np1));
    edit(&mut proxy, &as_node_port(81, "first", np2));
    wait_serving(addr(ip, 81), &["a"]);
    wait_refused(addr(ip, 80));
    wait_serving(node(np2), &["a"]);
    edit(&mut proxy, &as_node_port(81, "second", np2));
    wait_serving(addr(ip, 81), &["b"]);
    wait_serving(node(np2), &["b"]);
    edit(&mut proxy, &(base(81, "second").yaml() + &pod));
    wait_serving(addr(ip, 81), &["b"]);
    wait_refused(node(np2));
    wait_released(node(np2));
}

/// The e2e test changes a NodePort Service back with
/// `s.Spec.Type = ClusterIP` alone and expects the nodePort cleared and
/// the NodePort closed: on an update the API server wipes nodePorts the
/// new type does not need when the user left them as they were
/// (`dropTypeDependentFields`). Here the manifest is edited the same way:
/// only `type` changes.
#[test]
fn type_changed_back_to_cluster_ip_alone_releases_the_node_port() {
    let (ip, node_port) = (fresh_ip(), free_node_port());
    let e = Endpoint::name(fresh_ip(), "back-1");
    let pods = pod_of("back-1", "back", &e, PodState::Ready);
    let svc = Svc::new("back", ip).kind("NodePort").node_port(node_port);
    let mut proxy = start(&(svc.clone().yaml() + &pods), &NODE_PORT_FLAGS);
    wait_serving(node(node_port), &["back-1"]);

    let cluster_ip = svc.kind("ClusterIP").yaml() + &pods;
    edit(&mut proxy, &cluster_ip);
    wait_refused(node(node_port));
    wait_serving(addr(ip, PORT), &["back-1"]);
    // Taken as the API server takes the update: no error, no last-good.
    assert_eq!(proxy.metric("svcproxy_config_invalid_objects"), 0.0);

    // Later rebuilds keep reading the file's leftover nodePort as dropped:
    // another Service added beside it is served, and this one stays as it was.
    let (other_ip, other) = (fresh_ip(), Endpoint::name(fresh_ip(), "other-1"));
    let others = pod_of("other-1", "other", &other, PodState::Ready);
    edit(&mut proxy, &(cluster_ip + &Svc::new("other", other_ip).yaml() + &others));
    wait_serving(addr(other_ip, PORT), &["other-1"]);
    wait_serving(addr(ip, PORT), &["back-1"]);
    wait_refused(node(node_port));
    assert_eq!(proxy.metric("svcproxy_config_invalid_objects"), 0.0);
}

/// ClusterIP → NodePort with no `nodePort` written: the proxy allocates
/// one (DESIGN §3: a pure function of the objects, which `check` prints)
/// and serves it on the node address.
#[test]
fn a_node_port_allocated_on_a_type_change_is_the_one_check_prints() {
    let ip = fresh_ip();
    let [_, _, c, d] = ip.octets();
    let name = format!("alloc-{c}-{d}");
    let e = Endpoint::name(fresh_ip(), "alloc-1");
    let pods = pod_of("alloc-1", &name, &e, PodState::Ready);
    let svc = Svc::new(&name, ip);
    let mut proxy = start(&(svc.clone().yaml() + &pods), &NODE_PORT_FLAGS);
    wait_serving(addr(ip, PORT), &["alloc-1"]);

    edit(&mut proxy, &(svc.kind("NodePort").yaml() + &pods));
    let out = support::check([proxy.manifest()]);
    assert_eq!(out.code(), Some(0), "{out}");
    let ports = out.table().row("default", &name).ports.clone();
    let (port, node_port, _) = support::parse_port(&ports).expect("PORT(S) cell");
    assert_eq!(port, PORT, "{out}");
    let node_port = node_port.unwrap_or_else(|| panic!("no NodePort allocated: {ports}"));
    assert!((30_000..=32_767).contains(&node_port), "{ports}");
    wait_serving(node(node_port), &["alloc-1"]);
}

/// "should check NodePort out of range" and "should prevent NodePort
/// collisions", on `check`: each bad Service is rejected alone with its
/// field path, the others are listed, the exit code is 1.
#[test]
fn check_rejects_out_of_range_and_colliding_node_ports_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("services.yaml");
    let ips = [1, 2, 3, 4].map(|d| Ipv4Addr::new(127, 99, 0, d));
    let yaml = collision_manifests(ips, [30_500, 30_500, 40_000]);
    std::fs::write(&path, &yaml).unwrap();
    let out = support::check([&path]);
    out.assert_no_panic();
    assert_eq!(out.code(), Some(1), "{out}");
    let errors = out.error_lines();
    // Each error names the line of the offending `nodePort` (1-based): the
    // second `nodePort: 30500` and the `nodePort: 40000`.
    let lines: Vec<usize> = yaml
        .lines()
        .enumerate()
        .filter(|(_, l)| l.trim_start().starts_with("nodePort: "))
        .map(|(i, _)| i + 1)
        .collect();
    let expect = [
        (lines[1], "nodeport-collision-2", 30_500, "provided port is already allocated"),
        (
            lines[2],
            "nodeport-range-test",
            40_000,
            "provided port is not in the valid range. The range of valid ports is 30000-32767",
        ),
    ];
    for (line, name, value, why) in expect {
        let want = format!(
            "{}:{line}: default/{name}: spec.ports[0].nodePort: Invalid value: {value}: {why}",
            path.display()
        );
        assert!(errors.contains(&want.as_str()), "no error line `{want}`\n{out}");
    }
    assert_eq!(errors.len(), 2, "one error per bad Service\n{out}");
    let table = out.table();
    assert_eq!(table.keys(), ["default/nodeport-collision-1", "default/plain-ok"], "{out}");
    assert_eq!(table.row("default", "nodeport-collision-1").ports, "8080:30500/TCP");
}

/// The Services of the NodePort validation tests: NodePort Services
/// `nodeport-collision-1`, `-2` and `nodeport-range-test` at `ips[0..3]`
/// with `node_ports`, and `plain-ok` at `ips[3]`; each selects the Pods
/// `app: NAME`.
fn collision_manifests(ips: [Ipv4Addr; 4], node_ports: [u16; 3]) -> String {
    let names = ["nodeport-collision-1", "nodeport-collision-2", "nodeport-range-test"];
    let mut yaml: String = names
        .iter()
        .zip(ips)
        .zip(node_ports)
        .map(|((name, ip), np)| Svc::new(name, ip).kind("NodePort").node_port(np).yaml())
        .collect();
    yaml.push_str(&Svc::new("plain-ok", ips[3]).yaml());
    yaml
}

/// The same, served: each bad Service is left out alone (its ClusterIP is
/// not served either), the others serve; a served Service edited to an
/// out-of-range nodePort keeps its last good version (the API server
/// refuses the update); once the holder of a NodePort is deleted, the
/// Service that collided with it gets it ("should prevent NodePort
/// collisions" creates it again then).
#[test]
fn run_serves_around_bad_node_ports_and_keeps_the_last_good_one() {
    let ips = [fresh_ip(), fresh_ip(), fresh_ip(), fresh_ip()];
    let (np, np_other) = (free_node_port(), free_node_port());
    let names = ["nodeport-collision-1", "nodeport-collision-2", "nodeport-range-test", "plain-ok"];
    let eps = servers(&names);
    let pods: String =
        names.iter().zip(&eps).map(|(n, e)| pod_of(n, n, e, PodState::Ready)).collect();
    let manifests = |nps: [u16; 3]| collision_manifests(ips, nps) + &pods;
    let mut proxy = start(&manifests([np, np, 40_000]), &NODE_PORT_FLAGS);
    wait_serving(node(np), &["nodeport-collision-1"]);
    wait_serving(addr(ips[0], PORT), &["nodeport-collision-1"]);
    wait_serving(addr(ips[3], PORT), &["plain-ok"]);
    assert!(net::refuses(addr(ips[1], PORT)), "the colliding Service is served");
    assert!(net::refuses(addr(ips[2], PORT)), "the out-of-range Service is served");
    assert!(proxy.metric("svcproxy_config_invalid_objects") >= 2.0);

    // An update to an out-of-range nodePort is refused: the last good
    // version stays in service, on its NodePort.
    edit(&mut proxy, &manifests([40_001, np, np_other]));
    wait_serving(node(np_other), &["nodeport-range-test"]);
    wait_serving(node(np), &["nodeport-collision-1"]);
    assert!(net::refuses(addr(ips[1], PORT)), "the colliding Service is served");

    // The holder deleted: the NodePort is free for the other one.
    let without_holder = manifests([40_001, np, np_other])
        .split("---\n")
        .filter(|doc| !doc.contains("name: nodeport-collision-1\n  namespace"))
        .collect::<Vec<_>>()
        .join("---\n");
    edit(&mut proxy, &without_holder);
    wait_serving(node(np), &["nodeport-collision-2"]);
    wait_refused(addr(ips[0], PORT));
}
