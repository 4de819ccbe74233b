//! The parts of an EndpointSlice and of a v1 Endpoints object that
//! svcproxy reads, kept in place of the decoded objects (as `pod.rs` does
//! for Pods). k8s-openapi's endpoint is 352 bytes whatever it holds (its
//! `targetRef`, `deprecatedTopology` and `zone` are inline), an Endpoints
//! address 240, for some 25 bytes of YAML; a cluster's endpoints are the
//! bulk of what a proxy keeps. Both kinds are still decoded whole, from a
//! file or from the API server, so every field is type-checked; only this
//! is kept of them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::discovery::v1 as discovery;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// An EndpointSlice as svcproxy reads it.
#[derive(Clone, Debug, Default)]
pub struct EndpointSlice {
    pub metadata: Meta,
    pub address_type: String,
    pub ports: Option<Vec<discovery::EndpointPort>>,
    pub endpoints: Vec<Endpoint>,
}

/// `endpoints[i]` of an EndpointSlice.
#[derive(Clone, Debug, Default)]
pub struct Endpoint {
    pub addresses: Vec<String>,
    pub conditions: Option<discovery::EndpointConditions>,
    pub node_name: Option<String>,
    /// Boxed: few endpoints carry hints.
    pub hints: Option<Box<discovery::EndpointHints>>,
}

/// A v1 Endpoints object as svcproxy reads it.
#[derive(Clone, Debug, Default)]
pub struct Endpoints {
    pub metadata: Meta,
    pub subsets: Option<Vec<EndpointSubset>>,
}

/// `subsets[i]` of an Endpoints object.
#[derive(Clone, Debug, Default)]
pub struct EndpointSubset {
    pub addresses: Option<Vec<EndpointAddress>>,
    pub not_ready_addresses: Option<Vec<EndpointAddress>>,
    pub ports: Option<Vec<core::EndpointPort>>,
}

/// An address of an Endpoints subset.
#[derive(Clone, Debug, Default)]
pub struct EndpointAddress {
    pub ip: String,
    pub node_name: Option<String>,
}

/// The metadata svcproxy reads of either kind: identity, the Service-name
/// label and the trigger-time annotation. Not the API server's
/// `managedFields`, which can outweigh the rest of a slice.
#[derive(Clone, Debug, Default)]
pub struct Meta {
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub labels: Option<BTreeMap<String, String>>,
    pub annotations: Option<BTreeMap<String, String>>,
}

// === impl EndpointSlice ===

impl From<discovery::EndpointSlice> for EndpointSlice {
    fn from(slice: discovery::EndpointSlice) -> Self {
        let endpoint = |e: discovery::Endpoint| Endpoint {
            addresses: e.addresses,
            conditions: e.conditions,
            node_name: e.node_name,
            hints: e.hints.map(Box::new),
        };
        EndpointSlice {
            metadata: slice.metadata.into(),
            address_type: slice.address_type,
            ports: slice.ports,
            endpoints: fresh(slice.endpoints, endpoint),
        }
    }
}

// === impl Endpoints ===

impl From<core::Endpoints> for Endpoints {
    fn from(endpoints: core::Endpoints) -> Self {
        let address =
            |a: core::EndpointAddress| EndpointAddress { ip: a.ip, node_name: a.node_name };
        let addresses = |list: Option<Vec<core::EndpointAddress>>| list.map(|l| fresh(l, address));
        let subset = |s: core::EndpointSubset| EndpointSubset {
            addresses: addresses(s.addresses),
            not_ready_addresses: addresses(s.not_ready_addresses),
            ports: s.ports,
        };
        Endpoints {
            metadata: endpoints.metadata.into(),
            subsets: endpoints.subsets.map(|s| s.into_iter().map(subset).collect()),
        }
    }
}

/// `items` mapped into a new vector of their number. `collect` would
/// reuse the decoded vector in place, keeping its 352 or 240 bytes an item.
fn fresh<T, U>(items: Vec<T>, f: impl FnMut(T) -> U) -> Vec<U> {
    let mut out = Vec::with_capacity(items.len());
    out.extend(items.into_iter().map(f));
    out
}

// === impl Meta ===

impl From<ObjectMeta> for Meta {
    fn from(meta: ObjectMeta) -> Self {
        Meta {
            name: meta.name,
            namespace: meta.namespace,
            labels: meta.labels,
            annotations: meta.annotations,
        }
    }
}
