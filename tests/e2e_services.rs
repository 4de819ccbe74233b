//! Kubernetes' own e2e Service tests (`test/e2e/network/service.go`) and
//! the contracts of DESIGN.md §3, translated to file mode: a manifest
//! rewritten on disk stands for an API update, the proxy is the node's
//! kube-proxy, and a client connection through a frontend stands for the
//! e2e exec pod's `nc`/`curl`.
//!
//! Black-box: the real binary, real sockets, loopback addresses of each
//! test's own (`support::net::fresh_ip`); NodePorts are served on
//! `127.0.0.1` (`--nodeport-addresses 127.0.0.0/8`) on a port no one holds.
//! Every wait has a deadline. Each endpoint is a name server: it writes
//! its name and closes, so a client learns where it landed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use socket2::{Domain, SockAddr, Socket, Type};
use support::endpoint::Endpoint;
use support::manifests::{ipv4, write_by_rename};
use support::net::{self, addr, eventually, fresh_ip};
use support::proxy::Proxy;

/// The ServicePort of the test Services (the e2e jig's 8080 / 80 pair).
const PORT: u16 = 8080;
/// How long a manifest edit may take to show in new connections: the
/// proxy promises about a second; the margin is for a loaded 2-core box.
const APPLY: Duration = Duration::from_secs(5);
/// A frontend without usable endpoints must answer within this.
const AT_ONCE: Duration = Duration::from_secs(1);
/// This node, for the trafficPolicy tests.
const NODE: &str = "node-here";
const OTHER_NODE: &str = "node-there";
const GENERATION: &str = "svcproxy_routing_generation";

// --- what a client sees ---

/// How one new connection to a frontend went.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Seen {
    /// An endpoint answered with its name.
    Name(String),
    /// Refused, reset or closed with no byte, within [`AT_ONCE`].
    Rejected,
}

/// One connection to `to` (from `from`, when given): what it saw, or an
/// error for what no client may see (a hang, a slow rejection, an error
/// after bytes).
fn look(from: Option<Ipv4Addr>, to: SocketAddr) -> Result<Seen, String> {
    let start = Instant::now();
    let connected = match from {
        Some(ip) => net::connect_from(ip, to),
        None => TcpStream::connect_timeout(&to, net::CONNECT_TIMEOUT),
    };
    let mut stream = match connected {
        Ok(stream) => stream,
        Err(e) if is_rejection(e.kind()) => return quick(start, to, "refused"),
        Err(e) => return Err(format!("connect to {to}: {e}")),
    };
    stream.set_read_timeout(Some(Duration::from_secs(3))).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    match stream.read_to_end(&mut bytes) {
        Ok(_) if bytes.is_empty() => quick(start, to, "closed"),
        Ok(_) => Ok(Seen::Name(String::from_utf8_lossy(&bytes).into_owned())),
        Err(e) if bytes.is_empty() && is_rejection(e.kind()) => quick(start, to, "reset"),
        Err(e) => Err(format!("{to}: {e} after {} bytes, {:?}", bytes.len(), start.elapsed())),
    }
}

fn is_rejection(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
    )
}

fn quick(start: Instant, to: SocketAddr, how: &str) -> Result<Seen, String> {
    let took = start.elapsed();
    if took < AT_ONCE {
        Ok(Seen::Rejected)
    } else {
        Err(format!("{to}: {how} only after {took:?}"))
    }
}

/// [`look`] from the default source address; panics on what no client
/// may see.
fn see(to: SocketAddr) -> Seen {
    look(None, to).unwrap_or_else(|e| panic!("{e}"))
}

/// [`look`] from `from`.
fn see_from(from: Ipv4Addr, to: SocketAddr) -> Seen {
    look(Some(from), to).unwrap_or_else(|e| panic!("client {from}: {e}"))
}

/// The endpoint names `count` new connections to `to` reached; panics on
/// a rejected one.
fn tally(to: SocketAddr, count: usize) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for i in 0..count {
        match see(to) {
            Seen::Name(name) => *seen.entry(name).or_default() += 1,
            Seen::Rejected => panic!("connection {i} to {to} was rejected; seen so far {seen:?}"),
        }
    }
    seen
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

