//! Endpoints of each ServicePort, and which of them may take traffic.
//!
//! Source, first that exists for the Service: its EndpointSlices, else its
//! Endpoints object, else the Pods its selector matches.

use std::net::SocketAddr;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::ServiceId;
use super::endpoints::{EndpointSet, PodInfo, Slice, Subset};
use super::service::{Service, ServicePort, TargetPort};
use super::topology::{Hints, Topology};

mod sources;

pub use sources::{Listed, Selected, Sources};

/// One pod ip:port a ServicePort may forward to, with its conditions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub addr: SocketAddr,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
    pub node_name: Option<Arc<str>>,
    /// Topology hints, from an EndpointSlice.
    pub hints: Option<Arc<Hints>>,
}

/// Every endpoint-carrying object, indexed for resolution; borrows the
/// validated objects of one model build.
#[derive(Debug, Default)]
pub struct Catalog<'a> {
    /// The subsets of every EndpointSlice of each Service.
    slices: FxHashMap<&'a ServiceId, Slices<'a>>,
    endpoints: FxHashMap<&'a ServiceId, &'a [Subset]>,
    pods: FxHashMap<&'a str, Vec<&'a PodInfo>>,
}

/// The EndpointSlices of one Service: most Services have one, and a list
/// for each would be one more allocation per Service per rebuild.
#[derive(Debug)]
enum Slices<'a> {
    One(&'a Subset),
    Many(Vec<&'a Subset>),
}

// === impl Catalog ===

impl<'a> Catalog<'a> {
    /// A catalog for about `services` Services.
    pub fn with_capacity(services: usize) -> Self {
        Self {
            slices: FxHashMap::with_capacity_and_hasher(services, Default::default()),
            ..Self::default()
        }
    }

    /// Adds one EndpointSlice.
    pub fn add_slice(&mut self, slice: &'a Slice) {
        let subset = &slice.subset;
        self.slices
            .entry(&slice.service)
            .and_modify(|slices| match slices {
                Slices::One(first) => *slices = Slices::Many(vec![*first, subset]),
                Slices::Many(all) => all.push(subset),
            })
            .or_insert(Slices::One(subset));
    }

    pub fn add_endpoints(&mut self, set: &'a EndpointSet) {
        self.endpoints.insert(&set.service, &set.subsets);
    }

    pub fn add_pod(&mut self, pod: &'a PodInfo) {
        self.pods.entry(&pod.namespace).or_default().push(pod);
    }

    /// Every endpoint of `port`, sorted by address, duplicates merged.
    pub fn resolve(&self, service: &Service, port: &ServicePort) -> Vec<Endpoint> {
        let mut found = if let Some(slices) = self.slices.get(&service.id) {
            match slices {
                Slices::One(subset) => subsets(std::iter::once(*subset), port),
                Slices::Many(all) => subsets(all.iter().copied(), port),
            }
        } else if let Some(set) = self.endpoints.get(&service.id) {
            subsets(set.iter(), port)
        } else {
            self.selected_pods(service, port)
        };
        if service.publish_not_ready {
            // Every listed endpoint serves, whatever its source says of its
            // readiness (DESIGN §3). In a cluster the controllers have
            // already marked them ready; hand-written slices have not.
            for endpoint in &mut found {
                endpoint.ready = true;
                endpoint.serving = true;
            }
        }
        // Unstable (a stable sort takes a scratch copy as large as the
        // endpoints, 3.2 MB for 50,000), so the order of one address's
        // listings is set here: the first is the one whose node and hints
        // are kept, a ready one before one that is not, then by node name
        // and hints, whatever order the slices came in.
        found.sort_unstable_by(|a, b| {
            a.addr
                .cmp(&b.addr)
                .then(b.ready.cmp(&a.ready))
                .then_with(|| a.node_name.cmp(&b.node_name))
                .then_with(|| a.hints.cmp(&b.hints))
        });
        found.dedup_by(|later, first| {
            // Several slices may list one endpoint: it is ready if any says so.
            let same = later.addr == first.addr;
            if same {
                first.ready |= later.ready;
                first.serving |= later.serving;
                first.terminating &= later.terminating;
            }
            same
        });
        found
    }

    fn selected_pods(&self, service: &Service, port: &ServicePort) -> Vec<Endpoint> {
        let Some(selector) = &service.selector else {
            return Vec::new();
        };
        let pods = self.pods.get(&*service.id.namespace).map(Vec::as_slice).unwrap_or_default();
        pods.iter()
            .filter(|pod| selects(selector, pod))
            .flat_map(|pod| pod.addresses.iter().map(move |address| (pod, address)))
            .filter_map(|(pod, address)| {
                let number = match &port.target {
                    TargetPort::Number(n) => *n,
                    TargetPort::Name(name) => {
                        let p = pod
                            .ports
                            .iter()
                            .find(|p| *p.name == **name && p.protocol == port.protocol)?;
                        p.port
                    }
                };
                Some(Endpoint {
                    addr: SocketAddr::new(address.ip, number),
                    ready: address.ready,
                    serving: address.serving,
                    terminating: address.terminating,
                    node_name: address.node_name.clone(),
                    hints: None,
                })
            })
            .collect()
    }
}

/// Whether `selector` (label key, value) picks `pod`.
fn selects(selector: &[(String, String)], pod: &PodInfo) -> bool {
    selector.iter().all(|(k, v)| pod.labels.get(k) == Some(v))
}

/// Endpoints of subsets whose port name and protocol match the ServicePort.
fn subsets<'s>(
    subsets: impl Iterator<Item = &'s Subset> + Clone,
    port: &ServicePort,
) -> Vec<Endpoint> {
    let matched = |subset: &'s Subset| {
        let port = subset.ports.iter().find(|p| p.name == port.name && p.protocol == port.protocol);
        port.map(|port| (subset, port))
    };
    // Sized first: a Service's endpoints may be 100,000, and a doubling
    // vector would keep up to twice their room.
    let count = subsets.clone().filter_map(matched).map(|(s, _)| s.addresses.len()).sum();
    let mut out = Vec::with_capacity(count);
    for (subset, matched) in subsets.filter_map(matched) {
        out.extend(subset.addresses.iter().map(|a| Endpoint {
            addr: SocketAddr::new(a.ip, matched.port),
            ready: a.ready,
            serving: a.serving,
            terminating: a.terminating,
            node_name: a.node_name.clone(),
            hints: a.hints.clone(),
        }));
    }
    out
}

/// The endpoints that take traffic, as kube-proxy picks them: with a
/// `Local` policy only those on `node`; the ready ones (under a Cluster
/// policy, only those `topology` allows); if none is ready, the serving and
/// terminating ones, whatever the topology.
pub fn usable<'a>(
    endpoints: &'a [Endpoint],
    local_to: Option<&'a str>,
    topology: &'a Topology,
) -> impl Iterator<Item = &'a Endpoint> {
    let here =
        move |e: &&Endpoint| local_to.is_none_or(|node| e.node_name.as_deref() == Some(node));
    // `choose` only picks a topology some ready endpoint fits, so a ready
    // endpoint here means one the topology allows.
    let fits = move |e: &Endpoint| local_to.is_some() || topology.allows(e);
    let any_ready = endpoints.iter().filter(here).any(|e| e.ready && fits(e));
    endpoints
        .iter()
        .filter(here)
        .filter(move |e| if any_ready { e.ready && fits(e) } else { e.serving && e.terminating })
}

#[cfg(test)]
mod tests;
