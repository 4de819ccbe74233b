//! One pass over the model: every Frontend of every proxied ServicePort,
//! with the metric children its connections will count into.

use std::collections::hash_map::Entry;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::{App, Frontend, FrontendKind, HealthCheck, Route, Snapshot, Target};
use crate::metrics::{InUse, Metrics, PortStats};
use crate::model::{Endpoint, Model, Protocol, Resolved, ServicePort, usable};

/// Where this node is: NodePort addresses and the name `Local` policies
/// keep endpoints of.
struct Node<'a> {
    ips: &'a [IpAddr],
    name: &'a str,
}

pub(super) fn build(
    model: Model,
    generation: u64,
    node_ips: &[IpAddr],
    node_name: &str,
    metrics: &Metrics,
) -> Snapshot {
    let node = Node { ips: node_ips, name: node_name };
    let in_use = metrics.begin();
    let mut routes =
        FxHashMap::with_capacity_and_hasher(model.services.len() * 2, Default::default());
    let mut conflicts = Vec::new();
    for service in model.services.iter().filter(|s| s.skip.is_none()) {
        for (port, endpoints) in service.ports() {
            // UDP and SCTP are listed by `check`, not proxied yet.
            if port.protocol != Protocol::Tcp {
                continue;
            }
            let mut stats = PortBuild::new(service, port, endpoints, metrics, &in_use);
            for (frontend, route) in stats.routes(&node) {
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
    metrics.retain(in_use);
    let checks = checks(&model.services, &node, &routes, &mut conflicts);
    Snapshot { generation, routes, checks, services: model.services, conflicts }
}

/// The healthCheckNodePort of each Service that has one, on every node
/// address; a port a Route already holds stays the Route's.
fn checks(
    services: &[Resolved],
    node: &Node<'_>,
    routes: &FxHashMap<Frontend, Arc<Route>>,
    conflicts: &mut Vec<String>,
) -> FxHashMap<Frontend, HealthCheck> {
    let mut checks = FxHashMap::default();
    for service in services.iter().filter(|s| s.skip.is_none()) {
        let Some(port) = service.service.health_check_node_port else { continue };
        let check =
            HealthCheck { service: service.service.id.clone(), local: local(service, node) };
        for ip in node.ips {
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

/// Ready endpoints of `service` on this node, counted once each whatever
/// ports they serve: what kube-proxy reports as `localEndpoints`.
fn local(service: &Resolved, node: &Node<'_>) -> usize {
    let mut ips: Vec<IpAddr> = service
        .ports()
        .flat_map(|(_, endpoints)| endpoints)
        .filter(|e| e.ready && e.node_name.as_deref() == Some(node.name))
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
    label: Arc<str>,
    stats: Arc<PortStats>,
    metrics: &'a Metrics,
    in_use: &'a InUse,
}

impl<'a> PortBuild<'a> {
    fn new(
        service: &'a Resolved,
        port: &'a ServicePort,
        endpoints: &'a [Endpoint],
        metrics: &'a Metrics,
        in_use: &'a InUse,
    ) -> Self {
        let label = port.label.clone();
        let stats = metrics.port(&service.service.id, &label, in_use);
        Self { service, port, endpoints, label, stats, metrics, in_use }
    }

    /// The port's Routes: ClusterIPs under `internalTrafficPolicy`; external
    /// IPs, LoadBalancer ingress IPs and NodePorts under
    /// `externalTrafficPolicy`, one Route per kind of frontend.
    fn routes(&mut self, node: &Node<'_>) -> Vec<(Frontend, Arc<Route>)> {
        let spec = &self.service.service;
        let (port, protocol) = (self.port.port, self.port.protocol);
        let frontend =
            |ip: &IpAddr, number: u16| Frontend { addr: SocketAddr::new(*ip, number), protocol };
        let mut out = Vec::new();
        let internal = self.route(FrontendKind::ClusterIp, spec.internal_local, node);
        out.extend(
            self.service.cluster_ips().iter().map(|ip| (frontend(ip, port), internal.clone())),
        );
        if !spec.external_ips.is_empty() {
            let r = self.route(FrontendKind::ExternalIp, spec.external_local, node);
            out.extend(spec.external_ips.iter().map(|ip| (frontend(ip, port), r.clone())));
        }
        if !spec.ingress_ips.is_empty() {
            let r = self.route(FrontendKind::LoadBalancer, spec.external_local, node);
            out.extend(spec.ingress_ips.iter().map(|ip| (frontend(ip, port), r.clone())));
        }
        if let Some(node_port) = self.port.node_port {
            let r = self.route(FrontendKind::NodePort, spec.external_local, node);
            out.extend(node.ips.iter().map(|ip| (frontend(ip, node_port), r.clone())));
        }
        out
    }

    fn route(&mut self, kind: FrontendKind, local: bool, node: &Node<'_>) -> Arc<Route> {
        let spec = &self.service.service;
        let endpoints = usable(self.endpoints, local.then_some(node.name));
        let targets = self.metrics.endpoints(&self.stats, self.in_use, |stats| {
            endpoints
                .map(|e| Target { addr: e.addr, terminating: !e.ready, stats: stats(e.addr) })
                .collect()
        });
        Arc::new(Route {
            service: spec.id.clone(),
            port: self.label.clone(),
            kind,
            app: App::of(self.port),
            targets,
            affinity: spec.affinity,
            cursor: self.stats.cursor.clone(),
            stats: self.stats.clone(),
        })
    }
}
