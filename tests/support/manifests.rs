//! The manifests the tests feed the proxy, and how they write them:
//! Services, Pods and EndpointSlices as YAML (or JSON) text, built from
//! the addresses of each test's own endpoints. Functions build the common
//! shapes; [`Svc`], [`pod_with`] and [`Ep`] write the fields the e2e
//! scenarios edit one at a time (types, ports, labels, Pod states,
//! endpoint conditions, nodes).

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;

use serde_json::{Value, json};

use super::endpoint::Endpoint;
use super::net::fresh_ip;

/// The ServicePort of the test Services (the e2e jig's 8080 / 80 pair).
pub const PORT: u16 = 8080;
/// The node the e2e Pods run on: the proxy's `--node-name` in the tests
/// of traffic policies and health checks.
pub const NODE: &str = "node-here";
/// Another node, for endpoints that are not local.
pub const OTHER_NODE: &str = "node-there";

/// Writes `text` to `path`, making its parent directories.
pub fn write_file(path: &Path, text: &str) {
    let dir = path.parent().expect("a parent directory");
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    write_in_place(path, text);
}

/// Rewrites `path` in place: truncate, write, close (what `>` in a shell
/// and most scripts do).
pub fn write_in_place(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// Replaces `path` atomically, as editors and `kubectl cp`-style tools do:
/// writes a hidden temporary file in the same directory (the proxy loads
/// no dotfile), then renames it over `path`.
pub fn write_by_rename(path: &Path, text: &str) {
    let name = path.file_name().and_then(|n| n.to_str()).expect("a file name");
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).unwrap_or_else(|e| panic!("{}: {e}", tmp.display()));
    std::fs::rename(&tmp, path).unwrap_or_else(|e| panic!("rename over {}: {e}", path.display()));
}

/// One ServicePort: `name`, `port`, `targetPort` (a number or a name) and
/// an explicit `nodePort`, if any.
#[derive(Clone, Copy)]
pub struct Port<'a> {
    pub name: &'a str,
    pub port: u16,
    pub target: &'a str,
    pub node_port: Option<u16>,
}

// === impl Port ===

impl<'a> Port<'a> {
    pub fn new(name: &'a str, port: u16, target: &'a str) -> Port<'a> {
        Port { name, port, target, node_port: None }
    }

    /// The port named `tcp` to the target port named `tcp`.
    pub fn tcp(port: u16) -> Port<'static> {
        Port::new("tcp", port, "tcp")
    }

    pub fn with_node_port(self, node_port: u16) -> Port<'a> {
        Port { node_port: Some(node_port), ..self }
    }
}

