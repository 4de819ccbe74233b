//! One pass over the model: every Frontend of every proxied ServicePort,
//! with the metric children its connections will count into.

use std::collections::hash_map::Entry;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::{App, Frontend, FrontendKind, Route, Snapshot, Target};
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
    Snapshot { generation, routes, services: model.services, conflicts }
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
