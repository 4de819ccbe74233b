//! Endpoints from Pods, as `test/e2e/network/service.go` checks them: a
//! basic endpoint following its Pods on the ClusterIP and the NodePort,
//! multiport Services with named targetPorts resolved Pod by Pod, a port
//! only a sidecar names, a Service scaled to zero and back, and an
//! endpoint reaching itself through its own Service (hairpin).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr};

use crate::jig::{
    APPLY, NODE_PORT_FLAGS, edit, free_node_port, node, servers, start, wait_rejected, wait_serving,
};
use crate::support::endpoint::Endpoint;
use crate::support::manifests::{
    Ep, PORT, PodState, Svc, ipv4, pod_of, pod_with, ready_pods, slices,
};
use crate::support::net::{self, addr, eventually, fresh_ip};

/// "should serve a basic endpoint from pods", on the ClusterIP and on the
/// NodePort of the node address: no pod, pod1, pod1+pod2, pod2, none.
#[test]
fn basic_endpoint_follows_its_pods_on_cluster_ip_and_node_port() {
    let (ip, node_port) = (fresh_ip(), free_node_port());
    let eps = servers(&["pod1", "pod2"]);
    let svc = Svc::new("endpoint-test2", ip).kind("NodePort").node_port(node_port).yaml();
    let (cluster, np) = (addr(ip, PORT), node(node_port));
    let mut proxy = start(&svc, &NODE_PORT_FLAGS);
    wait_rejected(cluster);
    wait_rejected(np);

    let pods = |list: &[(&str, &Endpoint)]| svc.clone() + &ready_pods("endpoint-test2", list);
    edit(&mut proxy, &pods(&[("pod1", &eps[0])]));
    wait_serving(cluster, &["pod1"]);
    wait_serving(np, &["pod1"]);
    edit(&mut proxy, &pods(&[("pod1", &eps[0]), ("pod2", &eps[1])]));
    wait_serving(cluster, &["pod1", "pod2"]);
    wait_serving(np, &["pod1", "pod2"]);
    edit(&mut proxy, &pods(&[("pod2", &eps[1])]));
    wait_serving(cluster, &["pod2"]);
    wait_serving(np, &["pod2"]);
    edit(&mut proxy, &pods(&[]));
    wait_rejected(cluster);
    wait_rejected(np);
}

/// "should serve multiport endpoints from pods": two ServicePorts with
/// named targetPorts `svc1` and `svc2`; pod1 names only `svc1`, pod2 only
/// `svc2`, each with a number of its own, so each ServicePort reaches only
/// the pod that names its target.
#[test]
fn multiport_named_target_ports_resolve_pod_by_pod() {
    let ip = fresh_ip();
    let (pod1, pod2) = (Endpoint::name(fresh_ip(), "pod1"), Endpoint::name(fresh_ip(), "pod2"));
    let svc = Svc::new("multi-endpoint-test", ip)
        .ports(&[("portname1", 80, "svc1", None), ("portname2", 81, "svc2", None)])
        .yaml();
    let app = "multi-endpoint-test";
    let p1 = pod_with("pod1", app, ipv4(pod1.addr), &[("svc1", pod1.port())], &[], PodState::Ready);
    let p2 = pod_with("pod2", app, ipv4(pod2.addr), &[("svc2", pod2.port())], &[], PodState::Ready);
    let (port1, port2) = (addr(ip, 80), addr(ip, 81));
    let mut proxy = start(&svc, &[]);
    wait_rejected(port1);
    wait_rejected(port2);

    edit(&mut proxy, &(svc.clone() + &p1));
    wait_serving(port1, &["pod1"]);
    wait_rejected(port2);
    edit(&mut proxy, &(svc.clone() + &p1 + &p2));
    wait_serving(port1, &["pod1"]);
    wait_serving(port2, &["pod2"]);
    edit(&mut proxy, &(svc.clone() + &p2));
    wait_rejected(port1);
    wait_serving(port2, &["pod2"]);
}