/// Waits until new connections to `to` reach exactly the endpoints
/// `names` (round robin: 2 per endpoint cover them all), then checks 3
/// more per endpoint stay inside them.
fn wait_serving(to: SocketAddr, names: &[&str]) {
    let expected = set(names);
    eventually(&format!("{to} serving {names:?}"), APPLY, || {
        let mut seen = BTreeSet::new();
        for _ in 0..2 * names.len() {
            match look(None, to)? {
                Seen::Name(name) => seen.insert(name),
                Seen::Rejected => return Err("rejected".to_owned()),
            };
        }
        if seen == expected { Ok(()) } else { Err(format!("reached {seen:?}")) }
    });
    let again = tally(to, 3 * names.len());
    let reached: BTreeSet<String> = again.keys().cloned().collect();
    assert_eq!(reached, expected, "{to} should keep serving exactly {names:?}: {again:?}");
}

/// Waits until `to` rejects new connections at once, then checks it does
/// so 5 times in a row (never a hang, never a byte).
fn wait_rejected(to: SocketAddr) {
    eventually(&format!("{to} rejecting"), APPLY, || match look(None, to)? {
        Seen::Rejected => Ok(()),
        Seen::Name(name) => Err(format!("reached {name}")),
    });
    for i in 0..5 {
        assert_eq!(see(to), Seen::Rejected, "connection {i} to {to} after it started rejecting");
    }
}

/// Waits until nothing listens on `to` any more (connections refused).
fn wait_refused(to: SocketAddr) {
    eventually(&format!("{to} refusing (no listener)"), APPLY, || {
        if net::refuses(to) { Ok(()) } else { Err("still accepts".to_owned()) }
    });
}

/// Waits until another process could listen on `to` (the proxy released
/// it), as the e2e test re-creating a Service with a freed NodePort needs.
fn wait_released(to: SocketAddr) {
    eventually(&format!("{to} released"), APPLY, || {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).map_err(|e| e.to_string())?;
        socket.set_reuse_address(true).map_err(|e| e.to_string())?;
        socket.bind(&SockAddr::from(to)).map_err(|e| e.to_string())?;
        socket.listen(1).map_err(|e| e.to_string())
    });
}

// --- the proxy and its manifests ---

/// The NodePort flags: NodePorts on `127.0.0.1`.
const NODE_PORT_FLAGS: [&str; 2] = ["--nodeport-addresses", "127.0.0.0/8"];

/// `127.0.0.1:port`: a NodePort on the node address.
fn node(port: u16) -> SocketAddr {
    addr(Ipv4Addr::LOCALHOST, port)
}

/// A NodePort (30000–32767) nothing listens on now at `127.0.0.1`, and
/// that no other test of this process picks.
fn free_node_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let [_, b, c, d] = fresh_ip().octets();
    let base = (u32::from(b) << 16) | (u32::from(c) << 8) | u32::from(d);
    loop {
        let n = base.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed).wrapping_mul(7919));
        let port = 30_000 + (n % 2_768) as u16;
        if std::net::TcpListener::bind(node(port)).is_ok() {
            return port;
        }
    }
}

/// Starts the proxy on `yaml` with `flags` and waits for its first table.
fn start(yaml: &str, flags: &[&str]) -> Proxy {
    let mut proxy = Proxy::start(yaml, flags);
    proxy.wait_metric(GENERATION, Duration::from_secs(10), |g| g >= 1.0);
    proxy
}

/// Replaces the manifests with `yaml` (atomically, as editors and
/// `kubectl`-style tools do) and waits for a table built after it.
fn edit(proxy: &mut Proxy, yaml: &str) {
    let before = proxy.metric(GENERATION);
    write_by_rename(&proxy.manifest(), yaml);
    proxy.wait_metric(GENERATION, APPLY, |g| g > before);
}

/// A `v1 Service` in `default`, written field by field.
#[derive(Clone)]
struct Svc {
    name: String,
    labels: Vec<(String, String)>,
    kind: &'static str,
    cluster_ip: Option<Ipv4Addr>,
    /// The `app` label Pods must carry, if the Service selects.
    selector: Option<String>,
    /// `(name, port, targetPort, nodePort)`.
    ports: Vec<(String, u16, String, Option<u16>)>,
    /// More lines under `spec:`, indented two spaces.
    spec: String,
    /// Lines under `status:`, indented two spaces.
    status: String,
}

