//! Stage 3, model: Kubernetes objects to validated, defaulted Services and
//! the endpoints of each of their ports.
//!
//! Input: [`manifest::Object`]s. Output: a [`Model`]: every valid Service
//! with its ClusterIP and NodePorts allocated and its endpoints resolved,
//! plus one [`Error`] per invalid field. An invalid object is rejected
//! alone; every other object is still used.
//!
//! The control loop builds again on every change: with a [`Memo`]
//! ([`Model::rebuild`]) an object it saw at the last build is not validated
//! again; allocation and endpoint resolution always see the whole set.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

use crate::manifest::{self, FieldPath, Location, ObjectKey};
use memo::Validated;

mod allocate;
mod annotations;
mod endpoints;
mod family;
mod field;
mod memo;
mod names;
mod node;
mod ranges;
mod resolve;
mod service;
mod topology;

#[cfg(test)]
pub(crate) mod tests;

pub use annotations::{Annotations, LB_POLICY, Policy, REQUEST_TIMEOUT};
pub use endpoints::{
    Address, EndpointPort, EndpointSet, PodInfo, SERVICE_NAME_LABEL, Slice, Subset,
};
pub use family::{Family, FamilyPolicy, IpFamilies, ServiceCidrs};
pub use memo::Memo;
pub use node::{Leaving, NodeInfo, SCALE_DOWN_TAINT, ZONE_LABEL};
pub use ranges::SourceRanges;
pub use resolve::{Catalog, Endpoint, Listed, Selected, Sources, usable};
pub use service::{
    ClusterIp, DEFAULT_AFFINITY_SECONDS, MAX_AFFINITY_SECONDS, NODE_PORTS, Service, ServicePort,
    ServiceType, TargetPort,
};
pub use topology::{Choice, Hints, Ignored, Topology, choose};

/// Services carrying this label are served only by the proxy of that name.
pub const PROXY_NAME_LABEL: &str = "service.kubernetes.io/service-proxy-name";
/// Services carrying this label are headless for kube-proxy.
pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";

/// A Service's identity: `namespace/name`.
// Equality is by text, as the hash is: it only looks at addresses first.
#[allow(clippy::derived_hash_with_manual_eq)]
#[derive(Clone, Debug, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceId {
    pub namespace: Arc<str>,
    pub name: Arc<str>,
}

/// A port's transport protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

/// Settings of the node that shape the model.
#[derive(Clone, Debug)]
pub struct Options {
    /// Pools for Services without `spec.clusterIP`, one per family.
    pub service_cidr: ServiceCidrs,
    /// This node, for `trafficPolicy: Local`.
    pub node_name: String,
    /// `--service-proxy-name`.
    pub service_proxy_name: Option<String>,
    /// `--http-by-port-name`: port names say HTTP too, not only
    /// `appProtocol`.
    pub http_by_port_name: bool,
}

/// Why a valid Service gets no frontends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    /// `clusterIP: None`.
    Headless,
    /// `type: ExternalName` is a DNS alias.
    ExternalName,
    /// Labelled `service.kubernetes.io/headless`.
    HeadlessLabel,
    /// The `service.kubernetes.io/service-proxy-name` rule.
    OtherProxy,
}

/// A valid Service with allocations made and endpoints resolved.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// Shared with the validation kept for the next rebuild, unless
    /// allocation filled something in.
    pub service: Arc<Service>,
    pub skip: Option<Skip>,
    /// All endpoints of each of `service.ports`, in the same order; each
    /// port's sorted by address, each address once.
    pub endpoints: Vec<Vec<Endpoint>>,
    /// When no port has an endpoint, what its sources hold; only from
    /// [`Model::check`] (the control loop never asks).
    pub sources: Option<Box<Sources>>,
}

/// What a build is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Purpose {
    /// One build, nothing kept.
    Once,
    /// One build for `check`, which explains Services without endpoints.
    Check,
    /// One of many (the control loop): validations kept in the memo.
    Rebuild,
}

/// The validated state of every object.
#[derive(Debug, Default)]
pub struct Model {
    /// Sorted by namespace/name.
    pub services: Vec<Resolved>,
    pub errors: Vec<Error>,
    /// [`Options::http_by_port_name`], for the Routes' mode.
    pub http_by_port_name: bool,
    /// The Node named [`Options::node_name`], when one was read.
    pub node: Option<NodeInfo>,
}

/// An invalid field of one object.
#[derive(Clone, Debug, thiserror::Error)]
pub enum Error {
    /// `file:line: namespace/name: path: detail`, or `namespace/name (from
    /// the API server): path: detail`.
    #[error("{}: {path}: {detail}", at.name(&key.namespace, &key.name))]
    Field { at: Location, key: ObjectKey, path: FieldPath, detail: String },
}

// === impl Model ===

