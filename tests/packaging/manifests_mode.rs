//! `docker/manifests-mode/daemonset.yaml`, for nodes without an API
//! server: the DaemonSet of `docker/daemonset.yaml` but for its source, a
//! ConfigMap of manifests mounted where `--manifests` points, and an
//! account without a token; the ConfigMap's manifests pass `svcproxy
//! check` as kubelet mounts them.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use serde_json::Value;

use crate::daemonset::{
    Flags, SOURCES, api_daemon_set, assert_svcproxy_daemon_set, container, flag, pod_spec,
};
use crate::{docker, kube};

/// The objects of `docker/manifests-mode/daemonset.yaml`.
struct Objects {
    service_account: ServiceAccount,
    config_map: ConfigMap,
    daemon_set: DaemonSet,
}

fn objects() -> Objects {
    let path = docker("manifests-mode/daemonset.yaml");
    Objects {
        service_account: kube::the(&path),
        config_map: kube::the(&path),
        daemon_set: kube::the(&path),
    }
}

#[test]
fn manifests_mode_objects_agree_with_each_other_and_the_cli() {
    let Objects { service_account, config_map, daemon_set } = objects();
    let flags = assert_svcproxy_daemon_set(&daemon_set);
    let pod = pod_spec(&daemon_set);
    assert_eq!(
        pod.service_account_name.as_deref(),
        service_account.metadata.name.as_deref(),
        "the pod runs as the file's ServiceAccount"
    );
    // Files need no API access: no token anywhere.
    assert_eq!(service_account.automount_service_account_token, Some(false));
    assert_eq!(pod.automount_service_account_token, Some(false));
    assert_manifests_volume(&daemon_set, &config_map, &flags);
    assert_same_flags_but_the_source(flags);
}

/// The two DaemonSets differ only in where Services come from.
fn assert_same_flags_but_the_source(flags: Flags) {
    let but_source = |flags: Flags| -> Flags {
        flags.into_iter().filter(|(flag, _)| !SOURCES.contains(&flag.as_str())).collect()
    };
    let api = but_source(crate::daemonset::flags(container(&api_daemon_set())));
    assert_eq!(but_source(flags), api, "docker/daemonset.yaml passes other flags");
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
