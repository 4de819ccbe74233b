//! One pass over the model: every Frontend of every proxied ServicePort,
//! with the metric children its connections will count into.

use std::collections::hash_map::Entry;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::family;
use super::{Cursor, Frontend, FrontendKind, HealthCheck, Mode, Route, RouteEndpoint, Snapshot};
use crate::metrics::{EndpointStats, InUse, Metrics, PortKey, PortStats};
use crate::model::{
    Endpoint, Family, Model, Protocol, Resolved, ServiceId, ServicePort, Topology, choose, usable,
};

/// Where this node is: NodePort addresses and the name `Local` policies
/// keep endpoints of.
struct Node<'a> {
    ips: &'a [IpAddr],
    name: &'a str,
    /// The `topology.kubernetes.io/zone` of the Node named `name`, when
    /// one was read: topology hints are followed for it.
    zone: Option<&'a str>,
    /// `--http-by-port-name`.
    http_by_port_name: bool,
}

/// Where a build's Routes count their traffic (`None`: nowhere exported).
type Counting<'a> = Option<(&'a Metrics, &'a InUse)>;

pub(super) fn build(
    model: Model,
    previous: &Snapshot,
    node_ips: &[IpAddr],
    node_name: &str,
    metrics: Counting<'_>,
) -> Snapshot {
    let zone = model.node.as_ref().and_then(|n| n.zone.clone());
    let node = Node {
        ips: node_ips,
        name: node_name,
        zone: zone.as_deref(),
        http_by_port_name: model.http_by_port_name,
    };
    let (routes, mut conflicts) = routes(&model.services, &node, previous, metrics);
    let health_checks = health_checks(&model.services, &node, &routes, &mut conflicts);
    let generation = previous.generation + 1;
    Snapshot {
        generation,
        routes,
        health_checks,
        services: model.services,
        conflicts,
        node_name: node_name.into(),
        node: model.node,
    }
}

/// Every Route of `services`, and the frontends two of them claimed.
fn routes(
    services: &[Resolved],
    node: &Node<'_>,
    previous: &Snapshot,
    metrics: Counting<'_>,
) -> (FxHashMap<Frontend, Arc<Route>>, Vec<String>) {
    let mut routes = FxHashMap::with_capacity_and_hasher(services.len() * 2, Default::default());
    let mut conflicts = Vec::new();
    // A table that counts nowhere is only listed (`check`), never served:
    // its ports share one set of counters, not 344 bytes each.
    let listed = Arc::new(PortStats::new(PortKey {
        service: ServiceId { namespace: Arc::from(""), name: Arc::from("") },
        port: Arc::from(""),
    }));
    for service in services.iter().filter(|s| s.skip.is_none()) {
        for (port, endpoints) in service.ports() {
            // SCTP is listed by `check`, not proxied.
            if port.protocol == Protocol::Sctp {
                continue;
            }
            let counted = match metrics {
                Some((metrics, in_use)) => metrics.port(&service.service.id, &port.label, in_use),
                None => listed.clone(),
            };
            let stats = PortBuild::new(service, port, endpoints, node, metrics, counted);
            for (frontend, route) in stats.routes(node, previous) {
                match routes.entry(frontend) {
                    Entry::Vacant(v) => {
                        v.insert(route);
                    }
                    Entry::Occupied(o) => conflicts.push(format!(
                        "{frontend}: claimed by {} and {}; {} keeps it",
                        o.get().service,
                        route.service,
                        o.get().service
                    )),
                }
            }
        }
    }
    (routes, conflicts)
}

/// The healthCheckNodePort of each Service that has one, on every node
/// address; a port a Route already holds stays the Route's.
fn health_checks(
    services: &[Resolved],
    node: &Node<'_>,
    routes: &FxHashMap<Frontend, Arc<Route>>,
    conflicts: &mut Vec<String>,
) -> FxHashMap<Frontend, HealthCheck> {
    let mut checks = FxHashMap::default();
    for service in services.iter().filter(|s| s.skip.is_none()) {
        let Some(port) = service.service.health_check_node_port else { continue };
        // Each family answers for its own endpoints, as kube-proxy's
        // proxier of that family does: a dual-stack pod is one endpoint of
        // each.
        let families = family::of_service(service.cluster_ips());
        let each = families.into_iter().flat_map(|f| {
            let check =
                HealthCheck { service: service.service.id.clone(), local: local(service, node, f) };
            family::addresses(node.ips, f).map(move |ip| (ip, check.clone()))
        });
        for (ip, check) in each {
            let frontend = Frontend { addr: SocketAddr::new(*ip, port), protocol: Protocol::Tcp };
            let holder = routes.get(&frontend).map(|r| &r.service);
            let holder = holder.or_else(|| checks.get(&frontend).map(|c: &HealthCheck| &c.service));
            match holder {
                Some(holder) => conflicts.push(format!(
                    "{frontend}: claimed by {holder} and by {} (healthCheckNodePort); {holder} keeps it",
                    check.service
                )),
                None => {
                    checks.insert(frontend, check.clone());
                }
            }
        }
    }
    checks
}

/// Ready endpoints of `service` in `family` on this node, counted once
/// each whatever ports they serve: what kube-proxy reports as
/// `localEndpoints`.
fn local(service: &Resolved, node: &Node<'_>, family: Family) -> usize {
    let mut ips: Vec<IpAddr> = service
        .ports()
        .flat_map(|(_, endpoints)| endpoints)
        .filter(|e| e.ready && e.node_name.as_deref() == Some(node.name))
        .filter(|e| Family::of(e.addr.ip()) == family)
        .map(|e| e.addr.ip())
        .collect();
    ips.sort_unstable();
    ips.dedup();
    ips.len()
}

