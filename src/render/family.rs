//! What `check` says of a Service's IP families: both ClusterIPs of a
//! dual-stack Service (the table shows the first, as kubectl does), and
//! the addresses it lists but does not serve for want of a ClusterIP of
//! their family (kube-proxy's proxier of that family never sees it).

use std::net::IpAddr;

use crate::model::{Family, Resolved};

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
