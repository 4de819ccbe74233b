//! `docker/manifests-mode/daemonset.yaml`: its objects, their agreement with each other
//! and with `svcproxy run`'s flags, its ConfigMap's manifests, and the real
//! binary run with its flags.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, PodSpec, PodTemplateSpec, Probe, ServiceAccount,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use crate::support::admin::{self, Admin};
use crate::support::endpoint::Endpoint;
use crate::support::manifests::{endpoint_slice, ipv4, simple_service};
use crate::support::net;
use crate::support::proxy::Proxy;
use crate::support::tools::{promtool_check_metrics, shown};
use crate::{DEFAULT_DRAIN_TIMEOUT, EXPORTED, HISTOGRAMS, docker, read};

/// The objects of `docker/manifests-mode/daemonset.yaml`, one of each kind.
struct Objects {
    service_account: ServiceAccount,
    config_map: ConfigMap,
    daemon_set: DaemonSet,
}

/// `svcproxy run`'s flags as the container's `args` give them
/// (`--flag=value` or `--flag value`): every value of every flag.
type Flags = BTreeMap<String, Vec<String>>;

/// Parses every YAML document of `docker/manifests-mode/daemonset.yaml` into JSON, then
/// into the k8s-openapi type its `apiVersion` and `kind` name; fails on any
/// other kind, on a document that is not an object of its kind, and on a
/// kind given twice.
fn objects() -> Objects {
    let path = docker("manifests-mode/daemonset.yaml");
    let text = read(&path);
    let documents: Vec<Value> = serde_saphyr::from_str_multiple::<Value, Vec<_>>(&text)
        .unwrap_or_else(|e| panic!("{}: not YAML: {e}", path.display()));
    let (mut service_account, mut config_map, mut daemon_set) = (None, None, None);
    for (i, document) in documents.into_iter().enumerate() {
        let kind = document["kind"].as_str().unwrap_or_default().to_owned();
        let api_version = document["apiVersion"].as_str().unwrap_or_default().to_owned();
        let what = format!("{} document {} ({api_version} {kind})", path.display(), i + 1);
        match (api_version.as_str(), kind.as_str()) {
            ("v1", "ServiceAccount") => set_once(&mut service_account, parse(&what, document)),
            ("v1", "ConfigMap") => set_once(&mut config_map, parse(&what, document)),
            ("apps/v1", "DaemonSet") => set_once(&mut daemon_set, parse(&what, document)),
            _ => panic!("{what}: not a kind this file should hold"),
        }
    }
    Objects {
        service_account: service_account.expect("a ServiceAccount"),
        config_map: config_map.expect("a ConfigMap"),
        daemon_set: daemon_set.expect("a DaemonSet"),
    }
}

fn parse<T: serde::de::DeserializeOwned>(what: &str, document: Value) -> T {
    serde_json::from_value(document).unwrap_or_else(|e| panic!("{what}: {e}"))
}

fn set_once<T>(slot: &mut Option<T>, value: T) {
    assert!(slot.is_none(), "docker/manifests-mode/daemonset.yaml: two objects of one kind");
    *slot = Some(value);
}

fn spec(daemon_set: &DaemonSet) -> &DaemonSetSpec {
    daemon_set.spec.as_ref().expect("DaemonSet spec")
}

fn pod_spec(daemon_set: &DaemonSet) -> &PodSpec {
    spec(daemon_set).template.spec.as_ref().expect("pod template spec")
}

fn container(daemon_set: &DaemonSet) -> &Container {
    let containers = &pod_spec(daemon_set).containers;
    assert_eq!(containers.len(), 1, "one container: svcproxy");
    &containers[0]
}

fn flags(container: &Container) -> Flags {
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
fn flag<'a>(flags: &'a Flags, flag: &str) -> &'a str {
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

#[test]
fn daemonset_objects_parse_and_agree_with_each_other_and_the_cli() {
    let Objects { service_account, config_map, daemon_set } = objects();
    for meta in [&service_account.metadata, &config_map.metadata, &daemon_set.metadata] {
        assert_eq!(meta.namespace.as_deref(), Some("kube-system"), "{:?}", meta.name);
    }
    assert_node_proxy(&daemon_set, &service_account);
    let container = container(&daemon_set);
    // `args` follow the image's ENTRYPOINT (`svcproxy run`): no `command`.
    assert!(container.command.is_none(), "command would replace `svcproxy run`");
    let flags = flags(container);
    assert_drain_and_node_name(&daemon_set, &flags);
    assert_admin_ports(&spec(&daemon_set).template, container, &flags);
    assert_manifests_volume(&daemon_set, &config_map, &flags);
    assert_least_privilege(container);
}

