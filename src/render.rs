//! A Snapshot for people: the `svcproxy check` table (`kubectl get svc -A`
//! plus an ENDPOINTS column) with notes on what is listed but not proxied,
//! and the `/debug/routes` JSON, built from the same rows.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use serde_json::{Value, json};

use crate::balance::Balancer;
use crate::model::{Ignored, Protocol, Resolved, ServiceType, Skip, Topology, choose, usable};
use crate::table::{Frontend, FrontendKind, Mode, Route, Snapshot, Upstream};

mod family;
mod why;

/// Items shown in a cut list before `+ N more...`, as kubectl's
/// ENDPOINTS column shows them.
const SHOWN: usize = 3;

/// EXTERNAL-IP and PORT(S) list every item up to this many, as kubectl
/// does; past it a list is no longer read by a person (5,421 externalIPs
/// make a cell of 65,000 characters) and is cut as ENDPOINTS is.
const WHOLE_LIST: usize = 16;

const HEADER: [&str; 7] =
    ["NAMESPACE", "NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "ENDPOINTS"];

/// The Services table, one row per Service, columns aligned as kubectl's.
pub fn table(snapshot: &Snapshot) -> String {
    let rows: Vec<[String; 7]> = snapshot.services.iter().map(row).collect();
    let mut widths = HEADER.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header = HEADER.map(str::to_owned);
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < row.len() {
                // Padded by hand: `format!`'s width is a u16 and panics
                // past 65,535, and a cell is data of any length.
                let pad = widths[i].saturating_sub(cell.chars().count()) + 3;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `/debug/routes`: the generation, every Service as `check` lists it, and
/// every frontend with its endpoints and their state now (`ready`,
/// `terminating` when used only for lack of ready ones, `ejected` while
/// skipped after a failed connect).
pub fn routes(snapshot: &Snapshot, balancer: &Balancer) -> Value {
    let now = Instant::now();
    let services: Vec<Value> = snapshot.services.iter().map(service_json).collect();
    let frontends: Vec<Value> = snapshot
        .frontends()
        .into_iter()
        .filter_map(|frontend| {
            Some(route_json(frontend, snapshot.route(&frontend)?, balancer, now))
        })
        .collect();
    let checks: Vec<Value> = snapshot
        .health_checks()
        .into_iter()
        .map(|(frontend, check)| {
            json!({
                "frontend": frontend.to_string(),
                "namespace": &*check.service.namespace,
                "service": &*check.service.name,
                "localEndpoints": check.local,
            })
        })
        .collect();
    json!({
        "generation": snapshot.generation,
        "services": services,
        "frontends": frontends,
        "healthChecks": checks,
    })
}

/// A Service as `check` lists it, keyed by the column headers.
fn service_json(resolved: &Resolved) -> Value {
    let mut object = serde_json::Map::new();
    for (header, cell) in HEADER.iter().zip(row(resolved)) {
        object.insert(header.to_ascii_lowercase(), Value::String(cell));
    }
    // Both of a dual-stack Service's, where the column shows the first.
    let ips = resolved.cluster_ips().iter().map(|ip| Value::String(ip.to_string())).collect();
    object.insert("clusterIPs".to_owned(), Value::Array(ips));
    Value::Object(object)
}

/// A frontend's Route, with the state of each endpoint `now`.
fn route_json(frontend: Frontend, route: &Route, balancer: &Balancer, now: Instant) -> Value {
    let endpoints: Vec<Value> = route
        .endpoints
        .iter()
        .map(|e| {
            let state = if balancer.is_ejected(e.addr, now) {
                "ejected"
            } else if e.terminating {
                "terminating"
            } else {
                "ready"
            };
            json!({ "address": e.addr.to_string(), "state": state })
        })
        .collect();
    json!({
        "frontend": frontend.to_string(),
        "kind": kind_name(route.kind),
        "namespace": &*route.service.namespace,
        "service": &*route.service.name,
        "port": &*route.port,
        "mode": route.mode.as_str(),
        "policy": route.policy.as_str(),
        "requestTimeoutSeconds": route.request_timeout.map(|d| d.as_secs_f64()),
        "udpResponses": route.udp_responses,
        "topology": route.topology.as_str(),
        "loadBalancerSourceRanges": route
            .source_ranges
            .as_ref()
            .map(|r| r.iter().map(|range| range.to_string()).collect::<Vec<_>>()),
        "sessionAffinityTimeoutSeconds": route.affinity.map(|d| d.as_secs()),
        "endpoints": endpoints,
    })
}

fn kind_name(kind: FrontendKind) -> &'static str {
    match kind {
        FrontendKind::ClusterIp => "ClusterIP",
        FrontendKind::ExternalIp => "ExternalIP",
        FrontendKind::LoadBalancer => "LoadBalancer",
        FrontendKind::NodePort => "NodePort",
    }
}

/// One line per thing that is valid but not (fully) proxied.
pub fn notes(snapshot: &Snapshot) -> Vec<String> {
    let mut out = Vec::new();
    for resolved in &snapshot.services {
        let id = &resolved.service.id;
        if let Some(skip) = resolved.skip {
            out.push(format!("{id}: not proxied: {}", skip_reason(skip)));
            continue;
        }
        out.extend(why::notes(resolved, &snapshot.node_name));
        if let Some(port) = resolved.service.health_check_node_port {
            out.push(format!(
                "{id}: healthCheckNodePort {port}/TCP answers load balancers with this node's \
                 ready endpoints"
            ));
        }
        out.extend(family::notes(resolved));
        let ranges = &resolved.service.source_ranges;
        if !ranges.is_empty() && !resolved.service.ingress_ips.is_empty() {
            out.push(format!(
                "{id}: LoadBalancer ingress IPs serve only clients in {} \
                 (loadBalancerSourceRanges); its other addresses serve every client",
                ranges.iter().map(|r| r.to_string()).collect::<Vec<_>>().join(", ")
            ));
        }
        for port in resolved.service.ports.iter().filter(|p| p.protocol == Protocol::Sctp) {
            out.push(format!(
                "{id}: port {}/{} is listed but not proxied: {} is not supported yet",
                port.port, port.protocol, port.protocol
            ));
        }
    }
    out.extend(topology(snapshot));
    out.extend(http_ports(snapshot));
    out.extend(snapshot.conflicts.iter().cloned());
    out
}

/// One note per Service port whose endpoints carry topology hints: which
/// endpoints they leave to this node, or why they are ignored.
fn topology(snapshot: &Snapshot) -> Vec<String> {
    let node = &*snapshot.node_name;
    let zone = snapshot.node.as_ref().and_then(|n| n.zone.as_deref());
    let mut out = Vec::new();
    for resolved in snapshot.services.iter().filter(|s| s.skip.is_none()) {
        let families = crate::table::family::of_service(resolved.cluster_ips());
        // Judged per family, as routing judges them; named when two are.
        let each = resolved.ports().flat_map(|(port, endpoints)| {
            families.iter().map(move |&f| (port, f, crate::table::family::endpoints(endpoints, f)))
        });
        for (port, family, endpoints) in each {
            let choice = choose(&endpoints, node, zone);
            let at = match families.len() {
                1 => format!("{}: port {}", resolved.service.id, port.label),
                _ => format!("{}: port {} ({family})", resolved.service.id, port.label),
            };
            let ready = endpoints.iter().filter(|e| e.ready);
            let kept = ready.clone().filter(|e| choice.topology.allows(e)).count();
            let of = ready.count();
            let line = match (&choice.topology, &choice.ignored) {
                (Topology::SameNode(node), _) => format!(
                    "{at}: topology: {kept} of {of} ready endpoints, those hinted for this node ({node})"
                ),
                (Topology::SameZone(zone), _) => format!(
                    "{at}: topology: {kept} of {of} ready endpoints, those hinted for zone {zone}"
                ),
                (Topology::Any, Some(why)) => {
                    format!(
                        "{at}: topology hints ignored, every endpoint used: {}",
                        ignored(why, node)
                    )
                }
                (Topology::Any, None) => continue,
            };
            out.push(line);
        }
    }
    out
}

fn ignored(why: &Ignored, node: &str) -> String {
    match why {
        Ignored::MissingHint => "a ready endpoint has no zone hint".to_owned(),
        Ignored::NoZone => format!(
            "no Node {node} with a topology.kubernetes.io/zone label was read (see --node-name)"
        ),
        Ignored::NoneForZone(zone) => format!("no ready endpoint is hinted for zone {zone}"),
    }
}

/// One note per HTTP Service port: balanced per request, and how its
/// pods are spoken to.
fn http_ports(snapshot: &Snapshot) -> Vec<String> {
    let mut ports: Vec<(String, String, Upstream)> = snapshot
        .routes()
        .filter_map(|r| match r.mode {
            Mode::Http(upstream) => Some((r.service.to_string(), r.port.to_string(), upstream)),
            Mode::Tcp | Mode::Udp => None,
        })
        .collect();
    ports.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    ports.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
    ports
        .into_iter()
        .map(|(service, port, upstream)| {
            let spoken = match upstream {
                Upstream::Http1 => "HTTP/1.1",
                Upstream::H2c => "HTTP/2 (h2c)",
            };
            format!(
                "{service}: port {port} is HTTP: balanced per request, pods spoken to in {spoken}"
            )
        })
        .collect()
}

fn skip_reason(skip: Skip) -> &'static str {
    match skip {
        Skip::Headless => "headless (clusterIP: None)",
        Skip::ExternalName => "type ExternalName is a DNS alias",
        Skip::HeadlessLabel => "labelled service.kubernetes.io/headless",
        Skip::OtherProxy => "service.kubernetes.io/service-proxy-name does not name this proxy",
    }
}

fn row(resolved: &Resolved) -> [String; 7] {
    let spec = &resolved.service;
    [
        spec.id.namespace.to_string(),
        spec.id.name.to_string(),
        type_name(spec.kind).to_owned(),
        cluster_ip(resolved),
        external_ip(resolved),
        ports(resolved),
        endpoints(resolved),
    ]
}

fn type_name(kind: ServiceType) -> &'static str {
    match kind {
        ServiceType::ClusterIp => "ClusterIP",
        ServiceType::NodePort => "NodePort",
        ServiceType::LoadBalancer => "LoadBalancer",
        ServiceType::ExternalName => "ExternalName",
    }
}

