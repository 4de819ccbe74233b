//! The parts of an EndpointSlice and of a v1 Endpoints object that
//! svcproxy reads, kept in place of the decoded objects (as `pod.rs` does
//! for Pods). k8s-openapi's endpoint is 352 bytes whatever it holds (its
//! `targetRef`, `deprecatedTopology` and `zone` are inline), an Endpoints
//! address 240, for some 25 bytes of YAML; a cluster's endpoints are the
//! bulk of what a proxy keeps. From a file, each endpoint or address is
//! decoded as k8s-openapi's type and slimmed at once (`read.rs`); the API
//! server's objects are decoded whole by the watcher and slimmed after.
//! Either way every field is type-checked; only this is kept.

use std::collections::BTreeMap;

mod read;

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::discovery::v1 as discovery;

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

// === impl Endpoint ===

impl From<discovery::Endpoint> for Endpoint {
    fn from(e: discovery::Endpoint) -> Self {
        Endpoint {
            addresses: e.addresses,
            conditions: e.conditions,
            node_name: e.node_name,
            hints: e.hints.map(Box::new),
        }
    }
}

// === impl EndpointSlice ===

/// An object of the API server, decoded whole by the watcher.
impl From<discovery::EndpointSlice> for EndpointSlice {
    fn from(slice: discovery::EndpointSlice) -> Self {
        EndpointSlice {
            metadata: slice.metadata.into(),
            address_type: slice.address_type,
            ports: slice.ports,
            endpoints: fresh(slice.endpoints, Endpoint::from),
        }
    }
}

// === impl EndpointAddress ===

impl From<core::EndpointAddress> for EndpointAddress {
    fn from(a: core::EndpointAddress) -> Self {
        EndpointAddress { ip: a.ip, node_name: a.node_name }
    }
}

/// `items` mapped into a new vector of their number. `collect` would
/// reuse the decoded vector in place, keeping its 352 bytes an item.
fn fresh<T, U>(items: Vec<T>, f: impl FnMut(T) -> U) -> Vec<U> {
    let mut out = Vec::with_capacity(items.len());
    out.extend(items.into_iter().map(f));
    out
}
