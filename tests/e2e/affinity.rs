//! `sessionAffinity: ClientIP`: every connection of a client address
//! reaches one endpoint, on the ClusterIP and the NodePort alike; switched
//! off and on by editing that field alone; expired after `timeoutSeconds`
//! without a connection, a lowered timeout applying to clients already
//! pinned.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::thread;
use std::time::{Duration, Instant};

use crate::jig::{APPLY, NODE_PORT_FLAGS, Seen, edit, free_node_port, look, node, see_from, start};
use crate::support::endpoint::Endpoint;
use crate::support::manifests::{PORT, PodState, Svc, pod_of};
use crate::support::net::{addr, eventually, fresh_ip};

/// ClientIP affinity with `timeoutSeconds` (none: the default).
fn affinity(timeout: Option<u32>) -> String {
    match timeout {
        None => "  sessionAffinity: ClientIP\n".to_owned(),
        Some(s) => format!(
            "  sessionAffinity: ClientIP\n  sessionAffinityConfig:\n    clientIP:\n      \
             timeoutSeconds: {s}\n"
        ),
    }
}

/// The endpoint each client reaches on one connection each.
fn picks(clients: &[Ipv4Addr], to: SocketAddr) -> Vec<Seen> {
    clients.iter().map(|&c| see_from(c, to)).collect()
}

/// Waits until `to` serves some endpoint; its name.
fn wait_any(to: SocketAddr) -> String {
    eventually(&format!("{to} serving"), APPLY, || match look(None, to)? {
        Seen::Name(name) => Ok(name),
        Seen::Rejected => Err("rejected".to_owned()),
    })
}

/// Four client addresses (not a multiple of three endpoints).
fn clients() -> Vec<Ipv4Addr> {
    (0..4).map(|_| fresh_ip()).collect()
}

/// Three name servers `{app}-1..3` and their ready Pods.
fn three(app: &str) -> (Vec<Endpoint>, String) {
    let names: Vec<String> = (1..=3).map(|i| format!("{app}-{i}")).collect();
    let eps: Vec<Endpoint> = names.iter().map(|n| Endpoint::name(fresh_ip(), n)).collect();
    let pods = names.iter().zip(&eps).map(|(n, e)| pod_of(n, app, e, PodState::Ready)).collect();
    (eps, pods)
}

/// Fails unless each client reached one endpoint on all `rounds`
/// connections; the endpoint of each.
fn assert_pinned(clients: &[Ipv4Addr], to: SocketAddr, rounds: usize) -> Vec<Seen> {
    let first = picks(clients, to);
    assert!(first.iter().all(|s| matches!(s, Seen::Name(_))), "{to}: {first:?}");
    for round in 1..rounds {
        assert_eq!(picks(clients, to), first, "{to}, round {round}: affinity should hold");
    }
    first
}

/// "should have session affinity work for service with type clusterIP"
/// and "... NodePort": every connection of one client IP reaches one
/// endpoint, on the ClusterIP and on the NodePort.
#[test]
fn client_ip_affinity_pins_every_connection_of_a_client() {
    let (ip, node_port) = (fresh_ip(), free_node_port());
    let (_eps, pods) = three("affinity");
    let svc = Svc::new("affinity", ip).kind("NodePort").node_port(node_port).spec(&affinity(None));
    let _proxy = start(&(svc.yaml() + &pods), &NODE_PORT_FLAGS);
    let (cluster, np) = (addr(ip, PORT), node(node_port));
    wait_any(cluster);
    wait_any(np);

    let clients = clients();
    let pinned = assert_pinned(&clients, cluster, 10);
    let distinct: BTreeSet<&Seen> = pinned.iter().collect();
    assert!(distinct.len() > 1, "4 new clients should be spread: {pinned:?}");
    // One pin per client and ServicePort, whichever frontend it came in by.
    assert_eq!(assert_pinned(&clients, np, 10), pinned, "the NodePort shares the pins");
}

/// "should be able to switch session affinity for service with type
/// clusterIP": only `sessionAffinity` is edited; None spreads one client
/// over every endpoint, ClientIP pins it again.
#[test]
fn switching_session_affinity_off_and_on_by_editing_only_that_field() {
    let ip = fresh_ip();
    let (_eps, pods) = three("switch");
    let svc = Svc::new("switch", ip);
    let frontend = addr(ip, PORT);
    let mut proxy = start(&(svc.clone().spec(&affinity(None)).yaml() + &pods), &[]);
    wait_any(frontend);
    let clients = clients();
    assert_pinned(&clients, frontend, 5);

    edit(&mut proxy, &(svc.clone().spec("  sessionAffinity: None\n").yaml() + &pods));
    let client = clients[0];
    let spread: BTreeSet<Seen> = (0..9).map(|_| see_from(client, frontend)).collect();
    assert_eq!(spread.len(), 3, "without affinity one client should reach every endpoint");

    edit(&mut proxy, &(svc.clone().spec(&affinity(None)).yaml() + &pods));
    assert_pinned(&clients, frontend, 5);
}

/// "should have session affinity timeout work for service with type
/// clusterIP": after `timeoutSeconds` without a connection a client is
/// balanced afresh, then pinned again.
#[test]
fn session_affinity_timeout_expires_and_round_robin_resumes() {
    let ip = fresh_ip();
    let (_eps, pods) = three("timeout");
    let svc = Svc::new("timeout", ip).spec(&affinity(Some(2)));
    let frontend = addr(ip, PORT);
    let _proxy = start(&(svc.yaml() + &pods), &[]);
    wait_any(frontend);
    let clients = clients();
    // 4 connections: round robin moves on by 1 (mod 3) for the next picks.
    let pinned = picks(&clients, frontend);
    wait_expired(&clients, frontend, &pinned);
}

/// Idles past a 2 s timeout, then checks the clients are balanced afresh:
/// `pinned` took 4 connections, so round robin now stands one place
/// further on (mod 3) and every client that is balanced again moves.
fn wait_expired(clients: &[Ipv4Addr], to: SocketAddr, pinned: &[Seen]) {
    let idle = Instant::now();
    while idle.elapsed() < Duration::from_millis(3_200) {
        thread::sleep(Duration::from_millis(100));
    }
    let after = picks(clients, to);
    assert!(
        after.iter().zip(pinned).all(|(a, p)| a != p),
        "after 3 s idle with timeoutSeconds 2 every client should be balanced afresh: \
         before {pinned:?}, after {after:?}"
    );
    assert_eq!(picks(clients, to), after, "the fresh picks should be pinned again");
}

/// A timeout lowered by an edit applies to clients already pinned: they
/// are pinned "until `timeoutSeconds` without a new connection" (DESIGN
/// §3), the Service's timeout now, as kube-proxy's `recent` match reads
/// the rule's current `--seconds`.
#[test]
fn a_lowered_affinity_timeout_applies_to_clients_already_pinned() {
    let ip = fresh_ip();
    let (_eps, pods) = three("lowered");
    let svc = Svc::new("lowered", ip);
    let frontend = addr(ip, PORT);
    let mut proxy = start(&(svc.clone().spec(&affinity(None)).yaml() + &pods), &[]);
    wait_any(frontend);
    let clients = clients();
    let pinned = picks(&clients, frontend);

    edit(&mut proxy, &(svc.spec(&affinity(Some(2))).yaml() + &pods));
    wait_expired(&clients, frontend, &pinned);
}
