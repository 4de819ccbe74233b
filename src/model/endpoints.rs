//! Validation of the objects that carry endpoints: `EndpointSlice`,
//! `Endpoints` and `Pod`, each normalised to addresses and named ports.
//!
//! The results are kept across rebuilds while their object is unchanged
//! (see `memo`), so they own what they need; repeated names are shared.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::discovery::v1 as discovery;
use rustc_hash::FxHashSet;

use super::family::Family;
use super::field::{self, Fields};
use super::names::Names;
use super::service::port_number;
use super::topology::{self, Hints};
use super::{Error, Protocol, ServiceId};
use crate::manifest::{self, FieldPath, Kind, ObjectKey, Origin};

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// The API server's bounds on an EndpointSlice (its discovery
/// validation): endpoints, ports, and addresses of one endpoint.
pub const MAX_SLICE_ENDPOINTS: usize = 1000;
pub const MAX_SLICE_PORTS: usize = 100;
pub const MAX_ENDPOINT_ADDRESSES: usize = 100;

/// One endpoint address with its conditions (EndpointSlice semantics).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Address {
    pub ip: IpAddr,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
    /// Shared: a cluster's endpoints name a handful of nodes.
    pub node_name: Option<Arc<str>>,
    /// An EndpointSlice endpoint's topology hints.
    pub hints: Option<Arc<Hints>>,
}

/// A named port of an endpoint set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointPort {
    /// Shared with the ServicePorts of that name, so matching them is a
    /// pointer comparison.
    pub name: Arc<str>,
    pub port: u16,
    pub protocol: Protocol,
}

/// Addresses that all listen on the same ports: one EndpointSlice, or one
/// subset of an Endpoints object.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subset {
    pub addresses: Vec<Address>,
    pub ports: Vec<EndpointPort>,
}

/// The endpoints of one Service from its Endpoints object.
#[derive(Clone, Debug)]
pub struct EndpointSet {
    pub service: ServiceId,
    pub subsets: Vec<Subset>,
}

/// The endpoints of one Service from one of its EndpointSlices.
#[derive(Clone, Debug)]
pub struct Slice {
    pub service: ServiceId,
    pub subset: Subset,
}

/// A validated Pod: what selection and named-port resolution need.
#[derive(Clone, Debug)]
pub struct PodInfo {
    pub namespace: Arc<str>,
    pub labels: BTreeMap<String, String>,
    /// `status.podIP`, then the address of the other family in
    /// `status.podIPs` (dual-stack); a Pod without one is not an endpoint.
    pub addresses: Vec<Address>,
    pub ports: Vec<EndpointPort>,
}

/// Validates an EndpointSlice; `None` when it belongs to no Service or
/// carries FQDN addresses (not proxied).
pub(crate) fn slice(
    raw: &manifest::EndpointSlice,
    key: &ObjectKey,
    origin: &Origin,
    names: &mut Names,
) -> Result<Option<Slice>, Vec<Error>> {
    let (namespace, name) = (&*key.namespace, &*key.name);
    let mut f = Fields::new(origin, Kind::EndpointSlice, namespace, name);
    let family = match raw.address_type.as_str() {
        "IPv4" => Some(false),
        "IPv6" => Some(true),
        "FQDN" => None,
        other => {
            f.unsupported(FieldPath::of("addressType"), other, &["FQDN", "IPv4", "IPv6"]);
            None
        }
    };
    let service = raw.metadata.labels.as_ref().and_then(|l| l.get(SERVICE_NAME_LABEL));
    // The slice as a Service's subset: validated in full, kept only when it
    // names a Service and carries IPs.
    let subset = Subset {
        ports: slice_ports(raw.ports.as_deref().unwrap_or_default(), &mut f, names),
        addresses: slice_addresses(raw, family, &mut f, names),
    };
    let set = match (family, service) {
        (Some(_), Some(service)) => Some(Slice {
            service: ServiceId { namespace: names.get(namespace), name: names.get(service) },
            subset,
        }),
        _ => None,
    };
    f.finish(set)
}

/// The valid ports of a slice; a nil port means "all ports" and cannot be
/// proxied to. As the API server: at most [`MAX_SLICE_PORTS`] (past it
/// nothing else is checked), names unique and DNS-1123 labels.
fn slice_ports(
    raw: &[discovery::EndpointPort],
    f: &mut Fields<'_>,
    names: &mut Names,
) -> Vec<EndpointPort> {
    if raw.len() > MAX_SLICE_PORTS {
        f.too_many(FieldPath::of("ports"), raw.len(), MAX_SLICE_PORTS);
        return Vec::new();
    }
    let mut seen: FxHashSet<&str> = FxHashSet::default();
    let mut ports = Vec::with_capacity(raw.len());
    for (i, port) in raw.iter().enumerate() {
        let at = || FieldPath::of("ports").index(i);
        let name = port.name.as_deref().unwrap_or_default();
        if !name.is_empty() && !field::is_dns1123_label(name) {
            f.invalid_str(at().field("name"), name, field::DNS1123_LABEL);
        }
        if !seen.insert(name) {
            f.duplicate(at().field("name"), format_args!("{name:?}"));
        }
        let Some(number) = port.port else { continue };
        let protocol = Protocol::parse(f, port.protocol.as_deref(), || at().field("protocol"));
        if let Some(number) = port_number(f, &at, "port", number) {
            ports.push(EndpointPort { name: names.get(name), port: number, protocol });
        }
    }
    ports
}