/// A `v1 Service` in `default`. `extra_spec` is more YAML under `spec:`
/// (indented two spaces, e.g. `  type: NodePort\n`); `selector` is the
/// `app` label to select, if any.
pub fn service(
    name: &str,
    cluster_ip: Ipv4Addr,
    selector: Option<&str>,
    ports: &[Port<'_>],
    extra_spec: &str,
) -> String {
    let mut yaml = format!(
        "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: default\n\
         spec:\n  clusterIP: {cluster_ip}\n"
    );
    if let Some(app) = selector {
        let _ = writeln!(yaml, "  selector:\n    app: {app}");
    }
    yaml.push_str("  ports:\n");
    for p in ports {
        let _ = writeln!(
            yaml,
            "    - name: {}\n      protocol: TCP\n      port: {}\n      targetPort: {}",
            p.name, p.port, p.target
        );
        if let Some(node_port) = p.node_port {
            let _ = writeln!(yaml, "      nodePort: {node_port}");
        }
    }
    yaml.push_str(extra_spec);
    yaml
}

/// A Service `name` on [`PORT`] of a fresh ClusterIP, with a Pod at each
/// of `endpoints`; its frontend and its manifest.
pub fn service_of(name: &str, endpoints: &[SocketAddr]) -> (SocketAddr, String) {
    let cluster_ip = fresh_ip();
    let mut yaml = simple_service(name, cluster_ip, PORT, true);
    for (i, endpoint) in endpoints.iter().enumerate() {
        yaml.push_str(&pod_at(&format!("{name}-{i}"), name, *endpoint));
    }
    (SocketAddr::from((cluster_ip, PORT)), yaml)
}

/// A single-port Service `name`, port `port` named `tcp` to the target port
/// named `tcp`: the container port of Pods labelled `app: NAME` (with
/// `selector`), or the EndpointSlice port named `tcp` (without).
pub fn simple_service(name: &str, cluster_ip: Ipv4Addr, port: u16, selector: bool) -> String {
    let sel = selector.then_some(name);
    service(name, cluster_ip, sel, &[Port::tcp(port)], "")
}

/// A Ready, Running `v1 Pod` labelled `app: APP` at `ip`, with one
/// container exposing `ports` as `(name, containerPort)`.
pub fn pod(name: &str, app: &str, ip: Ipv4Addr, ports: &[(&str, u16)]) -> String {
    let mut yaml = format!(
        "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: default\n\
         \x20 labels:\n    app: {app}\nspec:\n  containers:\n    - name: main\n      image: test\n\
         \x20     ports:\n"
    );
    for (port_name, port) in ports {
        let _ = writeln!(yaml, "        - name: {port_name}\n          containerPort: {port}");
    }
    let _ = write!(
        yaml,
        "status:\n  phase: Running\n  podIP: {ip}\n  conditions:\n    - type: Ready\n      \
         status: \"True\"\n"
    );
    yaml
}

/// The Pod of a one-port endpoint: `(name, containerPort)` = `("tcp", port)`.
pub fn pod_at(name: &str, app: &str, addr: SocketAddr) -> String {
    pod(name, app, ipv4(addr), &[("tcp", addr.port())])
}

/// A `discovery.k8s.io/v1 EndpointSlice` of Service `service` with one
/// port named `port_name` = `port` and ready endpoints at `ips`.
pub fn endpoint_slice(
    name: &str,
    service: &str,
    port_name: &str,
    port: u16,
    ips: &[Ipv4Addr],
) -> String {
    let mut yaml = format!(
        "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {name}\n\
         \x20 namespace: default\n  labels:\n    kubernetes.io/service-name: {service}\n\
         addressType: IPv4\nports:\n  - name: {port_name}\n    protocol: TCP\n    port: {port}\n\
         endpoints:\n"
    );
    for ip in ips {
        let _ = writeln!(yaml, "  - addresses:\n      - {ip}\n    conditions:\n      ready: true");
    }
    yaml
}

/// A Service `name` at `cluster_ip` with four SCTP ports, whose
/// EndpointSlice lists `endpoints` ready addresses (in 127.250.0.0/16).
/// Cheap to parse and to serve (SCTP ports get no listener and no traffic
/// series), heavy to hold: every Snapshot resolves each port's endpoints
/// anew, about 56 bytes each, so Snapshots kept alive show in the resident
/// memory. (What is read from an unchanged file, such as a large selector,
/// is shared by every Snapshot and would not show.)
pub fn weighty_service(name: &str, cluster_ip: Ipv4Addr, endpoints: usize) -> String {
    const PORTS: [u16; 4] = [9001, 9002, 9003, 9004];
    let ports: String = PORTS
        .iter()
        .map(|p| format!("    - {{name: u{p}, protocol: SCTP, port: {p}}}\n"))
        .collect();
    let mut yaml = format!(
        "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: default\n\
         spec:\n  clusterIP: {cluster_ip}\n  ports:\n{ports}\
         ---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {name}-1\n\
         \x20 namespace: default\n  labels:\n    kubernetes.io/service-name: {name}\n\
         addressType: IPv4\nports:\n"
    );
    for p in PORTS {
        let _ = writeln!(yaml, "  - {{name: u{p}, protocol: SCTP, port: {p}}}");
    }
    yaml.push_str("endpoints:\n");
    for i in 0..endpoints {
        let _ = writeln!(yaml, "  - addresses: [127.250.{}.{}]", i / 250, i % 250 + 1);
    }
    yaml
}

/// The IPv4 address of `addr` (every test address is IPv4).
pub fn ipv4(addr: SocketAddr) -> Ipv4Addr {
    match addr {
        SocketAddr::V4(v4) => *v4.ip(),
        SocketAddr::V6(v6) => panic!("{v6}: the tests use IPv4 only"),
    }
}

/// `count` headless Services in one JSON `kind: List`: cheap to serve (no
/// frontend) but a second or so of parsing in a debug build, so the first
/// Snapshot takes a while to appear.
pub fn slow_first_build(count: usize) -> String {
    let items: Vec<Value> = (0..count)
        .map(|i| {
            json!({
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": { "name": format!("slow-{i}"), "namespace": "default" },
                "spec": { "clusterIP": "None", "ports": [{ "port": 80 }] }
            })
        })
        .collect();
    json!({ "apiVersion": "v1", "kind": "List", "items": items }).to_string()
}

// --- field by field, for the e2e scenarios ---

/// A `v1 Service` in `default`, written field by field.
#[derive(Clone)]
pub struct Svc {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub kind: &'static str,
    pub cluster_ip: Option<Ipv4Addr>,
    /// The `app` label Pods must carry, if the Service selects.
    pub selector: Option<String>,
    /// `(name, port, targetPort, nodePort)`.
    pub ports: Vec<(String, u16, String, Option<u16>)>,
    /// More lines under `spec:`, indented two spaces.
    pub spec: String,
    /// Lines under `status:`, indented two spaces.
    pub status: String,
}

// === impl Svc ===

impl Svc {
    /// A ClusterIP Service at `ip` selecting the Pods `app: NAME`, with the
    /// port `tcp` = PORT to the target port named `tcp`.
    pub fn new(name: &str, ip: Ipv4Addr) -> Svc {
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

    pub fn kind(mut self, kind: &'static str) -> Svc {
        self.kind = kind;
        self
    }

    pub fn label(mut self, key: &str, value: &str) -> Svc {
        self.labels.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn no_selector(mut self) -> Svc {
        self.selector = None;
        self
    }

    pub fn ports(mut self, ports: &[(&str, u16, &str, Option<u16>)]) -> Svc {
        self.ports =
            ports.iter().map(|(n, p, t, np)| ((*n).to_owned(), *p, (*t).to_owned(), *np)).collect();
        self
    }

    pub fn node_port(self, node_port: u16) -> Svc {
        let (name, port, target, _) = self.ports[0].clone();
        Svc { ports: vec![(name, port, target, Some(node_port))], ..self }
    }

    pub fn spec(mut self, lines: &str) -> Svc {
        self.spec.push_str(lines);
        self
    }

    pub fn status(mut self, lines: &str) -> Svc {
        self.status.push_str(lines);
        self
    }

    pub fn yaml(&self) -> String {
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
pub enum PodState {
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

/// A `v1 Pod` labelled `app: APP` at `ip` on [`NODE`], in `state`, whose
/// main container names `ports` and whose restartable init container (a
/// sidecar) names `sidecar_ports`.
pub fn pod_with(
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
pub fn pod_of(name: &str, app: &str, endpoint: &Endpoint, state: PodState) -> String {
    pod_with(name, app, ipv4(endpoint.addr), &[("tcp", endpoint.port())], &[], state)
}

/// One endpoint of an EndpointSlice with its conditions as written (an
/// unset condition is left out of the manifest).
#[derive(Clone, Copy)]
pub struct Ep<'a> {
    pub endpoint: &'a Endpoint,
    pub ready: Option<bool>,
    pub serving: Option<bool>,
    pub terminating: Option<bool>,
    pub node: Option<&'a str>,
}

// === impl Ep ===

impl<'a> Ep<'a> {
    pub fn ready(endpoint: &'a Endpoint) -> Ep<'a> {
        Ep {
            endpoint,
            ready: Some(true),
            serving: Some(true),
            terminating: Some(false),
            node: None,
        }
    }

    pub fn conditions(
        self,
        ready: Option<bool>,
        serving: Option<bool>,
        terminating: Option<bool>,
    ) -> Ep<'a> {
        Ep { ready, serving, terminating, ..self }
    }

    pub fn on(self, node: &'a str) -> Ep<'a> {
        Ep { node: Some(node), ..self }
    }
}

/// The EndpointSlices of Service `service` listing `eps` under the port
/// named `tcp`: one slice per endpoint, since each name server has a port
/// of its own. With no endpoint, one empty slice (a Service scaled to 0).
pub fn slices(service: &str, eps: &[Ep<'_>]) -> String {
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

/// Ready Pods of `app` for `endpoints`, named after the endpoints' names.
pub fn ready_pods(app: &str, endpoints: &[(&str, &Endpoint)]) -> String {
    endpoints.iter().map(|(name, e)| pod_of(name, app, e, PodState::Ready)).collect()
}

/// Two endpoints, one on this node (`--node-name NODE`) and one on
/// another, as EndpointSlices with `nodeName`.
pub fn local_and_remote<'a>(local: &'a Endpoint, remote: &'a Endpoint) -> (Ep<'a>, Ep<'a>) {
    (Ep::ready(local).on(NODE), Ep::ready(remote).on(OTHER_NODE))
}
