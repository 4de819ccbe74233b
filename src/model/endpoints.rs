//! Validation of the objects that carry endpoints: `EndpointSlice`,
//! `Endpoints` and `Pod`, each normalised to addresses and named ports.
//!
//! The results are kept across rebuilds while their object is unchanged
//! (see `memo`), so they own what they need; repeated names are shared.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::discovery::v1 as discovery;

use super::family::Family;
use super::field::{self, Fields};
use super::names::Names;
use super::service::port_number;
use super::{Error, Protocol, ServiceId};
use crate::manifest::{FieldPath, Kind, ObjectKey, Origin};

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// One endpoint address with its conditions (EndpointSlice semantics).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Address {
    pub ip: IpAddr,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
    /// Shared: a cluster's endpoints name a handful of nodes.
    pub node_name: Option<Arc<str>>,
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
    raw: &discovery::EndpointSlice,
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
/// proxied to.
fn slice_ports(
    raw: &[discovery::EndpointPort],
    f: &mut Fields<'_>,
    names: &mut Names,
) -> Vec<EndpointPort> {
    let mut ports = Vec::with_capacity(raw.len());
    for (i, port) in raw.iter().enumerate() {
        let Some(number) = port.port else { continue };
        let at = || FieldPath::of("ports").index(i);
        let protocol = Protocol::parse(f, port.protocol.as_deref(), || at().field("protocol"));
        if let Some(number) = port_number(f, &at, "port", number) {
            let name = names.get(port.name.as_deref().unwrap_or_default());
            ports.push(EndpointPort { name, port: number, protocol });
        }
    }
    ports
}

/// The valid addresses of a slice: the first of each endpoint (as
/// kube-proxy takes it), of the slice's family (`Some(true)`: IPv6).
fn slice_addresses(
    raw: &discovery::EndpointSlice,
    family: Option<bool>,
    f: &mut Fields<'_>,
    names: &mut Names,
) -> Vec<Address> {
    let mut addresses = Vec::with_capacity(raw.endpoints.len());
    for (i, endpoint) in raw.endpoints.iter().enumerate() {
        let at = || FieldPath::of("endpoints").index(i).field("addresses");
        let Some(text) = endpoint.addresses.first() else {
            f.required(at());
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

fn slice_address(ip: IpAddr, endpoint: &discovery::Endpoint, names: &mut Names) -> Address {
    let conditions = endpoint.conditions.as_ref();
    // Unset conditions are read as kube-proxy reads them: `ready` and
    // `serving` true, `terminating` false (so a terminating endpoint with
    // `serving` unset is a fallback, as in kube-proxy).
    let ready = conditions.and_then(|c| c.ready).unwrap_or(true);
    let serving = conditions.and_then(|c| c.serving).unwrap_or(true);
    let terminating = conditions.and_then(|c| c.terminating).unwrap_or(false);
    let node_name = endpoint.node_name.as_deref().map(|n| names.get(n));
    Address { ip, ready, serving, terminating, node_name }
}

/// Validates a `v1 Endpoints` object.
pub(crate) fn endpoints(
    raw: &core::Endpoints,
    key: &ObjectKey,
    origin: &Origin,
    names: &mut Names,
) -> Result<EndpointSet, Vec<Error>> {
    let (namespace, name) = (&*key.namespace, &*key.name);
    let mut f = Fields::new(origin, Kind::Endpoints, namespace, name);
    let mut subsets = Vec::new();
    for (i, subset) in raw.subsets.as_deref().unwrap_or_default().iter().enumerate() {
        let at = || FieldPath::of("subsets").index(i);
        let mut out = Subset::default();
        for (ready, key, list) in [
            (true, "addresses", &subset.addresses),
            (false, "notReadyAddresses", &subset.not_ready_addresses),
        ] {
            for (j, address) in list.as_deref().unwrap_or_default().iter().enumerate() {
                let path = || at().field(key).index(j).field("ip");
                match field::parse_ip(&address.ip) {
                    Some(ip) => out.addresses.push(Address {
                        ip,
                        ready,
                        serving: ready,
                        terminating: false,
                        node_name: address.node_name.as_deref().map(|n| names.get(n)),
                    }),
                    None => f.invalid_str(path(), &address.ip, field::IP_ADDRESS),
                }
            }
        }
        for (j, port) in subset.ports.as_deref().unwrap_or_default().iter().enumerate() {
            let path = || at().field("ports").index(j);
            let protocol =
                Protocol::parse(&mut f, port.protocol.as_deref(), || path().field("protocol"));
            if let Some(number) = port_number(&mut f, &path, "port", port.port) {
                let name = names.get(port.name.as_deref().unwrap_or_default());
                out.ports.push(EndpointPort { name, port: number, protocol });
            }
        }
        subsets.push(out);
    }
    let service = ServiceId { namespace: names.get(namespace), name: names.get(name) };
    f.finish(EndpointSet { service, subsets })
}

/// Validates a Pod; a Pod without `status.podIP` is valid, just not an endpoint.
pub(crate) fn pod(
    raw: &core::Pod,
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
    let spec = raw.spec.as_ref();
    let containers = spec.map(|s| s.containers.as_slice()).unwrap_or_default();
    // Sidecars (init containers that keep running) serve ports too, after
    // the containers: Kubernetes' `FindPort` order for named targetPorts.
    let sidecars = spec.and_then(|s| s.init_containers.as_deref()).unwrap_or_default();
    let all = containers.iter().enumerate().map(|(i, c)| ("spec.containers", i, c)).chain(
        sidecars
            .iter()
            .enumerate()
            .filter(|(_, c)| c.restart_policy.as_deref() == Some("Always"))
            .map(|(i, c)| ("spec.initContainers", i, c)),
    );
    for (list, i, container) in all {
        for (j, port) in container.ports.as_deref().unwrap_or_default().iter().enumerate() {
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
    let labels = raw.metadata.labels.clone().unwrap_or_default();
    f.finish(PodInfo { namespace: names.get(namespace), labels, addresses, ports })
}

fn pod_address(f: &mut Fields<'_>, raw: &core::Pod, names: &mut Names) -> Option<Address> {
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
    let conditions = status.conditions.as_deref().unwrap_or_default();
    let ready = match conditions.iter().find(|c| c.type_ == "Ready") {
        Some(c) => c.status == "True",
        None => conditions.is_empty() && phase == "Running",
    };
    let terminating = raw.metadata.deletion_timestamp.is_some();
    Some(Address {
        ip,
        ready: ready && !terminating,
        serving: ready,
        terminating,
        node_name: raw.spec.as_ref().and_then(|s| s.node_name.as_deref()).map(|n| names.get(n)),
    })
}

/// A Pod's addresses: `first` (its `status.podIP`, conditions read), then
/// the one of the other family in `status.podIPs`, with the same
/// conditions. The API server allows at most one per family, `podIPs[0]`
/// being `podIP`.
fn pod_addresses(f: &mut Fields<'_>, raw: &core::Pod, first: Address) -> Vec<Address> {
    let listed = raw.status.as_ref().and_then(|s| s.pod_ips.as_deref()).unwrap_or_default();
    let mut out = vec![first];
    for (i, pod_ip) in listed.iter().enumerate() {
        let Some(ip) = field::parse_ip(&pod_ip.ip) else {
            let path = FieldPath::of("status.podIPs").index(i).field("ip");
            f.invalid_str(path, &pod_ip.ip, field::IP_ADDRESS);
            continue;
        };
        if out.iter().all(|a| Family::of(a.ip) != Family::of(ip)) {
            out.push(Address { ip, ..out[0].clone() });
        }
    }
    out
}
