//! What `check` says of a Service's IP families: both ClusterIPs of a
//! dual-stack Service (the table shows the first, as kubectl does), and
//! the addresses it lists but does not serve for want of a ClusterIP of
//! their family (kube-proxy's proxier of that family never sees it), and
//! the ClusterIPs that refuse every connection for want of an endpoint of
//! their family.

use std::net::IpAddr;

use crate::model::{Family, Resolved, Topology, usable};

/// The notes on `resolved`'s families, if any.
pub(super) fn notes(resolved: &Resolved) -> Vec<String> {
    let id = &resolved.service.id;
    let ips = resolved.cluster_ips();
    let mut out = Vec::new();
    if let [first, second] = ips {
        out.push(format!(
            "{id}: dual-stack: ClusterIPs {first} ({}) and {second} ({}); each family forwards \
             only to endpoints of its own",
            Family::of(*first),
            Family::of(*second)
        ));
    }
    if ips.is_empty() {
        return out;
    }
    out.extend(unserved(resolved, ips));
    let spec = &resolved.service;
    let has = |ip: &&IpAddr| ips.iter().any(|c| Family::of(*c) == Family::of(**ip));
    for (field, list) in
        [("externalIPs", &spec.external_ips), ("loadBalancer ingress", &spec.ingress_ips)]
    {
        for ip in list.iter().filter(|ip| !has(ip)) {
            out.push(format!(
                "{id}: {field} {ip} is not served: the Service has no {} ClusterIP",
                Family::of(*ip)
            ));
        }
    }
    out
}

/// The ClusterIPs no usable endpoint shares a family with: they refuse
/// every connection. Nothing when no endpoint is usable at all (the
/// Service has no endpoints, said on its own).
fn unserved(resolved: &Resolved, ips: &[IpAddr]) -> Vec<String> {
    let id = &resolved.service.id;
    let mut families: Vec<Family> = resolved
        .endpoints
        .iter()
        .flat_map(|e| usable(e, None, &Topology::Any))
        .map(|e| Family::of(e.addr.ip()))
        .collect();
    families.sort_unstable();
    families.dedup();
    let lacking: Vec<&IpAddr> =
        ips.iter().filter(|ip| !families.contains(&Family::of(**ip))).collect();
    if families.is_empty() || lacking.is_empty() {
        return Vec::new();
    }
    if let [ip] = ips {
        let family = Family::of(*ip);
        let other = family.other();
        return vec![format!(
            "{id}: no endpoints of its family: its endpoints are {other} only and it has no \
             {other} ClusterIP, so {ip} ({family}) refuses every connection (each family \
             forwards only to endpoints of its own)"
        )];
    }
    lacking
        .into_iter()
        .map(|ip| {
            let family = Family::of(*ip);
            format!(
                "{id}: ClusterIP {ip} ({family}) has no {family} endpoint and refuses every \
                 connection (each family forwards only to endpoints of its own)"
            )
        })
        .collect()
}
