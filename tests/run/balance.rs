//! How `svcproxy run` spreads connections: fair round robin per
//! ServicePort, and `sessionAffinity: ClientIP` pinning a client address
//! until `timeoutSeconds` pass without a new connection from it.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::thread;
use std::time::{Duration, Instant};

use crate::support::endpoint::Endpoint;
use crate::support::manifests::{Port, pod_at, service, simple_service};
use crate::support::net::{addr, fetch, fetch_from, fresh_ip};
use crate::support::proxy::Proxy;

const PORT: u16 = 8080;

/// `count` name servers `{app}-{i}` as Pods of `app`.
fn name_pods(app: &str, count: usize) -> (Vec<Endpoint>, String) {
    let mut yaml = String::new();
    let endpoints = (1..=count)
        .map(|i| {
            let name = format!("{app}-{i}");
            let endpoint = Endpoint::name(fresh_ip(), &name);
            yaml.push_str(&pod_at(&name, app, endpoint.addr));
            endpoint
        })
        .collect();
    (endpoints, yaml)
}

#[test]
fn round_robin_is_fair_over_3000_connections() {
    let cluster_ip = fresh_ip();
    let (endpoints, pods) = name_pods("rr", 3);
    let yaml = simple_service("rr", cluster_ip, PORT, true) + &pods;
    let frontend = addr(cluster_ip, PORT);
    let (_proxy, _) = Proxy::serving(&yaml, &[], || fetch(frontend));

    let start = Instant::now();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..3_000 {
        let name = fetch(frontend).unwrap_or_else(|e| panic!("connection {i}: {e}"));
        *counts.entry(name).or_default() += 1;
    }
    eprintln!("3000 sequential connections in {:?}: {counts:?}", start.elapsed());
    assert_eq!(counts.len(), 3, "every endpoint should answer: {counts:?}");
    let (min, max) = (counts.values().min().unwrap(), counts.values().max().unwrap());
    assert!(max - min <= 1, "round robin should differ by at most 1: {counts:?}");
    drop(endpoints);
}

/// The endpoint each client address is sent to, one connection each.
fn picks(clients: &[Ipv4Addr], frontend: SocketAddr) -> Vec<String> {
    clients
        .iter()
        .map(|&ip| fetch_from(ip, frontend).unwrap_or_else(|e| panic!("client {ip}: {e}")))
        .collect()
}

#[test]
fn session_affinity_holds_then_times_out() {
    const TIMEOUT_SECONDS: u64 = 2;
    let cluster_ip = fresh_ip();
    let (_endpoints, pods) = name_pods("sticky", 3);
    let spec = format!(
        "  sessionAffinity: ClientIP\n  sessionAffinityConfig:\n    clientIP:\n      \
         timeoutSeconds: {TIMEOUT_SECONDS}\n"
    );
    let yaml = service("sticky", cluster_ip, Some("sticky"), &[Port::tcp(PORT)], &spec) + &pods;
    let frontend = addr(cluster_ip, PORT);
    let (_proxy, _) = Proxy::serving(&yaml, &[], || fetch(frontend));

    // Four client addresses (not a multiple of the three endpoints, so
    // that fresh round-robin picks after the expiry cannot all land where
    // the first ones did; see below).
    let clients: Vec<Ipv4Addr> = (0..4).map(|_| fresh_ip()).collect();
    let pinned = picks(&clients, frontend);

    // Holds: every client keeps its endpoint, also past TIMEOUT_SECONDS
    // after its first connection, since it keeps connecting more often
    // than that.
    let hold_start = Instant::now();
    for round in 1..=4 {
        thread::sleep(Duration::from_millis(600));
        let again = picks(&clients, frontend);
        assert_eq!(
            again,
            pinned,
            "round {round}, {:?} after the first pick: affinity should hold (clients {clients:?})",
            hold_start.elapsed()
        );
    }

    // Times out: after more than TIMEOUT_SECONDS without a connection, each
    // client is balanced afresh. 20 connections (4 clients x 5) went by:
    // whether round robin advanced once per new client (4) or once per
    // connection (20), it now stands one or two places further on, so at
    // least one of the four clients must move.
    thread::sleep(Duration::from_secs(TIMEOUT_SECONDS) + Duration::from_millis(1_200));
    let after = picks(&clients, frontend);
    assert_ne!(
        after, pinned,
        "after {TIMEOUT_SECONDS} s idle every client kept its endpoint: affinity did not expire"
    );
    // ... and the new picks stick in their turn.
    assert_eq!(picks(&clients, frontend), after, "the fresh picks should be pinned again");
}

/// `svcproxy.io/lb-policy: least-request` on a TCP port: with one
/// connection held open on one of two endpoints, every new connection goes
/// to the other (the two random picks are always these two, and the idle
/// one wins), where round robin would alternate.
#[test]
fn least_request_sends_new_connections_to_the_endpoint_with_fewer_open() {
    use crate::support::tagged::{self, Conn, Named, service_of, visit};
    let (a, b) = (Named::echo("a"), Named::echo("b"));
    let ip = fresh_ip();
    let frontend = addr(ip, tagged::PORT);
    let manifest = service_of("lr", ip, &[&a, &b]).replacen(
        "  namespace: default\n",
        "  namespace: default\n  annotations:\n    svcproxy.io/lb-policy: least-request\n",
        1,
    );
    let (mut proxy, _) = Proxy::serving(&manifest, &[], || visit(frontend));
    let mut held = Conn::open(frontend).expect("a connection to hold");
    held.exchange().expect("held connection works");
    let other = if held.name == "a" { "b" } else { "a" };
    for i in 0..20 {
        let reached = visit(frontend).unwrap_or_else(|e| panic!("{e}\n{}", proxy.log()));
        assert_eq!(reached, other, "connection {i}: {} holds a connection", held.name);
    }
    held.finish().expect("the held connection ends cleanly");
    proxy.assert_running();
}
