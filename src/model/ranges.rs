//! `spec.loadBalancerSourceRanges`: the clients a Service's LoadBalancer
//! ingress IPs serve, validated as the API server does and applied as
//! kube-proxy's firewall chain does.

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use k8s_openapi::api::core::v1 as k8s;

use super::ServiceType;
use super::field::Fields;
use crate::manifest::FieldPath;

const PATH: &str = "spec.loadBalancerSourceRanges";

/// The API server's words for a range it cannot read.
const NOT_RANGES: &str = "must be a list of IP ranges. For example, 10.240.0.0/24,10.250.0.0/24";

/// The ranges of each family. kube-proxy programs each family's ranges
/// into that family's rules only, so a family without ranges is not
/// filtered at all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceRanges {
    v4: Box<[Ipv4Net]>,
    v6: Box<[Ipv6Net]>,
}

// === impl SourceRanges ===

impl SourceRanges {
    /// True when no range is set: every client is served.
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// True when `client` may reach the ingress IPs: a range of its family
    /// holds it, or its family has none.
    pub fn allows(&self, client: IpAddr) -> bool {
        match client.to_canonical() {
            IpAddr::V4(ip) => self.v4.is_empty() || self.v4.iter().any(|r| r.contains(&ip)),
            IpAddr::V6(ip) => self.v6.is_empty() || self.v6.iter().any(|r| r.contains(&ip)),
        }
    }

    /// Every range, IPv4 first, as CIDRs (`10.0.0.0/8`).
    pub fn iter(&self) -> impl Iterator<Item = IpNet> + '_ {
        let v4 = self.v4.iter().map(|r| IpNet::V4(*r));
        v4.chain(self.v6.iter().map(|r| IpNet::V6(*r)))
    }
}

/// `spec.loadBalancerSourceRanges` of a Service of type `kind`: only a
/// LoadBalancer may set it, and each entry must be a CIDR (surrounding
/// spaces allowed, host bits dropped, as Go's `ParseCIDR` reads it).
pub(crate) fn read(f: &mut Fields<'_>, spec: &k8s::ServiceSpec, kind: ServiceType) -> SourceRanges {
    let raw = spec.load_balancer_source_ranges.as_deref().unwrap_or_default();
    if raw.is_empty() {
        return SourceRanges::default();
    }
    if kind != ServiceType::LoadBalancer {
        f.forbidden(FieldPath::of(PATH), "may only be used when `type` is 'LoadBalancer'");
        return SourceRanges::default();
    }
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    for (i, text) in raw.iter().enumerate() {
        match text.trim().parse::<IpNet>() {
            Ok(IpNet::V4(range)) => v4.push(range.trunc()),
            Ok(IpNet::V6(range)) => v6.push(range.trunc()),
            Err(_) => f.invalid_str(FieldPath::of(PATH).index(i), text, NOT_RANGES),
        }
    }
    SourceRanges { v4: v4.into(), v6: v6.into() }
}

#[cfg(test)]
mod tests {
    use super::SourceRanges;
    use ipnet::IpNet;

    fn ranges(list: &[&str]) -> SourceRanges {
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        for text in list {
            match text.parse::<IpNet>().unwrap() {
                IpNet::V4(r) => v4.push(r),
                IpNet::V6(r) => v6.push(r),
            }
        }
        SourceRanges { v4: v4.into(), v6: v6.into() }
    }

    #[test]
    fn a_client_is_allowed_by_a_range_of_its_family_or_by_none() {
        let both = ranges(&["127.10.0.0/16", "fd00::/8"]);
        assert!(both.allows("127.10.3.4".parse().unwrap()));
        assert!(!both.allows("127.11.0.1".parse().unwrap()));
        assert!(both.allows("fd00::1".parse().unwrap()));
        assert!(!both.allows("::1".parse().unwrap()));
        // IPv4 clients seen on an IPv6 socket count as IPv4.
        assert!(both.allows("::ffff:127.10.0.1".parse().unwrap()));
        // Only IPv6 ranges: IPv4 clients are not filtered (kube-proxy's
        // IPv4 rules never see them).
        let v6 = ranges(&["fd00::/8"]);
        assert!(v6.allows("127.0.0.1".parse().unwrap()));
        assert!(ranges(&["0.0.0.0/0"]).allows("127.0.0.1".parse().unwrap()));
        assert!(SourceRanges::default().allows("127.0.0.1".parse().unwrap()));
    }
}
