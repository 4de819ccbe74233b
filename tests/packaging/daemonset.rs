//! The DaemonSet svcproxy runs as. `docker/daemonset.yaml` reads the API
//! server with the in-cluster configuration; what it shares with the
//! manifests-mode variant (`manifests_mode.rs`) is checked here for both: a
//! node proxy on the host network, drained before SIGKILL, probed and
//! scraped on its admin ports, holding one capability, passing only flags
//! `svcproxy run` lists. Then the real binary runs with its flags.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetSpec};
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::support::admin::{self, Admin};
use crate::support::endpoint::Endpoint;
use crate::support::manifests::{endpoint_slice, ipv4, simple_service};
use crate::support::net;
use crate::support::proxy::Proxy;
use crate::support::tools::{promtool_check_metrics, shown};
use crate::{DEFAULT_DRAIN_TIMEOUT, EXPORTED, HISTOGRAMS, assert_run_knows, docker, kube};

/// `svcproxy run`'s flags as the container's `args` give them
/// (`--flag=value` or `--flag value`): every value of every flag.
pub(crate) type Flags = BTreeMap<String, Vec<String>>;

/// The flags that choose where Services come from.
pub(crate) const SOURCES: &[&str] = &["--manifests", "--kubeconfig", "--master"];

/// The optional ConfigMap that points svcproxy at the API server, as
/// docker/README.md names it.
const API_SERVER_CONFIG_MAP: &str = "svcproxy-api-server";

/// The DaemonSet of `docker/daemonset.yaml`, the one `kubectl apply -f
/// docker/` creates.
pub(crate) fn api_daemon_set() -> DaemonSet {
    kube::the(&docker("daemonset.yaml"))
}

pub(crate) fn spec(daemon_set: &DaemonSet) -> &DaemonSetSpec {
    daemon_set.spec.as_ref().expect("DaemonSet spec")
}

pub(crate) fn pod_spec(daemon_set: &DaemonSet) -> &PodSpec {
    spec(daemon_set).template.spec.as_ref().expect("pod template spec")
}

pub(crate) fn container(daemon_set: &DaemonSet) -> &Container {
    let containers = &pod_spec(daemon_set).containers;
    assert_eq!(containers.len(), 1, "one container: svcproxy");
    &containers[0]
}

pub(crate) fn flags(container: &Container) -> Flags {
    let args = container.args.as_deref().expect("container args");
    let mut flags = Flags::new();
    let mut args = args.iter().peekable();
    while let Some(arg) = args.next() {
        assert!(arg.starts_with("--"), "argument {arg:?} is not a --flag");
        let (flag, value) = match arg.split_once('=') {
            Some((flag, value)) => (flag.to_owned(), value.to_owned()),
            None => {
                let value = args.next_if(|v| !v.starts_with("--")).cloned().unwrap_or_default();
                (arg.clone(), value)
            }
        };
        flags.entry(flag).or_default().push(value);
    }
    flags
}

/// The single value of `flag`; panics when absent or repeated.
pub(crate) fn flag<'a>(flags: &'a Flags, flag: &str) -> &'a str {
    match flags.get(flag).map(Vec::as_slice) {
        Some([value]) => value,
        other => panic!("{flag}: expected one value in the DaemonSet args, found {other:?}"),
    }
}

/// The path of a probe's `httpGet` and the container port it names (a
/// number, or the name of one of the container's ports).
fn probe_target(container: &Container, probe: Option<&Probe>, which: &str) -> (String, i32) {
    let get = probe
        .and_then(|p| p.http_get.as_ref())
        .unwrap_or_else(|| panic!("{which}: an httpGet probe"));
    let port = match &get.port {
        IntOrString::Int(port) => *port,
        IntOrString::String(name) => {
            let ports = container.ports.iter().flatten();
            let port = ports.clone().find(|p| p.name.as_deref() == Some(name));
            port.unwrap_or_else(|| panic!("{which}: no container port named {name}")).container_port
        }
    };
    assert!(get.host.is_none(), "{which}: probe the pod (node) address, not a fixed host");
    (get.path.clone().unwrap_or_default(), port)
}

