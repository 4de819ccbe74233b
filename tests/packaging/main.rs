//! Packaging (`docker/`), checked without Docker, Kubernetes or a network:
//!
//! - every file `kubectl apply -f docker/` reads (and the manifests-mode
//!   variant's directory) holds only Kubernetes objects, each document
//!   parsing as the k8s-openapi type it claims to be, with no field that
//!   type does not know;
//! - `daemonset.yaml` reads the API server with the in-cluster
//!   configuration and agrees with svcproxy's command line: probes on the
//!   healthz port, scrape annotations on the metrics port, a grace period
//!   above the drain timeout, only flags `svcproxy run` lists;
//! - `00-rbac.yaml` grants its ServiceAccount, the DaemonSet's, reading
//!   Services, EndpointSlices and Nodes, and nothing else;
//! - `manifests-mode/daemonset.yaml` is the same DaemonSet reading a
//!   ConfigMap mounted where `--manifests` points, and the ConfigMap's
//!   manifests pass `svcproxy check` as kubelet mounts them (`..data`);
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
//! promtool, systemd-analyze and setpriv must be installed (see
//! `support::tools`); the capability test also needs root, and says so
//! with a `note:` when it cannot run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../support/mod.rs"]
mod support;

// One file per artefact.
mod capabilities;
mod daemonset;
mod dashboard;
mod image;
mod kube;
mod manifests_mode;
mod rbac;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
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
    "svcproxy_endpoint_http_requests_total",
    "svcproxy_http_proxy_errors_total",
    "svcproxy_connection_duration_seconds",
    "svcproxy_config_reloads_total",
    "svcproxy_config_invalid_objects",
    "svcproxy_routing_generation",
    "svcproxy_services",
    "svcproxy_endpoints",
    "kubeproxy_sync_proxy_rules_duration_seconds",
    "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
    "kubeproxy_network_programming_duration_seconds",
    "svcproxy_api_watch_events_total",
    "svcproxy_api_relists_total",
    "svcproxy_api_up",
    "svcproxy_udp_datagrams_total",
    "svcproxy_udp_flows_active",
    "svcproxy_udp_dropped_total",
    "svcproxy_accept_paused_seconds_total",
    "process_open_fds",
    "process_max_fds",
    "process_resident_memory_bytes",
    "process_virtual_memory_bytes",
    "process_cpu_seconds_total",
    "process_threads",
    "process_start_time_seconds",
];

/// The histograms among [`EXPORTED`]: queried through their `_bucket`,
/// `_sum` and `_count` series.
const HISTOGRAMS: &[&str] = &[
    "svcproxy_http_request_duration_seconds",
    "svcproxy_connection_duration_seconds",
    "kubeproxy_sync_proxy_rules_duration_seconds",
    "kubeproxy_network_programming_duration_seconds",
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

/// Every `--flag` of `args` is one `svcproxy run --help` lists (`what`
/// names where they come from).
fn assert_run_knows<'a>(args: impl IntoIterator<Item = &'a str>, what: &str) {
    let help = support::run(["run", "--help"]);
    assert_eq!(help.code(), Some(0), "{help}");
    let listed: BTreeSet<&str> = help
        .stdout
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|word| word.starts_with("--"))
        .collect();
    for arg in args.into_iter().filter(|a| a.starts_with("--")) {
        let flag = arg.split('=').next().expect("a flag");
        assert!(listed.contains(flag), "{what}: {flag} is not a flag of `run`\n{help}");
    }
}