/// The valid addresses of a slice: the first of each endpoint (as
/// kube-proxy takes it), of the slice's family (`Some(true)`: IPv6). As
/// the API server: at most [`MAX_SLICE_ENDPOINTS`] endpoints (past it
/// nothing else is checked), each of 1 to [`MAX_ENDPOINT_ADDRESSES`]
/// addresses.
fn slice_addresses(
    raw: &manifest::EndpointSlice,
    family: Option<bool>,
    f: &mut Fields<'_>,
    names: &mut Names,
) -> Vec<Address> {
    if raw.endpoints.len() > MAX_SLICE_ENDPOINTS {
        f.too_many(FieldPath::of("endpoints"), raw.endpoints.len(), MAX_SLICE_ENDPOINTS);
        return Vec::new();
    }
    let mut addresses = Vec::with_capacity(raw.endpoints.len());
    for (i, endpoint) in raw.endpoints.iter().enumerate() {
        let at = || FieldPath::of("endpoints").index(i).field("addresses");
        if endpoint.addresses.len() > MAX_ENDPOINT_ADDRESSES {
            f.too_many(at(), endpoint.addresses.len(), MAX_ENDPOINT_ADDRESSES);
            continue;
        }
        let Some(text) = endpoint.addresses.first() else {
            f.required_because(at(), "must contain at least 1 address");
            continue;
        };
        let Some(ip) = field::parse_ip(text) else {
            f.invalid_str(at().index(0), text, field::IP_ADDRESS);
            continue;
        };
        if family.is_some_and(|v6| v6 != ip.is_ipv6()) {
            let why = format!("must be an {} address", raw.address_type);
            f.invalid_str(at().index(0), text, &why);
            continue;
        }
        addresses.push(slice_address(ip, endpoint, names));
    }
    addresses
}

fn slice_address(ip: IpAddr, endpoint: &manifest::Endpoint, names: &mut Names) -> Address {
    let conditions = endpoint.conditions.as_ref();
    // Unset conditions are read as kube-proxy reads them: `ready` and
    // `serving` true, `terminating` false (so a terminating endpoint with
    // `serving` unset is a fallback, as in kube-proxy).
    let ready = conditions.and_then(|c| c.ready).unwrap_or(true);
    let serving = conditions.and_then(|c| c.serving).unwrap_or(true);
    let terminating = conditions.and_then(|c| c.terminating).unwrap_or(false);
    let node_name = endpoint.node_name.as_deref().map(|n| names.get(n));
    let hints = topology::hints(endpoint.hints.as_deref(), names);
    Address { ip, ready, serving, terminating, node_name, hints }
}

/// Validates a `v1 Endpoints` object.
pub(crate) fn endpoints(
    raw: &manifest::Endpoints,
    key: &ObjectKey,
    origin: &Origin,
    names: &mut Names,
) -> Result<EndpointSet, Vec<Error>> {
    let (namespace, name) = (&*key.namespace, &*key.name);
    let mut f = Fields::new(origin, Kind::Endpoints, namespace, name);
    let raw_subsets = raw.subsets.as_deref().unwrap_or_default();
    let subsets =
        raw_subsets.iter().enumerate().map(|(i, s)| subset(s, i, &mut f, names)).collect();
    let service = ServiceId { namespace: names.get(namespace), name: names.get(name) };
    f.finish(EndpointSet { service, subsets })
}