/// What every svcproxy DaemonSet is, whatever its source; its flags.
pub(crate) fn assert_svcproxy_daemon_set(daemon_set: &DaemonSet) -> Flags {
    assert_node_proxy(daemon_set);
    let container = container(daemon_set);
    // `args` follow the image's ENTRYPOINT (`svcproxy run`): no `command`.
    assert!(container.command.is_none(), "command would replace `svcproxy run`");
    let args = container.args.iter().flatten().map(String::as_str);
    assert_run_knows(args, "DaemonSet args");
    let flags = flags(container);
    assert_drain_and_node_name(daemon_set, &flags);
    assert_admin_ports(&spec(daemon_set).template, container, &flags);
    assert_least_privilege(container);
    flags
}

#[test]
fn daemonset_reads_the_api_server_with_the_in_cluster_configuration() {
    let daemon_set = api_daemon_set();
    let flags = assert_svcproxy_daemon_set(&daemon_set);
    for source in SOURCES {
        assert!(!flags.contains_key(*source), "{source}: in-cluster needs no source flag");
    }
    let pod = pod_spec(&daemon_set);
    assert_ne!(
        pod.automount_service_account_token,
        Some(false),
        "the in-cluster configuration reads the mounted token"
    );
    assert!(pod.volumes.is_none(), "nothing to read but the API server: {:?}", pod.volumes);
    // In kube-proxy's place, KUBERNETES_SERVICE_HOST and _PORT name the
    // API server itself, from a ConfigMap that need not exist.
    let env_from = container(&daemon_set).env_from.as_deref().unwrap_or_default();
    let config_map = env_from.iter().find_map(|e| e.config_map_ref.as_ref());
    let config_map = config_map.expect("envFrom: the API server's address, if given");
    assert_eq!(config_map.name, API_SERVER_CONFIG_MAP);
    assert_eq!(config_map.optional, Some(true), "beside kube-proxy, there is none");
    assert!(env_from.iter().all(|e| e.secret_ref.is_none()), "no Secret in the environment");
    // /livez is 503 until the first complete list: an API server down at
    // boot must not make kubelet restart the pod in a loop.
    let startup = container(&daemon_set).startup_probe.as_ref().expect("startupProbe");
    let target = probe_target(container(&daemon_set), Some(startup), "startupProbe");
    assert_eq!(target.0, "/livez");
    let patience = startup.period_seconds.unwrap_or(10) * startup.failure_threshold.unwrap_or(3);
    assert!(patience >= 600, "the first list gets {patience} s before liveness counts");
}

/// A node proxy: one pod per node, every node, on the host's network,
/// never evicted first, rolled one node at a time.
fn assert_node_proxy(daemon_set: &DaemonSet) {
    let spec = spec(daemon_set);
    let selector = spec.selector.match_labels.as_ref().expect("matchLabels");
    let template = spec.template.metadata.as_ref();
    let labels = template.and_then(|m| m.labels.as_ref()).expect("pod labels");
    for (key, value) in selector {
        assert_eq!(labels.get(key), Some(value), "selector {key}={value} misses the template");
    }
    let strategy = spec.update_strategy.as_ref().expect("updateStrategy");
    assert_eq!(strategy.type_.as_deref(), Some("RollingUpdate"));
    let rolling = strategy.rolling_update.as_ref().expect("rollingUpdate");
    assert_eq!(rolling.max_unavailable, Some(IntOrString::Int(1)));

    let pod = pod_spec(daemon_set);
    assert_eq!(pod.host_network, Some(true), "hostNetwork");
    assert_eq!(pod.dns_policy.as_deref(), Some("ClusterFirstWithHostNet"));
    assert_eq!(pod.priority_class_name.as_deref(), Some("system-node-critical"));
    let tolerations = pod.tolerations.as_deref().unwrap_or_default();
    let every_taint = |t: &&k8s_openapi::api::core::v1::Toleration| {
        t.operator.as_deref() == Some("Exists") && t.key.is_none() && t.effect.is_none()
    };
    assert!(tolerations.iter().any(|t| every_taint(&t)), "tolerate every taint: {tolerations:?}");
    assert!(pod.service_account_name.is_some(), "the pod runs as svcproxy's ServiceAccount");
}

