//! The Node this proxy runs on (`--node-name`): its zone, for topology
//! hints, and whether it is being taken out of service, for `/healthz`.

use std::sync::Arc;

use k8s_openapi::api::core::v1 as core;

use super::names::Names;

/// The label that names a Node's zone.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// The taint the cluster autoscaler puts on a Node it is about to remove.
pub const SCALE_DOWN_TAINT: &str = "ToBeDeletedByClusterAutoscaler";

/// What the proxy reads of a Node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    pub name: Arc<str>,
    /// The `topology.kubernetes.io/zone` label.
    pub zone: Option<Arc<str>>,
    /// Why the Node is leaving, if it is: load balancers should stop
    /// sending to it before its pods go.
    pub leaving: Option<Leaving>,
}

/// Why a Node is being taken out of service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leaving {
    /// `metadata.deletionTimestamp` is set.
    Deleted,
    /// The cluster autoscaler's `ToBeDeletedByClusterAutoscaler` taint.
    ScaledDown,
}

/// Reads a Node; nothing in it can make it invalid for the proxy.
pub(crate) fn node(raw: &core::Node, names: &mut Names) -> NodeInfo {
    let meta = &raw.metadata;
    let zone = meta.labels.as_ref().and_then(|l| l.get(ZONE_LABEL)).map(|z| names.get(z));
    let tainted = raw
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default()
        .iter()
        .any(|t| t.key == SCALE_DOWN_TAINT);
    let leaving = if meta.deletion_timestamp.is_some() {
        Some(Leaving::Deleted)
    } else {
        tainted.then_some(Leaving::ScaledDown)
    };
    let name = names.get(meta.name.as_deref().unwrap_or_default());
    NodeInfo { name, zone, leaving }
}

// === impl Leaving ===

impl Leaving {
    /// Why, as `/healthz` and the log say it.
    pub fn as_str(self) -> &'static str {
        match self {
            Leaving::Deleted => "the Node is being deleted",
            Leaving::ScaledDown => "the Node is tainted ToBeDeletedByClusterAutoscaler",
        }
    }
}