impl Model {
    /// Validates every object, allocates and resolves; never fails as a
    /// whole.
    pub fn build<'a>(
        objects: impl IntoIterator<Item = &'a manifest::Object>,
        options: &Options,
    ) -> Self {
        Self::assemble(objects, options, &mut Memo::default(), Purpose::Once)
    }

    /// [`Self::build`] for `svcproxy check`: also says, of every Service
    /// with no endpoint at all, what its sources hold
    /// ([`Resolved::sources`]).
    pub fn check<'a>(
        objects: impl IntoIterator<Item = &'a manifest::Object>,
        options: &Options,
    ) -> Self {
        Self::assemble(objects, options, &mut Memo::default(), Purpose::Check)
    }

    /// [`Self::build`] for a caller that builds again and again (the control
    /// loop): objects that `memo` saw at the last build are not validated
    /// again.
    pub fn rebuild<'a>(
        objects: impl IntoIterator<Item = &'a manifest::Object>,
        options: &Options,
        memo: &mut Memo,
    ) -> Self {
        Self::assemble(objects, options, memo, Purpose::Rebuild)
    }

    fn assemble<'a>(
        objects: impl IntoIterator<Item = &'a manifest::Object>,
        options: &Options,
        memo: &mut Memo,
        purpose: Purpose,
    ) -> Self {
        let entries = memo.validate(objects.into_iter(), purpose == Purpose::Rebuild);
        let mut catalog = Catalog::with_capacity(entries.len() / 2);
        let mut errors = Vec::new();
        let mut services = Vec::with_capacity(entries.len());
        let mut node = None;
        for entry in &entries {
            match entry {
                Ok(Validated::Service(service)) => services.push(service.clone()),
                Ok(Validated::Slice(set)) => set.iter().for_each(|s| catalog.add_slice(s)),
                Ok(Validated::Endpoints(set)) => catalog.add_endpoints(set),
                Ok(Validated::Pod(pod)) => catalog.add_pod(pod),
                Ok(Validated::Node(read)) if *read.name == *options.node_name => {
                    node = Some((**read).clone());
                }
                Ok(Validated::Node(_)) => {}
                Err(e) => errors.extend(e.iter().cloned()),
            }
        }
        // Sorted by id, one Service per id (the API server holds only one).
        services.sort_by(|a, b| a.id.cmp(&b.id));
        services.dedup_by(|later, first| later.id == first.id);
        let (services, allocation_errors) = allocate::allocate(services, &options.service_cidr);
        errors.extend(allocation_errors);
        let mut services: Vec<Resolved> =
            services.into_iter().map(|s| resolve(s, &catalog, options)).collect();
        if purpose == Purpose::Check {
            for resolved in services.iter_mut().filter(|r| r.endpoints.iter().all(Vec::is_empty)) {
                resolved.sources = Some(Box::new(catalog.sources(&resolved.service)));
            }
        }
        Model { services, errors, http_by_port_name: options.http_by_port_name, node }
    }

    /// How many objects were rejected.
    pub fn invalid_objects(&self) -> usize {
        let mut keys: Vec<&ObjectKey> = self.errors.iter().map(Error::key).collect();
        keys.sort();
        keys.dedup();
        keys.len()
    }
}

fn resolve(service: Arc<Service>, catalog: &Catalog<'_>, options: &Options) -> Resolved {
    let skip = skip(&service, options);
    let endpoints = service.ports.iter().map(|p| catalog.resolve(&service, p)).collect();
    Resolved { service, skip, endpoints, sources: None }
}

fn skip(service: &Service, options: &Options) -> Option<Skip> {
    if service.kind == ServiceType::ExternalName {
        return Some(Skip::ExternalName);
    }
    if service.cluster_ip == ClusterIp::Headless {
        return Some(Skip::Headless);
    }
    if service.headless_label {
        return Some(Skip::HeadlessLabel);
    }
    (service.proxy_name != options.service_proxy_name).then_some(Skip::OtherProxy)
}

// === impl Options ===

impl Options {
    /// kube-apiserver's default `--service-cluster-ip-range`.
    pub const DEFAULT_SERVICE_CIDR: ServiceCidrs = ServiceCidrs::single(IpNet::V4(
        match ipnet::Ipv4Net::new(std::net::Ipv4Addr::new(10, 96, 0, 0), 12) {
            Ok(net) => net,
            Err(_) => panic!("a /12 is a valid prefix"),
        },
    ));
}

// === impl Error ===

impl Error {
    /// The object this error rejects.
    pub fn key(&self) -> &ObjectKey {
        match self {
            Error::Field { key, .. } => key,
        }
    }
}

// === impl ServiceId ===

impl ServiceId {
    pub fn new(namespace: &str, name: &str) -> Self {
        Self { namespace: Arc::from(namespace), name: Arc::from(name) }
    }
}

impl PartialEq for ServiceId {
    /// By address first: a build interns ids, so equal ids are most often
    /// one shared string (`Arc<str>`'s own comparison reads the text).
    fn eq(&self, other: &Self) -> bool {
        let same = |a: &Arc<str>, b: &Arc<str>| Arc::ptr_eq(a, b) || **a == **b;
        same(&self.name, &other.name) && same(&self.namespace, &other.namespace)
    }
}

impl fmt::Display for ServiceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

// === impl Protocol ===

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }

    /// Parses `protocol`, defaulting to TCP; reports unsupported values at
    /// the path `at` builds (only then).
    pub(crate) fn parse(
        f: &mut field::Fields<'_>,
        raw: Option<&str>,
        at: impl FnOnce() -> FieldPath,
    ) -> Self {
        match raw.unwrap_or("TCP") {
            "TCP" | "" => Protocol::Tcp,
            "UDP" => Protocol::Udp,
            "SCTP" => Protocol::Sctp,
            other => {
                f.unsupported(at(), other, &["SCTP", "TCP", "UDP"]);
                Protocol::Tcp
            }
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// === impl Resolved ===

impl Resolved {
    /// Each ServicePort (NodePorts filled in) with all its endpoints.
    pub fn ports(&self) -> impl ExactSizeIterator<Item = (&ServicePort, &[Endpoint])> {
        self.service.ports.iter().zip(self.endpoints.iter().map(Vec::as_slice))
    }

    /// The Service's ClusterIPs (empty when headless or ExternalName).
    pub fn cluster_ips(&self) -> &[IpAddr] {
        match &self.service.cluster_ip {
            ClusterIp::Set(ips) => ips,
            _ => &[],
        }
    }
}
