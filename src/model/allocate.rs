//! Deterministic allocation of ClusterIPs, NodePorts and healthCheckNodePorts.
//!
//! Every node computes the same answer from the same objects, with no
//! coordination: allocation is a pure function of the set of Services.
//!
//! 1. Services are taken in sorted `namespace/name` order.
//! 2. Explicit values are claimed first; a value already claimed by an
//!    earlier Service rejects the later Service ("provided IP/port is
//!    already allocated", as the API server says).
//! 3. A missing value starts at a stable hash (FNV-1a 64) of
//!    `namespace/name` (ClusterIP), `namespace/name/port/protocol`
//!    (NodePort) or `namespace/name/healthCheckNodePort` inside its range,
//!    and takes the first free slot at or above it, wrapping around.
//!
//! A Service's value therefore moves only when another Service takes its
//! slot first, never because files were read in another order.
//!
//! Services arrive shared with the validation kept for the next rebuild:
//! one that needs a value filled in is copied first, so what is kept stays
//! as written.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ipnet::IpNet;
use rustc_hash::FxHashSet;

use super::family::{Family, FamilyPolicy, ServiceCidrs, Unconfigured};
use super::field::Fields;
use super::service::{ClusterIp, NODE_PORTS, Service, ServiceType};
use super::{Error, Protocol};
use crate::manifest::{FieldPath, Kind, Origin};

/// Fills in missing ClusterIPs, NodePorts and healthCheckNodePorts; returns the Services that keep
/// a consistent allocation and the errors of those rejected. `services` must
/// be sorted by id.
pub(crate) fn allocate(
    services: Vec<Arc<Service>>,
    cidrs: &ServiceCidrs,
) -> (Vec<Arc<Service>>, Vec<Error>) {
    let mut errors = Vec::new();
    let (services, mut taken) = claim_cluster_ips(services, &mut errors);
    let services = claim_node_ports(services, &mut errors, &mut taken);
    let mut out = Vec::with_capacity(services.len());
    for mut service in services {
        match fill_cluster_ips(&service, cidrs, &mut taken) {
            Ok(None) => {}
            Ok(Some(ips)) => Arc::make_mut(&mut service).cluster_ip = ClusterIp::Set(ips),
            Err(e) => {
                let mut f = Fields::new(
                    &service.origin,
                    Kind::Service,
                    &service.id.namespace,
                    &service.id.name,
                );
                f.invalid(e.path, e.value, &e.why);
                errors.extend(f.errors);
                continue;
            }
        }
        out.push(service);
    }
    let mut ports: FxHashSet<(u16, Protocol)> = out.iter().flat_map(|s| claims(s)).collect();
    for service in &mut out {
        if needs_node_ports(service) && service.ports.iter().any(|p| p.node_port.is_none()) {
            let service = Arc::make_mut(service);
            let key = service.id.to_string();
            for port in service.ports.iter_mut().filter(|p| p.node_port.is_none()) {
                let start = fnv1a(&[&key, &port.label, port.protocol.as_str()]);
                port.node_port = free_node_port(start, port.protocol, &mut ports);
            }
        }
        if needs_health_check(service) && service.health_check_node_port.is_none() {
            let service = Arc::make_mut(service);
            let start = fnv1a(&[&service.id.to_string(), "healthCheckNodePort"]);
            service.health_check_node_port = free_node_port(start, Protocol::Tcp, &mut ports);
        }
    }
    (out, errors)
}

/// The node ports a Service names: its nodePorts and its
/// healthCheckNodePort (TCP), which share the range and the node's ports.
fn claims(service: &Service) -> impl Iterator<Item = (u16, Protocol)> + '_ {
    let node_ports = service.ports.iter().filter_map(|p| Some((p.node_port?, p.protocol)));
    node_ports.chain(service.health_check_node_port.map(|p| (p, Protocol::Tcp)))
}

/// A LoadBalancer Service with `externalTrafficPolicy: Local`: the API
/// server gives it a healthCheckNodePort when it has none.
fn needs_health_check(service: &Service) -> bool {
    service.kind == ServiceType::LoadBalancer && service.external_local
}

fn explicit_ips(service: &Service) -> &[IpAddr] {
    match &service.cluster_ip {
        ClusterIp::Set(ips) => ips,
        _ => &[],
    }
}

fn needs_node_ports(service: &Service) -> bool {
    match service.kind {
        ServiceType::NodePort => true,
        ServiceType::LoadBalancer => service.allocate_node_ports,
        _ => false,
    }
}

/// Keeps the first Service (sorted order) that names each explicit
/// ClusterIP; returns them and the addresses they claim.
fn claim_cluster_ips(
    services: Vec<Arc<Service>>,
    errors: &mut Vec<Error>,
) -> (Vec<Arc<Service>>, FxHashSet<IpAddr>) {
    let mut taken = FxHashSet::with_capacity_and_hasher(services.len(), Default::default());
    let kept = services
        .into_iter()
        .filter(|service| {
            let ips = explicit_ips(service);
            if let Some(ip) = ips.iter().find(|ip| taken.contains(*ip)) {
                let mut f = Fields::new(
                    &service.origin,
                    Kind::Service,
                    &service.id.namespace,
                    &service.id.name,
                );
                let why = "provided IP is already allocated";
                f.invalid_str(FieldPath::of("spec.clusterIP"), &ip.to_string(), why);
                errors.extend(f.errors);
                return false;
            }
            taken.extend(ips.iter().copied());
            true
        })
        .collect();
    (kept, taken)
}

