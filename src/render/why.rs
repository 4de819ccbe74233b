//! What `check` says of a Service that takes no traffic: why its
//! ENDPOINTS cell is `<none>` (what its sources hold, from
//! [`Resolved::sources`]), and, when the cell lists endpoints, why this node
//! still refuses (a `Local` traffic policy with none of them here: the
//! column lists the whole cluster's).

use std::net::SocketAddr;

use rustc_hash::FxHashSet;

use crate::model::{
    Listed, Resolved, Selected, ServiceType, Sources, TargetPort, Topology, usable,
};

/// The notes on why `resolved` takes no traffic on node `node`, if it
/// does not.
pub(super) fn notes(resolved: &Resolved, node: &str) -> Vec<String> {
    let id = &resolved.service.id;
    if resolved.service.ports.is_empty() {
        return Vec::new();
    }
    let usable_on = |node: Option<&str>| {
        resolved.endpoints.iter().any(|e| usable(e, node, &Topology::Any).next().is_some())
    };
    if !usable_on(None) {
        return vec![format!("{id}: no endpoints: {}", cause(resolved))];
    }
    if usable_on(Some(node)) {
        return Vec::new();
    }
    let spec = &resolved.service;
    let here = |policy: &str, what: &str| {
        format!(
            "{id}: {policy}: Local: no usable endpoint is on this node ({node}; see \
             --node-name), so {what} refuse connections here; the ENDPOINTS column lists the \
             whole cluster's"
        )
    };
    let mut out = Vec::new();
    if spec.internal_local {
        out.push(here("internalTrafficPolicy", "its ClusterIPs"));
    }
    let external = matches!(spec.kind, ServiceType::NodePort | ServiceType::LoadBalancer)
        || !spec.external_ips.is_empty()
        || !spec.ingress_ips.is_empty();
    if spec.external_local && external {
        out.push(here("externalTrafficPolicy", "its NodePorts, external and load balancer IPs"));
    }
    out
}

/// Why no port of `resolved` has a usable endpoint anywhere.
fn cause(resolved: &Resolved) -> String {
    let listed: FxHashSet<SocketAddr> =
        resolved.endpoints.iter().flatten().map(|e| e.addr).collect();
    if !listed.is_empty() {
        return format!(
            "{} listed, none is ready, and none is serving and terminating (kube-proxy's \
             fallback when none is ready)",
            counted(listed.len(), "endpoint", "endpoints")
        );
    }
    match resolved.sources.as_deref() {
        Some(Sources::Slices(listed)) => mismatch("its EndpointSlices list", listed, resolved),
        Some(Sources::Endpoints(listed)) => {
            mismatch("its Endpoints object lists", listed, resolved)
        }
        Some(Sources::Pods(selected)) => pods(selected, resolved),
        Some(Sources::Nothing) => {
            "it has no selector, and no EndpointSlice or Endpoints names it".to_owned()
        }
        None => "no EndpointSlice, Endpoints or selected Pod gives it one".to_owned(),
    }
}

/// EndpointSlices or Endpoints that exist yet give no endpoint: empty, or
/// on ports that match no ServicePort.
fn mismatch(what: &str, listed: &Listed, resolved: &Resolved) -> String {
    if listed.addresses == 0 {
        return format!("{what} no address");
    }
    let theirs: Vec<String> = listed.ports.iter().map(|(name, p)| port(name, *p)).collect();
    let ours: Vec<String> =
        resolved.service.ports.iter().map(|p| port(&p.name, p.protocol)).collect();
    let theirs = if theirs.is_empty() { "no port".to_owned() } else { theirs.join(", ") };
    format!(
        "{what} {} on {theirs}, which match no ServicePort by name and protocol ({})",
        counted(listed.addresses, "address", "addresses"),
        ours.join(", ")
    )
}

/// Pods by selector that give no endpoint: none matches, none has an IP,
/// or none names the target port.
fn pods(selected: &Selected, resolved: &Resolved) -> String {
    let selector = resolved.service.selector.as_deref().unwrap_or_default();
    let selector: Vec<String> = selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let selector = selector.join(",");
    let nothing_else = "no EndpointSlice or Endpoints names it";
    match (selected.matched, selected.with_ip) {
        (0, _) => format!("no Pod matches selector {selector}; {nothing_else}"),
        (n, 0) => format!(
            "{} selector {selector}, none with a podIP (not scheduled or not started); \
             {nothing_else}",
            counted(n, "Pod matches", "Pods match")
        ),
        (_, n) => {
            let named: Vec<String> = resolved
                .service
                .ports
                .iter()
                .filter_map(|p| match &p.target {
                    TargetPort::Name(name) => Some(port(name, p.protocol)),
                    TargetPort::Number(_) => None,
                })
                .collect();
            format!(
                "{} with a podIP {} selector {selector}, but none has a container port named \
                 {} (the targetPort)",
                counted(n, "Pod", "Pods"),
                if n == 1 { "matches" } else { "match" },
                named.join(", ")
            )
        }
    }
}

/// A port as `name/PROTOCOL`, an unnamed one as `<unnamed>/PROTOCOL`.
fn port(name: &str, protocol: crate::model::Protocol) -> String {
    let name = if name.is_empty() { "<unnamed>" } else { name };
    format!("{name}/{protocol}")
}

/// `1 endpoint`, `2 endpoints`.
fn counted(n: usize, one: &str, many: &str) -> String {
    if n == 1 { format!("1 {one}") } else { format!("{n} {many}") }
}