// === impl Svc ===

impl Svc {
    /// A ClusterIP Service at `ip` selecting the Pods `app: NAME`, with the
    /// port `tcp` = PORT to the target port named `tcp`.
    fn new(name: &str, ip: Ipv4Addr) -> Svc {
        Svc {
            name: name.to_owned(),
            labels: Vec::new(),
            kind: "ClusterIP",
            cluster_ip: Some(ip),
            selector: Some(name.to_owned()),
            ports: vec![("tcp".to_owned(), PORT, "tcp".to_owned(), None)],
            spec: String::new(),
            status: String::new(),
        }
    }

    fn kind(mut self, kind: &'static str) -> Svc {
        self.kind = kind;
        self
    }

    fn label(mut self, key: &str, value: &str) -> Svc {
        self.labels.push((key.to_owned(), value.to_owned()));
        self
    }

    fn no_selector(mut self) -> Svc {
        self.selector = None;
        self
    }

    fn ports(mut self, ports: &[(&str, u16, &str, Option<u16>)]) -> Svc {
        self.ports =
            ports.iter().map(|(n, p, t, np)| ((*n).to_owned(), *p, (*t).to_owned(), *np)).collect();
        self
    }

    fn node_port(self, node_port: u16) -> Svc {
        let (name, port, target, _) = self.ports[0].clone();
        Svc { ports: vec![(name, port, target, Some(node_port))], ..self }
    }

    fn spec(mut self, lines: &str) -> Svc {
        self.spec.push_str(lines);
        self
    }

    fn status(mut self, lines: &str) -> Svc {
        self.status.push_str(lines);
        self
    }

    fn yaml(&self) -> String {
        let mut y = format!(
            "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: {}\n  namespace: default\n",
            self.name
        );
        if !self.labels.is_empty() {
            y.push_str("  labels:\n");
            for (k, v) in &self.labels {
                let _ = writeln!(y, "    {k}: \"{v}\"");
            }
        }
        let _ = writeln!(y, "spec:\n  type: {}", self.kind);
        if let Some(ip) = self.cluster_ip {
            let _ = writeln!(y, "  clusterIP: {ip}");
        }
        if let Some(app) = &self.selector {
            let _ = writeln!(y, "  selector:\n    app: {app}");
        }
        if !self.ports.is_empty() {
            y.push_str("  ports:\n");
        }
        for (name, port, target, node_port) in &self.ports {
            let _ = writeln!(
                y,
                "    - name: {name}\n      protocol: TCP\n      port: {port}\n      targetPort: {target}"
            );
            if let Some(np) = node_port {
                let _ = writeln!(y, "      nodePort: {np}");
            }
        }
        y.push_str(&self.spec);
        if !self.status.is_empty() {
            let _ = write!(y, "status:\n{}", self.status);
        }
        y
    }
}

/// A Pod's state, as the kubelet and the API server report it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PodState {
    /// Running, Ready.
    Ready,
    /// Running, readiness failing.
    Unready,
    /// Being deleted (deletionTimestamp set), readiness still passing.
    TerminatingServing,
    /// Being deleted and readiness failing.
    TerminatingUnready,
    /// Evicted: phase Failed.
    Evicted,
}