/// Keeps the first Service (sorted order) that names each explicit
/// NodePort; a Service rejected here frees its ClusterIPs in `ips`.
fn claim_node_ports(
    services: Vec<Arc<Service>>,
    errors: &mut Vec<Error>,
    ips: &mut FxHashSet<IpAddr>,
) -> Vec<Arc<Service>> {
    let mut taken = FxHashSet::default();
    services
        .into_iter()
        .filter(|service| {
            let mut f = Fields::new(
                &service.origin,
                Kind::Service,
                &service.id.namespace,
                &service.id.name,
            );
            let mut mine = Vec::new();
            for (i, port) in service.ports.iter().enumerate() {
                let Some(node_port) = port.node_port else {
                    continue;
                };
                if taken.contains(&(node_port, port.protocol)) {
                    let path = FieldPath::of("spec.ports").index(i).field("nodePort");
                    f.invalid(path, node_port, "provided port is already allocated");
                }
                mine.push((node_port, port.protocol));
            }
            if let Some(port) = service.health_check_node_port {
                if taken.contains(&(port, Protocol::Tcp)) || mine.contains(&(port, Protocol::Tcp)) {
                    let path = FieldPath::of("spec.healthCheckNodePort");
                    f.invalid(path, port, "provided port is already allocated");
                }
                mine.push((port, Protocol::Tcp));
            }
            if !f.errors.is_empty() {
                errors.extend(f.errors);
                for ip in explicit_ips(service) {
                    ips.remove(ip);
                }
                return false;
            }
            taken.extend(mine);
            true
        })
        .collect()
}

/// The ClusterIPs of `service` once each family it gets has one, in the
/// order of its families; `None` when it already has them all (or is
/// headless).
fn fill_cluster_ips(
    service: &Service,
    cidrs: &ServiceCidrs,
    taken: &mut FxHashSet<IpAddr>,
) -> Result<Option<Vec<IpAddr>>, Unconfigured> {
    // The API server allocated what an object of its holds; a second
    // family it did not give (a Service made before the cluster was
    // dual-stack) is not this proxy's to invent.
    if matches!(service.origin, Origin::Api) {
        return Ok(None);
    }
    let explicit = match &service.cluster_ip {
        ClusterIp::Set(ips) => ips.as_slice(),
        ClusterIp::Allocate => &[],
        ClusterIp::Headless => return Ok(None),
    };
    // Fast path: an address written on a single-stack Service is all it gets.
    if !explicit.is_empty() && service.ip_families.policy == FamilyPolicy::SingleStack {
        return Ok(None);
    }
    let families = service.ip_families.wanted(cidrs, explicit)?;
    if families.len() <= explicit.len() {
        return Ok(None);
    }
    let mut ips = Vec::with_capacity(families.len());
    for family in families {
        if let Some(ip) = explicit.iter().find(|ip| Family::of(**ip) == family) {
            ips.push(*ip);
            continue;
        }
        // `wanted` made sure the family has a pool.
        let cidr = cidrs.get(family);
        let ip = cidr.and_then(|cidr| free_ip(cidr, service, taken));
        ips.push(ip.ok_or_else(|| Unconfigured {
            path: FieldPath::of("spec.clusterIP"),
            value: "\"\"".to_owned(),
            why: match cidr {
                Some(cidr) => format!("no free address left in --service-cidr {cidr}"),
                None => format!("--service-cidr has no {family} CIDR"),
            },
        })?);
    }
    Ok(Some(ips))
}

fn free_ip(cidr: IpNet, service: &Service, taken: &mut FxHashSet<IpAddr>) -> Option<IpAddr> {
    let key = service.id.to_string();
    let (base, size) = host_range(cidr)?;
    let start = u128::from(fnv1a(&[&key])) % size;
    (0..size.min(1 << 24)).find_map(|step| {
        let ip = add(cidr.network(), base + (start + step) % size);
        taken.insert(ip).then_some(ip)
    })
}

/// The first usable offset and how many usable addresses `cidr` has: the
/// network address (and IPv4 broadcast) are never handed out.
fn host_range(cidr: IpNet) -> Option<(u128, u128)> {
    let bits = u32::from(cidr.max_prefix_len() - cidr.prefix_len()).min(64);
    let total = 1u128 << bits;
    let reserved = if cidr.network().is_ipv4() { 2 } else { 1 };
    (total > reserved).then(|| (1, total - reserved))
}

fn add(ip: IpAddr, offset: u128) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => Ipv4Addr::from(u32::from(v4).wrapping_add(offset as u32)).into(),
        IpAddr::V6(v6) => Ipv6Addr::from(u128::from(v6).wrapping_add(offset)).into(),
    }
}

fn free_node_port(
    hash: u64,
    protocol: Protocol,
    taken: &mut FxHashSet<(u16, Protocol)>,
) -> Option<u16> {
    let first = *NODE_PORTS.start();
    let size = u64::from(NODE_PORTS.end() - first) + 1;
    (0..size).find_map(|step| {
        let port = first + ((hash % size + step) % size) as u16;
        taken.insert((port, protocol)).then_some(port)
    })
}

/// FNV-1a 64 over the parts joined by `/`: stable across versions and hosts.
fn fnv1a(parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, part) in parts.iter().enumerate() {
        let sep: &[u8] = if i == 0 { b"" } else { b"/" };
        for byte in sep.iter().chain(part.as_bytes()) {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash
}

#[cfg(test)]
mod tests;
