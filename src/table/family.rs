//! Each IP family routed apart, as kube-proxy runs one proxier per family:
//! a frontend of one family forwards only to endpoints of that family,
//! and a Service is reached only in the families of its ClusterIPs.

use std::borrow::Cow;
use std::net::IpAddr;

use crate::model::{Endpoint, Family};

/// The families of a Service: those of its ClusterIPs, in their order.
pub(crate) fn of_service(cluster_ips: &[IpAddr]) -> Vec<Family> {
    let mut families: Vec<Family> = cluster_ips.iter().map(|ip| Family::of(*ip)).collect();
    families.dedup();
    families
}

/// The addresses of `ips` in `family`.
pub(super) fn addresses(ips: &[IpAddr], family: Family) -> impl Iterator<Item = &IpAddr> {
    ips.iter().filter(move |ip| Family::of(**ip) == family)
}

/// The endpoints of `family`; borrowed when all are (the common case: a
/// single-stack cluster).
pub(crate) fn endpoints(all: &[Endpoint], family: Family) -> Cow<'_, [Endpoint]> {
    let of = |e: &Endpoint| Family::of(e.addr.ip()) == family;
    if all.iter().all(of) {
        Cow::Borrowed(all)
    } else {
        Cow::Owned(all.iter().filter(|e| of(e)).cloned().collect())
    }
}