/// `subsets[i]` of an Endpoints object, as the API server checks it: some
/// address, ready or not; every port named when there are several.
fn subset(
    raw: &manifest::EndpointSubset,
    i: usize,
    f: &mut Fields<'_>,
    names: &mut Names,
) -> Subset {
    let at = || FieldPath::of("subsets").index(i);
    let mut out = Subset::default();
    let ready = raw.addresses.as_deref().unwrap_or_default();
    let not_ready = raw.not_ready_addresses.as_deref().unwrap_or_default();
    if ready.is_empty() && not_ready.is_empty() {
        f.required_because(at(), "must specify `addresses` or `notReadyAddresses`");
    }
    out.addresses.reserve(ready.len() + not_ready.len());
    for (ready, key, list) in [(true, "addresses", ready), (false, "notReadyAddresses", not_ready)]
    {
        for (j, address) in list.iter().enumerate() {
            match field::parse_ip(&address.ip) {
                Some(ip) => out.addresses.push(Address {
                    ip,
                    ready,
                    serving: ready,
                    terminating: false,
                    node_name: address.node_name.as_deref().map(|n| names.get(n)),
                    hints: None,
                }),
                None => {
                    let path = at().field(key).index(j).field("ip");
                    f.invalid_str(path, &address.ip, field::IP_ADDRESS);
                }
            }
        }
    }
    let ports = raw.ports.as_deref().unwrap_or_default();
    for (j, port) in ports.iter().enumerate() {
        let path = || at().field("ports").index(j);
        let name = port.name.as_deref().unwrap_or_default();
        if name.is_empty() && ports.len() > 1 {
            f.required(path().field("name"));
        } else if !name.is_empty() && !field::is_dns1123_label(name) {
            f.invalid_str(path().field("name"), name, field::DNS1123_LABEL);
        }
        let protocol = Protocol::parse(f, port.protocol.as_deref(), || path().field("protocol"));
        if let Some(number) = port_number(f, &path, "port", port.port) {
            out.ports.push(EndpointPort { name: names.get(name), port: number, protocol });
        }
    }
    out
}

/// Validates a Pod; a Pod without `status.podIP` is valid, just not an endpoint.
pub(crate) fn pod(
    raw: &manifest::Pod,
    key: &ObjectKey,
    origin: &Origin,
    names: &mut Names,
) -> Result<PodInfo, Vec<Error>> {
    let (namespace, name) = (&*key.namespace, &*key.name);
    let mut f = Fields::new(origin, Kind::Pod, namespace, name);
    if name.is_empty() {
        f.required(FieldPath::of("metadata.name"));
    }
    let mut ports = Vec::new();
    // Sidecars (init containers that keep running) serve ports too, after
    // the containers: Kubernetes' `FindPort` order for named targetPorts.
    let all = raw
        .containers
        .iter()
        .enumerate()
        .map(|(i, c)| ("spec.containers", i, c))
        .chain(raw.sidecars.iter().map(|(i, c)| ("spec.initContainers", *i, c)));
    for (list, i, container) in all {
        for (j, port) in container.iter().enumerate() {
            let at = || FieldPath::of(list).index(i).field("ports").index(j);
            let protocol =
                Protocol::parse(&mut f, port.protocol.as_deref(), || at().field("protocol"));
            if let Some(number) = port_number(&mut f, &at, "containerPort", port.container_port) {
                let name = names.get(port.name.as_deref().unwrap_or_default());
                ports.push(EndpointPort { name, port: number, protocol });
            }
        }
    }
    let addresses = pod_address(&mut f, raw, names)
        .map(|first| pod_addresses(&mut f, raw, first))
        .unwrap_or_default();
    let labels = raw.labels.clone();
    f.finish(PodInfo { namespace: names.get(namespace), labels, addresses, ports })
}

fn pod_address(f: &mut Fields<'_>, raw: &manifest::Pod, names: &mut Names) -> Option<Address> {
    let status = raw.status.as_ref()?;
    let text = status.pod_ip.as_deref().filter(|s| !s.is_empty())?;
    let Some(ip) = field::parse_ip(text) else {
        f.invalid_str(FieldPath::of("status.podIP"), text, field::IP_ADDRESS);
        return None;
    };
    // Finished Pods are never endpoints, whatever their conditions say.
    let phase = status.phase.as_deref().unwrap_or("");
    if matches!(phase, "Succeeded" | "Failed") {
        return None;
    }
    let conditions = &status.conditions;
    let ready = match conditions.iter().find(|(kind, _)| kind == "Ready") {
        Some((_, status)) => status == "True",
        None => conditions.is_empty() && phase == "Running",
    };
    let terminating = raw.deleting;
    Some(Address {
        ip,
        ready: ready && !terminating,
        serving: ready,
        terminating,
        node_name: raw.node_name.as_deref().map(|n| names.get(n)),
        hints: None,
    })
}

/// A Pod's addresses: `first` (its `status.podIP`, conditions read), then
/// the one of the other family in `status.podIPs`, with the same
/// conditions. The API server allows at most one per family, `podIPs[0]`
/// being `podIP`.
fn pod_addresses(f: &mut Fields<'_>, raw: &manifest::Pod, first: Address) -> Vec<Address> {
    let listed = raw.status.as_ref().map(|s| s.pod_ips.as_slice()).unwrap_or_default();
    let mut out = vec![first];
    for (i, pod_ip) in listed.iter().enumerate() {
        let Some(ip) = field::parse_ip(pod_ip) else {
            let path = FieldPath::of("status.podIPs").index(i).field("ip");
            f.invalid_str(path, pod_ip, field::IP_ADDRESS);
            continue;
        };
        if out.iter().all(|a| Family::of(a.ip) != Family::of(ip)) {
            out.push(Address { ip, ..out[0].clone() });
        }
    }
    out
}
