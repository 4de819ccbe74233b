//! svcproxy as a proxy under test: the manifests (the shared bench's
//! shape: one Service whose ClusterIP:port is the listen address, one
//! EndpointSlice per endpoint, plus `--services N` extra Services; in HTTP
//! mode the port says `appProtocol: http`), the command line, and its
//! `/metrics`.
//!
//! Addresses: the bench's own are `127.77.0.x`; the extra Services and
//! their endpoints take `127.78.0.1`–`127.95.255.250`, clear of the test
//! suites' (`127.0.x.x`, `127.10.x.x`, `127.128`+) and the demo's
//! (`127.0.1.x`, `127.96.x.x`). Extra endpoints are never connected to.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, anyhow};

use super::args::Mode;

/// The Service every test goes through.
const SERVICE: &str = "bench";
/// Addresses per second octet: last octets 1..=250 (never .0 or .255).
const PER_OCTET2: u32 = 256 * 250;

/// Writes `DIR/bench.yaml`: the bench Service on `listen` (its port
/// HTTP in [`Mode::Http`]: the endpoints spoken to in HTTP/1.1) with one
/// EndpointSlice per endpoint, then `extra` Services of 2 ports and 3
/// endpoints each.
pub fn write_manifests(
    dir: &Path,
    listen: SocketAddr,
    endpoints: &[SocketAddr],
    extra: u32,
    mode: Mode,
) -> Result<()> {
    let app = if mode == Mode::Http { ", appProtocol: http" } else { "" };
    let mut yaml = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {SERVICE}, namespace: default}}\n\
         spec:\n  clusterIP: {}\n  ports: [{{port: {}, protocol: TCP{app}}}]\n",
        listen.ip(),
        listen.port()
    );
    for (i, e) in endpoints.iter().enumerate() {
        let _ = write!(
            yaml,
            "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
             metadata:\n  name: {SERVICE}-{i}\n  namespace: default\n  \
             labels: {{kubernetes.io/service-name: {SERVICE}}}\naddressType: IPv4\n\
             ports: [{{port: {}, protocol: TCP}}]\n\
             endpoints: [{{addresses: [\"{}\"], conditions: {{ready: true}}}}]\n",
            e.port(),
            e.ip()
        );
    }
    for i in 0..extra {
        extra_service(&mut yaml, i, extra);
    }
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("bench.yaml"), yaml).with_context(|| format!("{}", dir.display()))
}

/// Service `extra-I` on address I, ports 80 and 9090, with endpoints on
/// addresses `total + 3I`.. (never connected to). Port names avoid
/// `http`: those would be proxied as HTTP.
fn extra_service(yaml: &mut String, i: u32, total: u32) {
    let ip = extra_ip(i);
    let e = |k: u32| extra_ip(total + 3 * i + k);
    let _ = write!(
        yaml,
        "---\napiVersion: v1\nkind: Service\nmetadata: {{name: extra-{i}, namespace: load}}\n\
         spec:\n  clusterIP: {ip}\n  ports:\n  - {{name: main, port: 80, targetPort: 8080}}\n  \
         - {{name: admin, port: 9090}}\n\
         ---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
         metadata: {{name: extra-{i}-a, namespace: load, labels: {{kubernetes.io/service-name: extra-{i}}}}}\n\
         addressType: IPv4\nports: [{{name: main, port: 8080}}, {{name: admin, port: 9090}}]\n\
         endpoints:\n- addresses: [{}]\n- addresses: [{}]\n- addresses: [{}]\n",
        e(0),
        e(1),
        e(2)
    );
}

/// The `n`th address of the extra range.
pub fn extra_ip(n: u32) -> Ipv4Addr {
    // `--services` is capped at 200,000: 800,000 addresses, up to 127.90.
    debug_assert!(n / PER_OCTET2 <= 17, "extra address {n} out of 127.78-127.95");
    let rest = n % PER_OCTET2;
    Ipv4Addr::new(127, (78 + n / PER_OCTET2) as u8, (rest / 250) as u8, (rest % 250 + 1) as u8)
}

/// Adds `svcproxy run` on `manifests` to `base`, its admin servers on ephemeral ports of
/// `admin_ip`; `base` is the (possibly taskset-wrapped) program. In HTTP
/// mode a kept-alive client may wait 60 s for its next request, as the
/// peers' client timeouts allow: svcproxy's `--http-idle-timeout` default.
pub fn command(base: &mut Command, manifests: &Path, admin_ip: Ipv4Addr) {
    base.arg("run")
        .arg("--manifests")
        .arg(manifests)
        .arg("--metrics-bind-address")
        .arg(format!("{admin_ip}:0"))
        .arg("--healthz-bind-address")
        .arg(format!("{admin_ip}:0"));
}

/// The metrics address from the startup line
/// `admin endpoints healthz=ADDR metrics=ADDR`; `None` until logged.
pub fn metrics_addr(log: &str) -> Option<SocketAddr> {
    let line = log.lines().find(|l| l.contains("admin endpoints"))?;
    let rest = &line[line.find("metrics=")? + "metrics=".len()..];
    rest.split_whitespace().next()?.parse().ok()
}

/// The sum of `svcproxy_connections_active` over the bench Service's
/// series, from a `/metrics` text.
pub fn active_connections(metrics: &str) -> Result<f64> {
    let mut sum = None;
    for line in metrics.lines().filter(|l| l.starts_with("svcproxy_connections_active{")) {
        if !line.contains(&format!("service=\"{SERVICE}\"")) {
            continue;
        }
        let value = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok());
        *sum.get_or_insert(0.0) += value.ok_or_else(|| anyhow!("bad sample {line:?}"))?;
    }
    sum.ok_or_else(|| anyhow!("no svcproxy_connections_active series for {SERVICE}"))
}