fn cluster_ip(resolved: &Resolved) -> String {
    match (resolved.service.kind, resolved.cluster_ips().first()) {
        (ServiceType::ExternalName, _) => "<none>".to_owned(),
        (_, Some(ip)) => ip.to_string(),
        (_, None) => "None".to_owned(),
    }
}

fn external_ip(resolved: &Resolved) -> String {
    let spec = &resolved.service;
    if let Some(name) = &spec.external_name {
        return name.clone();
    }
    let ips: Vec<&IpAddr> = spec.ingress_ips.iter().chain(&spec.external_ips).collect();
    match (ips.is_empty(), spec.kind) {
        (true, ServiceType::LoadBalancer) => "<pending>".to_owned(),
        (true, _) => "<none>".to_owned(),
        (false, _) => list(ips.len(), ips.iter().map(ToString::to_string), WHOLE_LIST),
    }
}

fn ports(resolved: &Resolved) -> String {
    if resolved.service.ports.is_empty() {
        return "<none>".to_owned();
    }
    let ports = &resolved.service.ports;
    let items = ports.iter().map(|p| match p.node_port {
        Some(node_port) => format!("{}:{node_port}/{}", p.port, p.protocol),
        None => format!("{}/{}", p.port, p.protocol),
    });
    list(ports.len(), items, WHOLE_LIST)
}

