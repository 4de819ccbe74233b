//! One pass over the model: every Frontend of every proxied ServicePort.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use super::{App, Cursor, Frontend, FrontendKind, Route, Snapshot, targets};
use crate::model::{Model, Protocol, Resolved, ServicePort};

pub(super) fn build(
    model: Model,
    generation: u64,
    node_ips: &[IpAddr],
    node_name: &str,
) -> Snapshot {
    let mut routes = HashMap::with_capacity(model.services.len() * 2);
    let mut conflicts = Vec::new();
    for service in model.services.iter().filter(|s| s.skip.is_none()) {
        for (port, endpoints) in service.ports() {
            // UDP and SCTP are listed by `check`, not proxied yet.
            if port.protocol != Protocol::Tcp {
                continue;
            }
            for (frontend, route) in port_routes(service, port, endpoints, node_ips, node_name) {
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
    Snapshot { generation, routes, services: model.services, conflicts }
}

fn port_routes(
    service: &Resolved,
    port: &ServicePort,
    endpoints: &[crate::model::Endpoint],
    node_ips: &[IpAddr],
    node_name: &str,
) -> Vec<(Frontend, Arc<Route>)> {
    let spec = &service.service;
    let label: Arc<str> =
        if port.name.is_empty() { port.port.to_string().into() } else { port.name.as_str().into() };
    let cursor = Arc::new(Cursor::default());
    let route = |kind: FrontendKind, local: bool| {
        Arc::new(Route {
            service: spec.id.clone(),
            port: label.clone(),
            kind,
            app: App::of(port),
            targets: targets(endpoints, local.then_some(node_name)),
            affinity: spec.affinity,
            cursor: cursor.clone(),
        })
    };
    let frontend = |ip: IpAddr, number: u16| Frontend {
        addr: SocketAddr::new(ip, number),
        protocol: port.protocol,
    };
    let mut out = Vec::new();
    let internal = route(FrontendKind::ClusterIp, spec.internal_local);
    out.extend(service.cluster_ips().iter().map(|ip| (frontend(*ip, port.port), internal.clone())));
    // External traffic follows externalTrafficPolicy, one Route shared by
    // every external frontend of the port.
    let external = |kind| route(kind, spec.external_local);
    if !spec.external_ips.is_empty() {
        let r = external(FrontendKind::ExternalIp);
        out.extend(spec.external_ips.iter().map(|ip| (frontend(*ip, port.port), r.clone())));
    }
    if !spec.ingress_ips.is_empty() {
        let r = external(FrontendKind::LoadBalancer);
        out.extend(spec.ingress_ips.iter().map(|ip| (frontend(*ip, port.port), r.clone())));
    }
    if let Some(node_port) = port.node_port {
        let r = external(FrontendKind::NodePort);
        out.extend(node_ips.iter().map(|ip| (frontend(*ip, node_port), r.clone())));
    }
    out
}
