//! The parts of a v1 Pod that svcproxy reads, kept in place of the decoded
//! Pod: k8s-openapi's `Pod` takes 2 KiB whatever it holds (its spec and
//! status are inline), and a Pods list is the largest input a proxy reads.
//! A Pod is still decoded whole, so every field is type-checked; only this
//! is kept of it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1 as k8s;

/// A Pod as svcproxy reads it: identity, labels, ports and status.
#[derive(Clone, Debug, Default)]
pub struct Pod {
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// `metadata.deletionTimestamp` is set: the Pod is terminating.
    pub deleting: bool,
    /// `spec.nodeName`.
    pub node_name: Option<String>,
    /// `spec.containers[i].ports`, container by container.
    pub containers: Vec<Vec<k8s::ContainerPort>>,
    /// `spec.initContainers[i].ports` of the sidecars (init containers
    /// that keep running: `restartPolicy: Always`), with their index.
    pub sidecars: Vec<(usize, Vec<k8s::ContainerPort>)>,
    pub status: Option<Status>,
}

/// `status` of a Pod, as far as svcproxy reads it.
#[derive(Clone, Debug, Default)]
pub struct Status {
    pub pod_ip: Option<String>,
    /// `status.podIPs[].ip`: one per family on a dual-stack cluster.
    pub pod_ips: Vec<String>,
    pub phase: Option<String>,
    /// Each condition's `type` and `status`.
    pub conditions: Vec<(String, String)>,
}

// === impl Pod ===

impl From<k8s::Pod> for Pod {
    fn from(pod: k8s::Pod) -> Self {
        let meta = pod.metadata;
        let spec = pod.spec.unwrap_or_default();
        let ports = |c: k8s::Container| c.ports.unwrap_or_default();
        let sidecars = spec.init_containers.unwrap_or_default().into_iter().enumerate();
        Pod {
            name: meta.name,
            namespace: meta.namespace,
            labels: meta.labels.unwrap_or_default(),
            deleting: meta.deletion_timestamp.is_some(),
            node_name: spec.node_name,
            containers: spec.containers.into_iter().map(ports).collect(),
            sidecars: sidecars
                .filter(|(_, c)| c.restart_policy.as_deref() == Some("Always"))
                .map(|(i, c)| (i, ports(c)))
                .collect(),
            status: pod.status.map(|s| Status {
                pod_ip: s.pod_ip,
                pod_ips: s.pod_ips.unwrap_or_default().into_iter().map(|p| p.ip).collect(),
                phase: s.phase,
                conditions: s
                    .conditions
                    .unwrap_or_default()
                    .into_iter()
                    .map(|c| (c.type_, c.status))
                    .collect(),
            }),
        }
    }
}
