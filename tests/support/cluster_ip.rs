//! The CLUSTER-IP cell of the `check` table: whether the address is one
//! `check` allocated, as the API server would, for a Service that wrote none.

use std::net::Ipv4Addr;

/// True when `ip` is in the default service CIDR, 10.96.0.0/12.
pub fn in_default_service_cidr(ip: &str) -> bool {
    // 10.96.0.0/12: 10.96.0.0 - 10.111.255.255.
    ip.parse::<Ipv4Addr>().is_ok_and(|ip| {
        let [a, b, ..] = ip.octets();
        a == 10 && (96..=111).contains(&b)
    })
}