/// The usable endpoints of every port, as `kubectl get endpoints` lists them.
fn endpoints(resolved: &Resolved) -> String {
    // As the cluster sees them: the node filter of a `Local` traffic
    // policy applies per node, at routing time.
    let usable =
        || resolved.endpoints.iter().map(|e| usable(e, None, &Topology::Any).map(|e| e.addr));
    let count = distinct(usable());
    if count == 0 {
        return "<none>".to_owned();
    }
    // The first addresses in the order first seen.
    let mut shown: Vec<SocketAddr> = Vec::with_capacity(SHOWN);
    for addr in usable().flatten() {
        if shown.len() == SHOWN.min(count) {
            break;
        }
        if !shown.contains(&addr) {
            shown.push(addr);
        }
    }
    list(count, shown.iter().map(ToString::to_string), SHOWN)
}

/// How many distinct addresses `lists` hold together, each list sorted
/// and without repeats (as a Service port's endpoints are): counted by
/// merging them, not by gathering a set of up to 100,000 addresses.
fn distinct<L: Iterator<Item = SocketAddr>>(lists: impl Iterator<Item = L>) -> usize {
    let mut lists: Vec<L> = lists.collect();
    let mut heads: BinaryHeap<Reverse<(SocketAddr, usize)>> = lists
        .iter_mut()
        .enumerate()
        .filter_map(|(i, list)| Some(Reverse((list.next()?, i))))
        .collect();
    let (mut count, mut last) = (0, None);
    while let Some(Reverse((addr, i))) = heads.pop() {
        if last != Some(addr) {
            (count, last) = (count + 1, Some(addr));
        }
        if let Some(next) = lists[i].next() {
            heads.push(Reverse((next, i)));
        }
    }
    count
}

/// `count` items joined with commas when there are at most `whole`, else
/// the first [`SHOWN`] and how many more (`a,b,c + 5418 more...`);
/// only the items shown are formatted.
fn list(count: usize, items: impl Iterator<Item = String>, whole: usize) -> String {
    let shown = if count > whole { SHOWN.min(count) } else { count };
    let mut text = items.take(shown).collect::<Vec<_>>().join(",");
    if count > shown {
        let _ = write!(text, " + {} more...", count - shown);
    }
    text
}

#[cfg(test)]
mod tests;