/// A `v1 Pod` labelled `app: APP` at `ip`, whose main container names
/// `ports` and whose restartable init container (a sidecar) names
/// `sidecar_ports`.
fn pod_with(
    name: &str,
    app: &str,
    ip: Ipv4Addr,
    ports: &[(&str, u16)],
    sidecar_ports: &[(&str, u16)],
    state: PodState,
) -> String {
    let mut y = format!(
        "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: default\n  \
         labels:\n    app: {app}\n"
    );
    if matches!(state, PodState::TerminatingServing | PodState::TerminatingUnready) {
        y.push_str("  deletionTimestamp: \"2025-01-01T00:00:00Z\"\n");
    }
    let _ = writeln!(y, "spec:\n  nodeName: {NODE}");
    let port_list = |y: &mut String, ports: &[(&str, u16)]| {
        y.push_str("      ports:\n");
        for (port_name, port) in ports {
            let _ = writeln!(
                y,
                "        - name: {port_name}\n          containerPort: {port}\n          \
                 protocol: TCP"
            );
        }
    };
    if !sidecar_ports.is_empty() {
        y.push_str("  initContainers:\n    - name: sidecar\n      image: test\n");
        y.push_str("      restartPolicy: Always\n");
        port_list(&mut y, sidecar_ports);
    }
    y.push_str("  containers:\n    - name: main\n      image: test\n");
    if !ports.is_empty() {
        port_list(&mut y, ports);
    }
    let (phase, ready) = match state {
        PodState::Ready | PodState::TerminatingServing => ("Running", "True"),
        PodState::Unready | PodState::TerminatingUnready => ("Running", "False"),
        PodState::Evicted => ("Failed", "False"),
    };
    let _ = write!(
        y,
        "status:\n  phase: {phase}\n  podIP: {ip}\n  conditions:\n    - type: Ready\n      \
         status: \"{ready}\"\n"
    );
    y
}

/// A Pod of `app` for the name server `endpoint`, its port named `tcp`.
fn pod(name: &str, app: &str, endpoint: &Endpoint, state: PodState) -> String {
    pod_with(name, app, ipv4(endpoint.addr), &[("tcp", endpoint.port())], &[], state)
}

/// One endpoint of an EndpointSlice with its conditions as written (an
/// unset condition is left out of the manifest).
#[derive(Clone, Copy)]
struct Ep<'a> {
    endpoint: &'a Endpoint,
    ready: Option<bool>,
    serving: Option<bool>,
    terminating: Option<bool>,
    node: Option<&'a str>,
}

// === impl Ep ===

impl<'a> Ep<'a> {
    fn ready(endpoint: &'a Endpoint) -> Ep<'a> {
        Ep {
            endpoint,
            ready: Some(true),
            serving: Some(true),
            terminating: Some(false),
            node: None,
        }
    }

    fn conditions(
        self,
        ready: Option<bool>,
        serving: Option<bool>,
        terminating: Option<bool>,
    ) -> Ep<'a> {
        Ep { ready, serving, terminating, ..self }
    }