/// SIGKILL comes after the grace period, which must outlast the drain,
/// and a draining pod is not declared dead; the node name comes from the
/// downward API.
fn assert_drain_and_node_name(daemon_set: &DaemonSet, flags: &Flags) {
    let drain = flags
        .get("--drain-timeout")
        .map(|v| humantime::parse_duration(&v[0]).expect("--drain-timeout"))
        .unwrap_or(DEFAULT_DRAIN_TIMEOUT);
    let pod = pod_spec(daemon_set);
    let grace = pod.termination_grace_period_seconds.expect("terminationGracePeriodSeconds");
    assert!(
        Duration::from_secs(grace.try_into().expect("positive")) > drain,
        "terminationGracePeriodSeconds {grace} does not outlast the {drain:?} drain"
    );
    // /livez answers 503 while draining: liveness must not give up first.
    let liveness = container(daemon_set).liveness_probe.as_ref().expect("livenessProbe");
    let patience = liveness.period_seconds.unwrap_or(10) * liveness.failure_threshold.unwrap_or(3);
    assert!(
        i64::from(patience) > grace,
        "liveness fails after {patience}s, within the {grace}s grace"
    );

    assert_eq!(flag(flags, "--node-name"), "$(NODE_NAME)");
    let env = container(daemon_set).env.as_deref().unwrap_or_default();
    let node_name = env.iter().find(|e| e.name == "NODE_NAME").expect("env NODE_NAME");
    let field = node_name.value_from.as_ref().and_then(|v| v.field_ref.as_ref());
    assert_eq!(field.map(|f| f.field_path.as_str()), Some("spec.nodeName"));
}

/// Probes: kube-proxy's paths on the healthz port. Scrape annotations:
/// the metrics port. Both bound on every address of the node.
fn assert_admin_ports(template: &PodTemplateSpec, container: &Container, flags: &Flags) {
    let healthz: SocketAddr = flag(flags, "--healthz-bind-address").parse().expect("an address");
    assert!(healthz.ip().is_unspecified(), "kubelet probes the node address: bind 0.0.0.0");
    assert_eq!(healthz.port(), 10256, "kube-proxy's healthz port");
    let liveness = probe_target(container, container.liveness_probe.as_ref(), "livenessProbe");
    let readiness = probe_target(container, container.readiness_probe.as_ref(), "readinessProbe");
    assert_eq!(liveness, ("/livez".to_owned(), i32::from(healthz.port())));
    assert_eq!(readiness, ("/healthz".to_owned(), i32::from(healthz.port())));

    let metrics: SocketAddr = flag(flags, "--metrics-bind-address").parse().expect("an address");
    assert!(metrics.ip().is_unspecified(), "Prometheus scrapes from off the node: bind 0.0.0.0");
    let annotations = template.metadata.as_ref().and_then(|m| m.annotations.as_ref());
    let annotations = annotations.expect("pod template annotations");
    let annotation = |key: &str| annotations.get(key).map(String::as_str);
    assert_eq!(annotation("prometheus.io/scrape"), Some("true"));
    assert_eq!(annotation("prometheus.io/port"), Some(metrics.port().to_string().as_str()));
    assert_eq!(annotation("prometheus.io/path"), Some("/metrics"));
}

