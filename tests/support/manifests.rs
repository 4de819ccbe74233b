//! The manifests the `run` tests feed the proxy, and how they write them:
//! Services, Pods and EndpointSlices as YAML text, built from the
//! addresses of each test's own endpoints.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;

use serde_json::{Value, json};

use super::net::fresh_ip;

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

/// A Service `name` on port 8080 of a fresh ClusterIP, with a Pod at each
/// of `endpoints`; its frontend and its manifest.
pub fn service_of(name: &str, endpoints: &[SocketAddr]) -> (SocketAddr, String) {
    const PORT: u16 = 8080;
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

/// A Service `name` at `cluster_ip` with four UDP ports, whose
/// EndpointSlice lists `endpoints` ready addresses (in 127.250.0.0/16).
/// Cheap to parse and to serve (UDP ports get no listener and no traffic
/// series), heavy to hold: every Snapshot resolves each port's endpoints
/// anew, about 56 bytes each, so Snapshots kept alive show in the resident
/// memory. (What is read from an unchanged file, such as a large selector,
/// is shared by every Snapshot and would not show.)
pub fn weighty_service(name: &str, cluster_ip: Ipv4Addr, endpoints: usize) -> String {
    const PORTS: [u16; 4] = [9001, 9002, 9003, 9004];
    let ports: String =
        PORTS.iter().map(|p| format!("    - {{name: u{p}, protocol: UDP, port: {p}}}\n")).collect();
    let mut yaml = format!(
        "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: default\n\
         spec:\n  clusterIP: {cluster_ip}\n  ports:\n{ports}\
         ---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {name}-1\n\
         \x20 namespace: default\n  labels:\n    kubernetes.io/service-name: {name}\n\
         addressType: IPv4\nports:\n"
    );
    for p in PORTS {
        let _ = writeln!(yaml, "  - {{name: u{p}, protocol: UDP, port: {p}}}");
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
