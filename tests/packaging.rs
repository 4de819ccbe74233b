//! Packaging (`docker/`), checked without Docker, Kubernetes or a network:
//!
//! - `daemonset.yaml` parses, document by document, as the Kubernetes
//!   objects it claims to be (k8s-openapi types), and they agree with each
//!   other and with svcproxy's command line: probes on the healthz port,
//!   scrape annotations on the metrics port, the ConfigMap mounted where
//!   `--manifests` points, a grace period above the drain timeout;
//! - the ConfigMap's manifests pass `svcproxy check`, laid out as kubelet
//!   mounts them (`..data` symlink);
//! - the real binary runs with the DaemonSet's flags, answers the probes'
//!   paths, and exports only metric families svcproxy documents, as text
//!   `promtool check metrics` accepts;
//! - the Grafana dashboard queries only those families, shows the ones
//!   issue 5 asks for, and its PromQL parses (per promtool);
//! - the Dockerfile builds what the DaemonSet runs; the systemd unit is
//!   well-formed (per `systemd-analyze verify`) and drives the same CLI;
//! - the one capability the packaging grants is enough: svcproxy as an
//!   unprivileged user with only CAP_NET_BIND_SERVICE serves port 80 and
//!   binds a ClusterIP that is not a local address (IP_FREEBIND).
//!
//! Tools that may be missing (promtool, systemd-analyze, setpriv) only skip
//! their part, with a `note:` on stderr.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

// One file per artefact, under tests/packaging/ (a plain `mod` here would
// look beside this file, where cargo would also build it as a test).
#[path = "packaging/capabilities.rs"]
mod capabilities;
#[path = "packaging/daemonset.rs"]
mod daemonset;
#[path = "packaging/dashboard.rs"]
mod dashboard;
#[path = "packaging/image.rs"]
mod image;

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::Duration;

/// Every metric family svcproxy exports: DESIGN §5, plus the connection
/// duration histogram of issue 5.
const EXPORTED: &[&str] = &[
    "svcproxy_connections_total",
    "svcproxy_connections_active",
    "svcproxy_received_bytes_total",
    "svcproxy_sent_bytes_total",
    "svcproxy_endpoint_connections_total",
    "svcproxy_endpoint_connect_errors_total",
    "svcproxy_rejected_connections_total",
    "svcproxy_http_requests_total",
    "svcproxy_http_request_duration_seconds",
    "svcproxy_connection_duration_seconds",
    "svcproxy_config_reloads_total",
    "svcproxy_config_invalid_objects",
    "svcproxy_routing_generation",
    "svcproxy_services",
    "svcproxy_endpoints",
    "kubeproxy_sync_proxy_rules_duration_seconds",
    "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
];

/// The histograms among [`EXPORTED`]: queried through their `_bucket`,
/// `_sum` and `_count` series.
const HISTOGRAMS: &[&str] = &[
    "svcproxy_http_request_duration_seconds",
    "svcproxy_connection_duration_seconds",
    "kubeproxy_sync_proxy_rules_duration_seconds",
];

/// `svcproxy run --drain-timeout`'s default (DESIGN §2).
const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the image installs the binary and the systemd unit runs it.
const INSTALLED_BIN: &str = "/usr/local/bin/svcproxy";

/// `docker/<file>` in the crate.
fn docker(file: &str) -> PathBuf {
    support::root().join("docker").join(file)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `name` on PATH, if installed.
fn tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

/// Runs `cmd` with `input` on stdin (empty: none) to its end.
fn run_tool(cmd: &mut Command, input: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_owned();
    let writer = thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().expect("wait");
    writer.join().expect("writer thread").expect("write stdin");
    output
}

/// A tool's whole output, for a failure message.
fn shown(output: &Output) -> String {
    format!(
        "({})\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
