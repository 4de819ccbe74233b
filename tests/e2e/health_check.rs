//! kube-proxy's service health server on a `healthCheckNodePort`, which
//! cloud load balancers probe: 200 while this node has a ready endpoint of
//! the Service, 503 when it has none or only terminating ones, 503 and the
//! connection closed once the node drains; listed in `/debug/routes`;
//! released when no longer asked for; allocated, when none is written, as
//! `check` notes it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use crate::jig::{
    APPLY, AT_ONCE, NODE_PORT_FLAGS, edit, free_node_port, node, servers, start, wait_released,
    wait_serving,
};
use crate::support;
use crate::support::endpoint::Endpoint;
use crate::support::manifests::{Ep, NODE, Svc, local_and_remote, slices};
use crate::support::net::{eventually, fresh_ip};

/// Two distinct free NodePorts: the Service's and its healthCheckNodePort.
fn two_node_ports() -> [u16; 2] {
    let first = free_node_port();
    loop {
        let second = free_node_port();
        if second != first {
            return [first, second];
        }
    }
}

/// One probe of a healthCheckNodePort, as a cloud load balancer sends it:
/// the status, the `X-Load-Balancing-Endpoint-Weight` header and the JSON
/// body.
fn probe(to: SocketAddr) -> Result<(u16, String, serde_json::Value), String> {
    let mut stream = TcpStream::connect_timeout(&to, AT_ONCE).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(AT_ONCE)).map_err(|e| e.to_string())?;
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {to}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).map_err(|e| e.to_string())?;
    let (head, body) = answer.split_once("\r\n\r\n").ok_or(format!("not HTTP: {answer:?}"))?;
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or(head.to_owned())?;
    let weight = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("x-load-balancing-endpoint-weight: ")
                .map(str::to_owned)
        })
        .unwrap_or_default();
    let json = serde_json::from_str(body).map_err(|e| format!("{e}: {body:?}"))?;
    Ok((status, weight, json))
}

/// Waits until the probe of `to` answers `status` with `local` endpoints.
fn wait_probe(to: SocketAddr, service: &str, status: u16, local: u64) {
    eventually(&format!("{to} answers {status} with {local} local endpoints"), APPLY, || {
        let (got, weight, json) = probe(to)?;
        let count = json["localEndpoints"].as_u64();
        let named = json["service"]["namespace"] == "default" && json["service"]["name"] == service;
        if got == status && count == Some(local) && weight == local.to_string() && named {
            Ok(())
        } else {
            Err(format!("{got}, weight {weight:?}, {json}"))
        }
    });
}

/// kube-proxy's service health server, which cloud load balancers probe
/// to send traffic only to nodes with endpoints ("should only target
/// nodes with endpoints"): 200 while this node has a ready endpoint of
/// the Service, 503 when it has none, or only a terminating one ("should
/// fail health check node port if there are only terminating endpoints");
/// released when the Service stops asking for it.
#[test]
fn health_check_node_port_reports_this_nodes_ready_endpoints() {
    let (ip, [node_port, check]) = (fresh_ip(), two_node_ports());
    let eps = servers(&["hc-local", "hc-remote"]);
    let (local, remote) = local_and_remote(&eps[0], &eps[1]);
    let lb = Svc::new("hc", ip).no_selector().kind("LoadBalancer").node_port(node_port);
    let svc = lb
        .clone()
        .spec(&format!("  externalTrafficPolicy: Local\n  healthCheckNodePort: {check}\n"))
        .yaml();
    let flags = ["--node-name", NODE, NODE_PORT_FLAGS[0], NODE_PORT_FLAGS[1]];
    let mut proxy = start(&(svc.clone() + &slices("hc", &[local, remote])), &flags);
    wait_probe(node(check), "hc", 200, 1);
    wait_serving(node(node_port), &["hc-local"]);
    let routes = support::admin::routes(&proxy.admin());
    let listed = format!("{}/TCP", node(check));
    let entry = routes["healthChecks"].as_array().and_then(|all| {
        all.iter().find(|c| c["frontend"] == listed.as_str() && c["localEndpoints"] == 1)
    });
    assert!(entry.is_some(), "{listed} not in /debug/routes healthChecks: {routes:#}");

    let draining = local.conditions(Some(false), Some(true), Some(true));
    edit(&mut proxy, &(svc.clone() + &slices("hc", &[draining, remote])));
    wait_probe(node(check), "hc", 503, 0);
    edit(&mut proxy, &(svc.clone() + &slices("hc", &[remote])));
    wait_probe(node(check), "hc", 503, 0);
    edit(&mut proxy, &(svc + &slices("hc", &[local, remote])));
    wait_probe(node(check), "hc", 200, 1);

    // externalTrafficPolicy edited back to Cluster alone, the port left in
    // the file: dropped as an API update drops it, and released.
    let cluster = lb
        .spec(&format!("  externalTrafficPolicy: Cluster\n  healthCheckNodePort: {check}\n"))
        .yaml();
    edit(&mut proxy, &(cluster + &slices("hc", &[local, remote])));
    wait_released(node(check));
    wait_serving(node(node_port), &["hc-local", "hc-remote"]);
    assert_eq!(proxy.metric("svcproxy_config_invalid_objects"), 0.0);
}