/// "should connect to the ports exposed by restartable init containers":
/// a named targetPort that only a sidecar (an init container with
/// `restartPolicy: Always`) names resolves like a container's port, as
/// the API's FindPort does.
#[test]
fn named_target_port_of_a_sidecar_container_is_served() {
    let ip = fresh_ip();
    let sidecar = Endpoint::name(fresh_ip(), "sidecar");
    let svc = Svc::new("sidecar-with-port", ip).ports(&[("web", PORT, "sidecar-web", None)]).yaml();
    let pod = pod_with(
        "pod-1",
        "sidecar-with-port",
        ipv4(sidecar.addr),
        &[],
        &[("sidecar-web", sidecar.port())],
        PodState::Ready,
    );
    let _proxy = start(&(svc + &pod), &[]);
    wait_serving(addr(ip, PORT), &["sidecar"]);
}

/// "should be able to up and down services" and "should be rejected when
/// no endpoints exist": scaled to zero, new connections are rejected at
/// once (never a hang, never a byte); scaled back up, they are served.
#[test]
fn scaled_to_zero_rejects_at_once_and_scaled_back_up_serves() {
    let ip = fresh_ip();
    let eps = servers(&["up-1", "up-2", "up-3"]);
    let svc = Svc::new("updown", ip).no_selector().yaml();
    let all: Vec<Ep<'_>> = eps.iter().map(Ep::ready).collect();
    let frontend = addr(ip, PORT);
    let mut proxy = start(&(svc.clone() + &slices("updown", &all)), &[]);
    wait_serving(frontend, &["up-1", "up-2", "up-3"]);

    edit(&mut proxy, &(svc.clone() + &slices("updown", &[])));
    wait_rejected(frontend);
    edit(&mut proxy, &(svc.clone() + &slices("updown", &all[1..2])));
    wait_serving(frontend, &["up-2"]);
    edit(&mut proxy, &(svc.clone() + &slices("updown", &all)));
    wait_serving(frontend, &["up-1", "up-2", "up-3"]);
}

/// "should allow pods to hairpin back to themselves through services": an
/// endpoint asked `hairpin` connects, from its own address, to its own
/// Service's ClusterIP, and answers with what that connection read.
#[test]
fn an_endpoint_reaches_itself_through_its_own_service() {
    let (ip, pod_ip) = (fresh_ip(), fresh_ip());
    let frontend = addr(ip, PORT);
    let server = Endpoint::spawn(pod_ip, move |mut stream| {
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while !line.ends_with(b"\n") {
            match stream.read(&mut byte) {
                Ok(1) => line.push(byte[0]),
                _ => return,
            }
        }
        let answer = match &line[..] {
            b"hairpin\n" => match hairpin(pod_ip, frontend) {
                Ok(text) => format!("via service: {text}"),
                Err(e) => format!("hairpin failed: {e}"),
            },
            _ => "netexec-hairpin".to_owned(),
        };
        let _ = stream.write_all(answer.as_bytes());
    });
    let yaml = Svc::new("hairpin-test", ip).yaml()
        + &pod_of("netexec-hairpin", "hairpin-test", &server, PodState::Ready);
    let _proxy = start(&yaml, &[]);
    eventually("hairpin Service up", APPLY, || ask(frontend, "name\n"));
    assert_eq!(ask(frontend, "name\n").unwrap(), "netexec-hairpin");
    assert_eq!(ask(frontend, "hairpin\n").unwrap(), "via service: netexec-hairpin");
}

/// The pod's side of the hairpin: from `pod_ip` to its Service.
fn hairpin(pod_ip: Ipv4Addr, frontend: SocketAddr) -> std::io::Result<String> {
    let mut stream = net::connect_from(pod_ip, frontend)?;
    stream.write_all(b"name\n")?;
    net::text(net::read_to_end(&mut stream)?)
}

/// Sends `request` to `to` and reads the answer to its end.
fn ask(to: SocketAddr, request: &str) -> Result<String, String> {
    let mut stream = net::connect(to).map_err(|e| e.to_string())?;
    stream.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
    let answer = net::read_to_end(&mut stream).map_err(|e| e.to_string())?;
    if answer.is_empty() {
        Err("no answer".to_owned())
    } else {
        net::text(answer).map_err(|e| e.to_string())
    }
}