    fn on(self, node: &'a str) -> Ep<'a> {
        Ep { node: Some(node), ..self }
    }
}

/// The EndpointSlices of Service `service` listing `eps` under the port
/// named `tcp`: one slice per endpoint, since each name server has a port
/// of its own. With no endpoint, one empty slice (a Service scaled to 0).
fn slices(service: &str, eps: &[Ep<'_>]) -> String {
    let head = |i: usize, port: u16| {
        format!(
            "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  \
             name: {service}-{i}\n  namespace: default\n  labels:\n    \
             kubernetes.io/service-name: {service}\naddressType: IPv4\nports:\n  - name: tcp\n    \
             protocol: TCP\n    port: {port}\nendpoints:\n"
        )
    };
    if eps.is_empty() {
        return head(0, PORT).replace("endpoints:\n", "endpoints: []\n");
    }
    let mut y = String::new();
    for (i, ep) in eps.iter().enumerate() {
        y.push_str(&head(i, ep.endpoint.port()));
        let _ = writeln!(y, "  - addresses:\n      - {}", ipv4(ep.endpoint.addr));
        if let Some(node) = ep.node {
            let _ = writeln!(y, "    nodeName: {node}");
        }
        let conditions =
            [("ready", ep.ready), ("serving", ep.serving), ("terminating", ep.terminating)];
        if conditions.iter().any(|(_, v)| v.is_some()) {
            y.push_str("    conditions:\n");
            for (key, value) in conditions {
                if let Some(value) = value {
                    let _ = writeln!(y, "      {key}: {value}");
                }
            }
        }
    }
    y
}

/// Name servers `names`, each on a fresh loopback address.
fn servers(names: &[&str]) -> Vec<Endpoint> {
    names.iter().map(|name| Endpoint::name(fresh_ip(), name)).collect()
}

/// Ready Pods of `app` for `endpoints`, named after the endpoints' names.
fn ready_pods(app: &str, endpoints: &[(&str, &Endpoint)]) -> String {
    endpoints.iter().map(|(name, e)| pod(name, app, e, PodState::Ready)).collect()
}

// --- basic endpoints, multiport, named ports ---

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

// --- up and down ---

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

/// "should be able to up and down services" and "should work after the
/// service has been recreated": a Service deleted stops being served while
/// its neighbour keeps serving; a third one comes up; the first, created
/// again at the same ClusterIP and then at another one, serves again.
#[test]
fn services_deleted_and_recreated_at_the_same_and_another_cluster_ip_serve() {
    let (ip1, ip2, ip3, ip1b) = (fresh_ip(), fresh_ip(), fresh_ip(), fresh_ip());
    let eps = servers(&["s1", "s2", "s3"]);
    let service = |name: &str, ip: Ipv4Addr, e: &Endpoint| {
        Svc::new(name, ip).yaml() + &pod(name, name, e, PodState::Ready)
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

// --- type, ports and targetPort changes ---

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
    let pods = pod("en-1", "extname", &e, PodState::Ready);
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

// --- session affinity ---

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
    let pods = names.iter().zip(&eps).map(|(n, e)| pod(n, app, e, PodState::Ready)).collect();
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

// --- readiness, publishNotReadyAddresses, terminating endpoints ---

/// "should create endpoints for unready pods" and "should be able to
/// connect to terminating and unready endpoints if PublishNotReadyAddresses
/// is true"; "should not be able to connect to terminating and unready
/// endpoints if PublishNotReadyAddresses is false"; "should be rejected for
/// evicted pods (no endpoints)".
#[test]
fn publish_not_ready_addresses_serves_unready_and_terminating_pods() {
    let ip = fresh_ip();
    let (unready, dying) =
        (Endpoint::name(fresh_ip(), "unready"), Endpoint::name(fresh_ip(), "dying"));
    let evicted = Endpoint::name(fresh_ip(), "evicted");
    let pods = pod("unready", "pnr", &unready, PodState::Unready)
        + &pod("dying", "pnr", &dying, PodState::TerminatingUnready)
        + &pod("evicted", "pnr", &evicted, PodState::Evicted);
    let svc = Svc::new("pnr", ip);
    let publish = svc.clone().spec("  publishNotReadyAddresses: true\n").yaml() + &pods;
    let frontend = addr(ip, PORT);
    let mut proxy = start(&(svc.yaml() + &pods), &[]);
    wait_rejected(frontend);

    edit(&mut proxy, &publish);
    wait_serving(frontend, &["unready", "dying"]);
    edit(&mut proxy, &(Svc::new("pnr", ip).yaml() + &pods));
    wait_rejected(frontend);
}

/// Not-ready endpoints take no traffic while a ready one exists; with
/// none ready, the serving and terminating ones do (kube-proxy's
/// fallback, for `internalTrafficPolicy: Cluster`); terminating and not
/// serving ones never do.
#[test]
fn not_ready_endpoints_are_skipped_and_terminating_serving_ones_are_the_fallback() {
    let ip = fresh_ip();
    let eps = servers(&["ready", "unready", "draining"]);
    let svc = Svc::new("fallback", ip).no_selector().yaml();
    let (ready, unready, draining) = (Ep::ready(&eps[0]), Ep::ready(&eps[1]), Ep::ready(&eps[2]));
    let unready = unready.conditions(Some(false), Some(false), Some(false));
    let draining = draining.conditions(Some(false), Some(true), Some(true));
    let frontend = addr(ip, PORT);
    let mut proxy = start(&(svc.clone() + &slices("fallback", &[ready, unready, draining])), &[]);
    wait_serving(frontend, &["ready"]);

    edit(&mut proxy, &(svc.clone() + &slices("fallback", &[unready, draining])));
    wait_serving(frontend, &["draining"]);
    let gone = draining.conditions(Some(false), Some(false), Some(true));
    edit(&mut proxy, &(svc.clone() + &slices("fallback", &[unready, gone])));
    wait_rejected(frontend);
    // Pods say the same: a Pod being deleted whose readiness still passes.
    let pods = pod("ready", "fallback", &eps[0], PodState::Unready)
        + &pod("draining", "fallback", &eps[2], PodState::TerminatingServing);
    edit(&mut proxy, &(Svc::new("fallback", ip).yaml() + &pods));
    wait_serving(frontend, &["draining"]);
}

/// An EndpointSlice endpoint that is terminating, not ready, and says
/// nothing of `serving`: the API (`serving`: "a nil value should be
/// interpreted as true") and kube-proxy (`Serving == nil || *Serving`)
/// count it as serving, so it is the fallback when none is ready.
#[test]
fn a_terminating_slice_endpoint_with_serving_unset_is_the_fallback() {
    let ip = fresh_ip();
    let eps = servers(&["unset-serving"]);
    let svc = Svc::new("unset-serving", ip).no_selector().yaml();
    let ep = Ep::ready(&eps[0]).conditions(Some(false), None, Some(true));
    let _proxy = start(&(svc + &slices("unset-serving", &[ep])), &[]);
    wait_serving(addr(ip, PORT), &["unset-serving"]);
}

/// DESIGN §3: "`publishNotReadyAddresses` includes not-ready ones", said
/// of every endpoint source; here an EndpointSlice lists a not-ready
/// endpoint of a Service that publishes not-ready addresses.
#[test]
fn publish_not_ready_addresses_applies_to_endpoint_slices_too() {
    let ip = fresh_ip();
    let eps = servers(&["slice-unready"]);
    let svc =
        Svc::new("pnr-slice", ip).no_selector().spec("  publishNotReadyAddresses: true\n").yaml();
    let ep = Ep::ready(&eps[0]).conditions(Some(false), Some(false), Some(false));
    let _proxy = start(&(svc + &slices("pnr-slice", &[ep])), &[]);
    wait_serving(addr(ip, PORT), &["slice-unready"]);
}

// --- labels that take a Service away from kube-proxy ---

/// "should implement service.kubernetes.io/service-proxy-name" and
/// "should implement service.kubernetes.io/headless": the label added,
/// the Service is no longer served (its neighbour is); removed, it is
/// served again.
#[test]
fn proxy_name_and_headless_labels_added_stop_serving_and_removed_serve_again() {
    let (ip, other_ip) = (fresh_ip(), fresh_ip());
    let (a, b) = (Endpoint::name(fresh_ip(), "labelled"), Endpoint::name(fresh_ip(), "plain"));
    let pods = pod("labelled", "labelled", &a, PodState::Ready)
        + &pod("plain", "plain", &b, PodState::Ready);
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
        + &pod("mine", "mine", &eps[0], PodState::Ready)
        + &pod("theirs", "theirs", &eps[1], PodState::Ready)
        + &pod("unlabelled", "unlabelled", &eps[2], PodState::Ready);
    let _proxy = start(&yaml, &["--service-proxy-name", "svcproxy-e2e"]);
    wait_serving(addr(mine, PORT), &["mine"]);
    assert!(net::refuses(addr(theirs, PORT)), "a Service of another proxy is served");
    assert!(net::refuses(addr(unlabelled, PORT)), "an unlabelled Service is served");
}

// --- externalIPs, LoadBalancer ingress, traffic policies ---

/// externalIPs and `status.loadBalancer.ingress[].ip` added by an edit are
/// served, and released when removed.
#[test]
fn external_ips_and_load_balancer_ingress_ips_follow_edits() {
    let (ip, external, ingress, node_port) = (fresh_ip(), fresh_ip(), fresh_ip(), free_node_port());
    let e = Endpoint::name(fresh_ip(), "lb-1");
    let pods = pod("lb-1", "lb", &e, PodState::Ready);
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
        + &pod("ipmode", "ipmode", &e, PodState::Ready);
    let _proxy = start(&yaml, &[]);
    wait_serving(addr(vip, PORT), &["ipmode"]);
    assert!(net::refuses(addr(proxied, PORT)), "the Proxy-mode ingress IP {proxied} is served");
}

/// Two endpoints, one on this node (`--node-name NODE`) and one on
/// another, as EndpointSlices with `nodeName`.
fn local_and_remote<'a>(local: &'a Endpoint, remote: &'a Endpoint) -> (Ep<'a>, Ep<'a>) {
    (Ep::ready(local).on(NODE), Ep::ready(remote).on(OTHER_NODE))
}

/// "should respect internalTrafficPolicy=Local": with no endpoint on this
/// node the ClusterIP has no endpoints (rejected at once) while the
/// NodePort (external traffic, policy Cluster) serves; with a local one,
/// the ClusterIP reaches only it. "should fallback to local terminating
/// endpoints when there are no ready endpoints with
/// internalTrafficPolicy=Local": a local serving+terminating endpoint is
/// used before a ready remote one.
#[test]
fn internal_traffic_policy_local_uses_only_this_nodes_endpoints() {
    let (ip, node_port) = (fresh_ip(), free_node_port());
    let eps = servers(&["itp-local", "itp-remote"]);
    let (local, remote) = local_and_remote(&eps[0], &eps[1]);
    let svc = Svc::new("itp", ip)
        .no_selector()
        .kind("NodePort")
        .node_port(node_port)
        .spec("  internalTrafficPolicy: Local\n")
        .yaml();
    let (cluster, np) = (addr(ip, PORT), node(node_port));
    let flags = ["--node-name", NODE, NODE_PORT_FLAGS[0], NODE_PORT_FLAGS[1]];
    let mut proxy = start(&(svc.clone() + &slices("itp", &[remote])), &flags);
    wait_serving(np, &["itp-remote"]);
    wait_rejected(cluster);

    edit(&mut proxy, &(svc.clone() + &slices("itp", &[local, remote])));
    wait_serving(cluster, &["itp-local"]);
    wait_serving(np, &["itp-local", "itp-remote"]);
    let draining = local.conditions(Some(false), Some(true), Some(true));
    edit(&mut proxy, &(svc.clone() + &slices("itp", &[draining, remote])));
    wait_serving(cluster, &["itp-local"]);
    wait_serving(np, &["itp-remote"]);
}

/// `externalTrafficPolicy: Local`: the NodePort, the externalIP and the
/// LoadBalancer ingress reach only this node's endpoints (none: rejected
/// at once), the ClusterIP every endpoint; "should fallback to local
/// terminating endpoints when there are no ready endpoints with
/// externalTrafficPolicy=Local".
#[test]
fn external_traffic_policy_local_uses_only_this_nodes_endpoints_from_outside() {
    let (ip, external, node_port) = (fresh_ip(), fresh_ip(), free_node_port());
    let eps = servers(&["etp-local", "etp-remote"]);
    let (local, remote) = local_and_remote(&eps[0], &eps[1]);
    let svc = Svc::new("etp", ip)
        .no_selector()
        .kind("NodePort")
        .node_port(node_port)
        .spec(&format!("  externalTrafficPolicy: Local\n  externalIPs:\n    - {external}\n"))
        .yaml();
    let (cluster, np, ext) = (addr(ip, PORT), node(node_port), addr(external, PORT));
    let flags = ["--node-name", NODE, NODE_PORT_FLAGS[0], NODE_PORT_FLAGS[1]];
    let mut proxy = start(&(svc.clone() + &slices("etp", &[local, remote])), &flags);
    wait_serving(cluster, &["etp-local", "etp-remote"]);
    wait_serving(np, &["etp-local"]);
    wait_serving(ext, &["etp-local"]);

    let draining = local.conditions(Some(false), Some(true), Some(true));
    edit(&mut proxy, &(svc.clone() + &slices("etp", &[draining, remote])));
    wait_serving(np, &["etp-local"]);
    wait_serving(cluster, &["etp-remote"]);
    edit(&mut proxy, &(svc.clone() + &slices("etp", &[remote])));
    wait_rejected(np);
    wait_rejected(ext);
    wait_serving(cluster, &["etp-remote"]);
}

// --- healthCheckNodePort ---

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

// --- hairpin ---

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
        + &pod("netexec-hairpin", "hairpin-test", &server, PodState::Ready);
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

// --- NodePort validation ---

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
    let pods: String = names.iter().zip(&eps).map(|(n, e)| pod(n, n, e, PodState::Ready)).collect();
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

// --- more of "should be able to change the type and ports of a TCP service" ---

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
    let pods = pod("back-1", "back", &e, PodState::Ready);
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
    let others = pod("other-1", "other", &other, PodState::Ready);
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
    let pods = pod("alloc-1", &name, &e, PodState::Ready);
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