/// One more request on an open probe connection: its status line and
/// body (read up to the end of the JSON object).
fn probe_again(stream: &mut TcpStream, to: SocketAddr) -> String {
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {to}\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("probe request");
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    while !answer.ends_with(b"\n}") {
        match stream.read(&mut byte) {
            Ok(1) => answer.push(byte[0]),
            other => {
                panic!("probe answer cut short ({other:?}): {:?}", String::from_utf8_lossy(&answer))
            }
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// On SIGTERM the node leaves the load balancer: a probe on a connection
/// kept open from before is answered 503 with `serviceProxyHealthy:
/// false` and the connection closed, as kube-proxy does, and the probe
/// does not hold the drain.
#[test]
fn a_draining_node_fails_its_health_check_probes() {
    let (ip, [node_port, check]) = (fresh_ip(), two_node_ports());
    let echo = Endpoint::echo(fresh_ip());
    let local = Ep::ready(&echo).on(NODE);
    let svc = Svc::new("hcd", ip)
        .no_selector()
        .kind("LoadBalancer")
        .node_port(node_port)
        .spec(&format!("  externalTrafficPolicy: Local\n  healthCheckNodePort: {check}\n"))
        .yaml();
    let flags = ["--node-name", NODE, NODE_PORT_FLAGS[0], NODE_PORT_FLAGS[1]];
    let mut proxy = start(&(svc + &slices("hcd", &[local])), &flags);
    wait_probe(node(check), "hcd", 200, 1);
    // A proxied connection live through the drain.
    let mut live = TcpStream::connect_timeout(&node(node_port), AT_ONCE).expect("live connection");
    live.set_read_timeout(Some(APPLY)).expect("read timeout");
    let mut echoed = [0u8; 4];
    live.write_all(b"ping").and_then(|()| live.read_exact(&mut echoed)).expect("echo");
    let mut kept = TcpStream::connect_timeout(&node(check), AT_ONCE).expect("probe connection");
    kept.set_read_timeout(Some(APPLY)).expect("read timeout");
    let before = probe_again(&mut kept, node(check));
    assert!(before.starts_with("HTTP/1.1 200"), "{before}");

    proxy.signal("TERM");
    // kill(1) returns once the signal is sent, not once the proxy acted on
    // it: the kept connection is asked again until the answer changes.
    let signalled = Instant::now();
    let after = loop {
        let answer = probe_again(&mut kept, node(check));
        if !answer.starts_with("HTTP/1.1 200") || signalled.elapsed() >= AT_ONCE {
            break answer;
        }
        thread::sleep(Duration::from_millis(1));
    };
    assert!(after.starts_with("HTTP/1.1 503"), "{after}");
    assert!(after.contains("\"serviceProxyHealthy\": false"), "{after}");
    assert!(after.to_ascii_lowercase().contains("connection: close"), "{after}");
    drop(live);
    let status =
        proxy.wait_exit(APPLY).unwrap_or_else(|| panic!("still draining\n{}", proxy.log()));
    assert_eq!(status.code(), Some(0), "{}", proxy.log());
}

/// The API server gives a LoadBalancer Service with
/// `externalTrafficPolicy: Local` a healthCheckNodePort when it names
/// none; here the allocation is a function of the objects, `check` notes
/// the port, and `run` answers on it.
#[test]
fn an_allocated_health_check_node_port_is_the_one_check_notes() {
    let ip = fresh_ip();
    let [_, _, c, d] = ip.octets();
    let name = format!("hc-alloc-{c}-{d}");
    let eps = servers(&["hca-local"]);
    let local = Ep::ready(&eps[0]).on(NODE);
    let svc = Svc::new(&name, ip)
        .no_selector()
        .kind("LoadBalancer")
        .spec("  externalTrafficPolicy: Local\n")
        .yaml();
    let flags = ["--node-name", NODE, NODE_PORT_FLAGS[0], NODE_PORT_FLAGS[1]];
    let proxy = start(&(svc + &slices(&name, &[local])), &flags);
    let out = support::check([proxy.manifest()]);
    assert_eq!(out.code(), Some(0), "{out}");
    let prefix = format!("note: default/{name}: healthCheckNodePort ");
    let port: u16 = out
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix(&prefix)?.split('/').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no healthCheckNodePort note\n{out}"));
    assert!((30_000..=32_767).contains(&port), "{out}");
    wait_probe(node(port), &name, 200, 1);
}