/// One capability, nothing else; bounded resources.
fn assert_least_privilege(container: &Container) {
    let security = container.security_context.as_ref().expect("securityContext");
    let caps = security.capabilities.as_ref().expect("capabilities");
    assert_eq!(caps.drop.as_deref(), Some(&["ALL".to_owned()][..]));
    assert_eq!(caps.add.as_deref(), Some(&["NET_BIND_SERVICE".to_owned()][..]));
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_ne!(security.privileged, Some(true));

    let resources = container.resources.as_ref().expect("resources");
    for (what, list) in [("requests", &resources.requests), ("limits", &resources.limits)] {
        let list = list.as_ref().unwrap_or_else(|| panic!("resources.{what}"));
        assert!(list.contains_key("cpu") && list.contains_key("memory"), "{what}: {list:?}");
    }
}

// --- the binary, with the DaemonSet's flags ---

/// The DaemonSet's flags but its source and the admin addresses (the
/// test's own), with `$(NODE_NAME)` expanded as kubelet would.
fn extra_flags(daemon_set: &DaemonSet) -> Vec<String> {
    let admin = ["--metrics-bind-address", "--healthz-bind-address"];
    let mut extra = Vec::new();
    for (flag, values) in flags(container(daemon_set)) {
        if SOURCES.contains(&flag.as_str()) || admin.contains(&flag.as_str()) {
            continue;
        }
        for value in values {
            extra.push(format!("{flag}={}", value.replace("$(NODE_NAME)", "test-node")));
        }
    }
    extra
}

#[test]
fn svcproxy_runs_with_the_daemonsets_flags_and_exports_known_metrics() {
    // The test's manifests as the source: no API server here.
    let extra = extra_flags(&api_daemon_set());
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();

    let pod = Endpoint::name(net::fresh_ip(), "hello");
    let cluster_ip = net::fresh_ip();
    let frontend = net::addr(cluster_ip, 9000);
    let manifests = simple_service("hello", cluster_ip, 9000, false)
        + &endpoint_slice("hello-1", "hello", "tcp", pod.port(), &[ipv4(pod.addr)]);
    let (mut proxy, answer) = Proxy::serving(&manifests, &extra, || net::fetch(frontend));
    assert_eq!(answer, "hello");
    // Some traffic on record, for the per-Service families.
    for _ in 0..3 {
        assert_eq!(net::fetch(frontend).expect("through the proxy"), "hello");
    }

    let admin = proxy.admin();
    assert_probe_paths_answer(admin, &proxy);
    let body = admin.metrics().unwrap_or_else(|e| panic!("{e}\n{}", proxy.log()));
    assert_known_families(&body);
    let output = promtool_check_metrics(&body);
    assert!(
        output.status.success(),
        "promtool check metrics rejects /metrics {}\n--- body:\n{body}",
        shown(&output)
    );
    proxy.assert_running();
}

/// The probes' paths answer 200 on the healthz address.
fn assert_probe_paths_answer(admin: Admin, proxy: &Proxy) {
    for path in ["/healthz", "/livez"] {
        let (status, body) = admin::get(admin.healthz, path)
            .unwrap_or_else(|e| panic!("GET {path}: {e}\n{}", proxy.log()));
        assert_eq!(status, 200, "GET {path}: {body}\n{}", proxy.log());
    }
}

/// Every `# TYPE` family of `body` is a documented one (not the reverse:
/// a family may not be exported yet, or have no series yet).
fn assert_known_families(body: &str) {
    let families: BTreeMap<&str, &str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .collect();
    assert!(!families.is_empty(), "no `# TYPE` line in /metrics:\n{body}");
    let unknown: Vec<&&str> = families.keys().filter(|name| !EXPORTED.contains(name)).collect();
    assert!(
        unknown.is_empty(),
        "/metrics exports families that are not documented (DESIGN §5): {unknown:?}\n{body}"
    );
    for (name, kind) in &families {
        if HISTOGRAMS.contains(name) {
            assert_eq!(kind.trim(), "histogram", "{name}");
        }
    }
    eprintln!("note: /metrics exports {} families: {:?}", families.len(), families.keys());
}