/// A node proxy: one pod per node, every node, on the host's network,
/// never evicted first, rolled one node at a time.
fn assert_node_proxy(daemon_set: &DaemonSet, service_account: &ServiceAccount) {
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
    assert_eq!(
        pod.service_account_name.as_deref(),
        service_account.metadata.name.as_deref(),
        "the pod runs as the file's ServiceAccount"
    );
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

/// The ConfigMap's volume, whole, where `--manifests` points.
fn assert_manifests_volume(daemon_set: &DaemonSet, config_map: &ConfigMap, flags: &Flags) {
    let manifests = flag(flags, "--manifests");
    let mounts = container(daemon_set).volume_mounts.as_deref().unwrap_or_default();
    let mount = mounts
        .iter()
        .find(|m| m.mount_path == manifests)
        .unwrap_or_else(|| panic!("nothing is mounted at --manifests={manifests}: {mounts:?}"));
    assert!(mount.sub_path.is_none(), "kubelet never updates a subPath mount");
    assert_eq!(mount.read_only, Some(true));
    let volumes = pod_spec(daemon_set).volumes.iter().flatten();
    let volume = volumes.clone().find(|v| v.name == mount.name);
    let volume = volume.unwrap_or_else(|| panic!("no volume {}", mount.name));
    let source = volume.config_map.as_ref().expect("a configMap volume");
    assert_eq!(Some(&source.name), config_map.metadata.name.as_ref());
    assert!(source.items.is_none(), "every key of the ConfigMap is a manifest file");
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

// --- the ConfigMap's manifests ---

/// The ConfigMap's data, mounted as kubelet does: a timestamped directory
/// holding the files, `..data` pointing at it, and one symlink per key
/// through `..data`.
fn mount_config_map(config_map: &ConfigMap, dir: &Path) {
    let data = config_map.data.as_ref().expect("ConfigMap data");
    assert!(config_map.binary_data.is_none(), "manifests are text");
    let version = dir.join("..2025_01_01_00_00_00.000000001");
    fs::create_dir_all(&version).expect("mount dir");
    for (key, text) in data {
        fs::write(version.join(key), text).expect("write a key");
        std::os::unix::fs::symlink(Path::new("..data").join(key), dir.join(key)).expect("symlink");
    }
    std::os::unix::fs::symlink(version.file_name().expect("name"), dir.join("..data"))
        .expect("..data");
}

/// `namespace/name` of every Service of the ConfigMap, checking that each
/// key is one kubelet mounts and svcproxy reads.
fn config_map_services(config_map: &ConfigMap) -> BTreeSet<String> {
    let data = config_map.data.as_ref().expect("ConfigMap data");
    let mut services = BTreeSet::new();
    for (key, text) in data {
        let key_chars = key.chars().all(|c| c.is_ascii_alphanumeric() || "-._".contains(c));
        assert!(
            !key.is_empty() && key.len() <= 253 && key_chars && !key.starts_with('.'),
            "{key:?}: not a ConfigMap key svcproxy would read (hidden or invalid)"
        );
        assert!(
            [".yaml", ".yml", ".json"].iter().any(|ext| key.ends_with(ext)),
            "{key}: svcproxy reads *.yaml, *.yml and *.json only"
        );
        let documents: Vec<Value> = serde_saphyr::from_str_multiple::<Value, Vec<_>>(text)
            .unwrap_or_else(|e| panic!("ConfigMap key {key}: not YAML: {e}"));
        for document in documents.iter().filter(|d| d["kind"] == "Service") {
            let namespace = document["metadata"]["namespace"].as_str().unwrap_or("default");
            let name = document["metadata"]["name"].as_str().expect("Service name");
            services.insert(format!("{namespace}/{name}"));
        }
    }
    services
}

#[test]
fn configmap_manifests_pass_check_as_kubelet_mounts_them() {
    let Objects { config_map, .. } = objects();
    let services = config_map_services(&config_map);
    assert!(!services.is_empty(), "the example serves at least one Service");

    let dir = tempfile::tempdir().expect("temp dir");
    mount_config_map(&config_map, dir.path());
    let output = crate::support::check([dir.path()]);
    output.assert_no_panic();
    assert_eq!(output.code(), Some(0), "the ConfigMap's manifests are invalid\n{output}");
    assert!(output.error_lines().is_empty(), "check complained\n{output}");
    let table = output.table();
    // Each Service once: the `..data` tree is not read a second time.
    assert_eq!(table.keys().into_iter().collect::<BTreeSet<_>>(), services, "\n{output}");
    assert_eq!(table.rows.len(), services.len(), "a Service listed twice\n{output}");
    for row in &table.rows {
        let name = format!("{}/{}", row.namespace, row.name);
        assert_ne!(row.endpoints, "<none>", "{name} has no endpoint\n{output}");
    }
}

// --- the binary, with the DaemonSet's flags ---

/// The DaemonSet's flags but `--manifests` and the admin addresses (the
/// test's own), with `$(NODE_NAME)` expanded as kubelet would.
fn extra_flags(daemon_set: &DaemonSet) -> Vec<String> {
    let replaced = ["--manifests", "--metrics-bind-address", "--healthz-bind-address"];
    let mut extra = Vec::new();
    for (flag, values) in flags(container(daemon_set)) {
        if replaced.contains(&flag.as_str()) {
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
    let Objects { daemon_set, .. } = objects();
    let extra = extra_flags(&daemon_set);
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