/// Everything the Routes of one ServicePort share.
struct PortBuild<'a> {
    service: &'a Resolved,
    port: &'a ServicePort,
    endpoints: &'a [Endpoint],
    mode: Mode,
    stats: Arc<PortStats>,
    metrics: Counting<'a>,
}

impl<'a> PortBuild<'a> {
    fn new(
        service: &'a Resolved,
        port: &'a ServicePort,
        endpoints: &'a [Endpoint],
        node: &Node<'_>,
        metrics: Counting<'a>,
        stats: Arc<PortStats>,
    ) -> Self {
        let mode = match port.protocol {
            Protocol::Udp => Mode::Udp,
            _ => Mode::of(port, node.http_by_port_name),
        };
        match mode {
            Mode::Http(_) => stats.serve_http(),
            Mode::Udp => stats.serve_udp(),
            Mode::Tcp => {}
        }
        Self { service, port, endpoints, mode, stats, metrics }
    }

    /// The port's Routes: ClusterIPs under `internalTrafficPolicy`; external
    /// IPs, LoadBalancer ingress IPs and NodePorts under
    /// `externalTrafficPolicy`, one Route per kind of frontend, all sharing
    /// the round-robin cursor the port had in `previous`.
    fn routes(&self, node: &Node<'_>, previous: &Snapshot) -> Vec<(Frontend, Arc<Route>)> {
        let spec = &self.service.service;
        let (port, protocol) = (self.port.port, self.port.protocol);
        let node_ports = match self.port.node_port {
            Some(node_port) => (node.ips, node_port),
            None => (&[][..], 0),
        };
        // Each kind of frontend: its policy, its addresses, its port number.
        let kinds = [
            (FrontendKind::ClusterIp, spec.internal_local, self.service.cluster_ips(), port),
            (FrontendKind::ExternalIp, spec.external_local, &spec.external_ips[..], port),
            (FrontendKind::LoadBalancer, spec.external_local, &spec.ingress_ips[..], port),
            (FrontendKind::NodePort, spec.external_local, node_ports.0, node_ports.1),
        ];
        let frontend =
            |ip: &IpAddr, number| Frontend { addr: SocketAddr::new(*ip, number), protocol };
        let all =
            kinds.iter().flat_map(|(_, _, ips, n)| ips.iter().map(move |ip| frontend(ip, *n)));
        let cursor = self.carried(previous, all).unwrap_or_default();
        let mut out = Vec::with_capacity(kinds.iter().map(|(_, _, ips, _)| ips.len()).sum());
        // One Route per kind and family: addresses of a family the Service
        // has no ClusterIP of are not served (kube-proxy ignores them).
        let families = family::of_service(self.service.cluster_ips());
        for (kind, local, ips, number) in kinds {
            for &f in &families {
                let mut ips = family::addresses(ips, f).peekable();
                if ips.peek().is_some() {
                    let route = self.route(kind, local, f, node, &cursor);
                    out.extend(ips.map(|ip| (frontend(ip, number), route.clone())));
                }
            }
        }
        out
    }

    /// The cursor of this port's Routes in `previous`, found through the
    /// first of its frontends that `previous` routed for the same port.
    fn carried(
        &self,
        previous: &Snapshot,
        mut frontends: impl Iterator<Item = Frontend>,
    ) -> Option<Arc<Cursor>> {
        let (id, label) = (&self.service.service.id, &self.port.label);
        frontends.find_map(|f| {
            let route = previous.route(&f)?;
            (route.service == *id && route.port == *label).then(|| route.cursor.clone())
        })
    }

    fn route(
        &self,
        kind: FrontendKind,
        local: bool,
        family: Family,
        node: &Node<'_>,
        cursor: &Arc<Cursor>,
    ) -> Arc<Route> {
        let spec = &self.service.service;
        let same_family = family::endpoints(self.endpoints, family);
        // Hints are judged per family, as kube-proxy runs a proxier per
        // family; `Local` wins over them.
        let topology = match local {
            true => Topology::Any,
            false => choose(&same_family, node.name, node.zone).topology,
        };
        let endpoints = usable(&same_family, local.then_some(node.name), &topology);
        let routed =
            |e: &Endpoint, stats| RouteEndpoint { addr: e.addr, terminating: !e.ready, stats };
        let endpoints = match self.metrics {
            Some((metrics, in_use)) => metrics.endpoints(&self.stats, in_use, |stats| {
                endpoints.map(|e| routed(e, stats(e.addr))).collect()
            }),
            // Nothing counts (`check`): one set of counters for all, not
            // 100-odd bytes an endpoint.
            None => {
                let idle = Arc::new(EndpointStats::default());
                endpoints.map(|e| routed(e, idle.clone())).collect()
            }
        };
        Arc::new(Route {
            service: spec.id.clone(),
            port: self.port.label.clone(),
            kind,
            mode: self.mode,
            endpoints,
            affinity: spec.affinity,
            request_timeout: spec.annotations.request_timeout,
            policy: spec.annotations.policy,
            udp_responses: spec.annotations.udp_responses,
            topology,
            source_ranges: (kind == FrontendKind::LoadBalancer && !spec.source_ranges.is_empty())
                .then(|| Arc::new(spec.source_ranges.clone())),
            cursor: cursor.clone(),
            stats: self.stats.clone(),
        })
    }
}
