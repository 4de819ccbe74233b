//! IP families: a Service's `spec.ipFamilies`, `spec.ipFamilyPolicy` and
//! `spec.clusterIPs` validated as the API server validates them, and the
//! `--service-cidr` pools, one per family.
//!
//! Validation here needs nothing of the cluster; which families a Service
//! finally gets depends on the pools, and is decided at allocation
//! ([`IpFamilies::wanted`]).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use k8s_openapi::api::core::v1 as k8s;

use super::field::{self, Fields};
use super::service::ServiceType;
use crate::manifest::FieldPath;

/// An IP family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    V4,
    V6,
}

/// `spec.ipFamilyPolicy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FamilyPolicy {
    SingleStack,
    PreferDualStack,
    RequireDualStack,
}

/// What a Service asks of IP families, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpFamilies {
    /// As written; unset defaults as the API server defaults it on create.
    pub policy: FamilyPolicy,
    /// `spec.ipFamilies` as written, completed with the family of each
    /// further `spec.clusterIPs` entry; empty: the cluster's first family.
    pub families: Vec<Family>,
    /// How many of `families` were written in `spec.ipFamilies` (the rest
    /// were inferred): an error about one names that field.
    pub written: usize,
}

/// `--service-cidr`: one pool per family, the first is the cluster's
/// default family (kube-apiserver's `--service-cluster-ip-range`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceCidrs {
    first: IpNet,
    second: Option<IpNet>,
}

/// A `--service-cidr` value that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0:?} is not a CIDR (such as 10.96.0.0/12 or fd00:10:96::/112)")]
    NotCidr(String),
    #[error("at most two CIDRs, one per IP family")]
    TooMany,
    #[error("{0} and {1} are both {2}: give one CIDR per IP family")]
    SameFamily(IpNet, IpNet, Family),
}

/// A family a Service wants but the cluster has no pool for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Unconfigured {
    pub path: FieldPath,
    pub value: String,
    pub why: String,
}

// === impl Family ===

impl Family {
    pub fn of(ip: IpAddr) -> Self {
        if ip.is_ipv4() { Family::V4 } else { Family::V6 }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }

    /// The other family.
    pub fn other(self) -> Self {
        match self {
            Family::V4 => Family::V6,
            Family::V6 => Family::V4,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// === impl FamilyPolicy ===

impl FamilyPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            FamilyPolicy::SingleStack => "SingleStack",
            FamilyPolicy::PreferDualStack => "PreferDualStack",
            FamilyPolicy::RequireDualStack => "RequireDualStack",
        }
    }
}

// === impl IpFamilies ===

impl IpFamilies {
    /// The families the Service gets on a cluster with `cidrs`, in order
    /// (kube-apiserver's defaulting): the cluster's first family when none
    /// is asked; the other one appended for a dual-stack policy when the
    /// cluster has both, or demanded by `RequireDualStack`. `explicit`
    /// (the ClusterIPs written) need no pool; a family to allocate without
    /// one is an error naming the field that asked for it.
    pub(crate) fn wanted(
        &self,
        cidrs: &ServiceCidrs,
        explicit: &[IpAddr],
    ) -> Result<Vec<Family>, Unconfigured> {
        let mut families = self.families.clone();
        if families.is_empty() {
            families.push(cidrs.first_family());
        }
        let dual = match self.policy {
            FamilyPolicy::SingleStack => false,
            FamilyPolicy::PreferDualStack => cidrs.second.is_some(),
            FamilyPolicy::RequireDualStack => true,
        };
        if dual && families.len() == 1 {
            families.push(families[0].other());
        }
        let missing = families.iter().enumerate().find(|(_, family)| {
            cidrs.get(**family).is_none() && !explicit.iter().any(|ip| Family::of(*ip) == **family)
        });
        match missing {
            None => Ok(families),
            Some((i, family)) if i < self.written => Err(Unconfigured {
                path: FieldPath::of("spec.ipFamilies").index(i),
                value: format!("{:?}", family.as_str()),
                why: format!(
                    "not configured on this cluster (--service-cidr has no {family} CIDR)"
                ),
            }),
            Some((_, family)) => Err(Unconfigured {
                path: FieldPath::of("spec.ipFamilyPolicy"),
                value: format!("{:?}", self.policy.as_str()),
                why: format!(
                    "this cluster is not configured for dual-stack services (--service-cidr has \
                     no {family} CIDR)"
                ),
            }),
        }
    }
}

/// Validates the family fields of `spec` as the API server does (its
/// `ValidateServiceClusterIPsRelatedFields` and the checks of its
/// allocator that need no cluster settings), and infers the families of
/// the ClusterIPs written.
pub(crate) fn read(f: &mut Fields<'_>, spec: &k8s::ServiceSpec, kind: ServiceType) -> IpFamilies {
    let headless = spec.cluster_ip.as_deref() == Some("None");
    let selectorless = spec.selector.as_ref().is_none_or(|s| s.is_empty());
    let default_policy = if headless && selectorless {
        FamilyPolicy::RequireDualStack
    } else {
        FamilyPolicy::SingleStack
    };
    let none = IpFamilies { policy: default_policy, families: Vec::new(), written: 0 };
    if kind == ServiceType::ExternalName {
        return none;
    }
    let mut families = written_families(f, spec.ip_families.as_deref().unwrap_or_default());
    let written = families.len();
    let policy = policy(f, spec.ip_family_policy.as_deref()).unwrap_or(default_policy);
    let ips = cluster_ips(spec);
    if let Some(parsed) = parsed_cluster_ips(f, &ips) {
        check_ips_match(f, &parsed, &families);
        // The families of further ClusterIPs, as the API server infers them.
        families.extend(parsed.iter().skip(written).map(|ip| Family::of(*ip)));
    }
    if policy == FamilyPolicy::SingleStack {
        let value = format!("{:?}", policy.as_str());
        let why = "must be 'RequireDualStack' or 'PreferDualStack' when multiple";
        if ips.len() == 2 {
            let why = format!("{why} cluster IPs are specified");
            f.invalid(FieldPath::of("spec.ipFamilyPolicy"), &value, &why);
        }
        if written == 2 {
            let why = format!("{why} IP families are specified");
            f.invalid(FieldPath::of("spec.ipFamilyPolicy"), &value, &why);
        }
    }
    IpFamilies { policy, families, written }
}

/// `spec.ipFamilies`: each IPv4 or IPv6, none twice.
fn written_families(f: &mut Fields<'_>, raw: &[String]) -> Vec<Family> {
    let mut out = Vec::with_capacity(raw.len());
    for (i, text) in raw.iter().enumerate() {
        let at = || FieldPath::of("spec.ipFamilies").index(i);
        let family = match text.as_str() {
            "IPv4" => Family::V4,
            "IPv6" => Family::V6,
            other => {
                f.unsupported(at(), other, &["IPv4", "IPv6"]);
                continue;
            }
        };
        if out.contains(&family) {
            f.duplicate(at(), format_args!("{text:?}"));
            continue;
        }
        out.push(family);
    }
    out
}

fn policy(f: &mut Fields<'_>, raw: Option<&str>) -> Option<FamilyPolicy> {
    match raw? {
        "SingleStack" => Some(FamilyPolicy::SingleStack),
        "PreferDualStack" => Some(FamilyPolicy::PreferDualStack),
        "RequireDualStack" => Some(FamilyPolicy::RequireDualStack),
        other => {
            let supported = ["PreferDualStack", "RequireDualStack", "SingleStack"];
            f.unsupported(FieldPath::of("spec.ipFamilyPolicy"), other, &supported);
            None
        }
    }
}

/// `spec.clusterIPs`, or `[spec.clusterIP]` when only that is written (the
/// API server fills one from the other).
fn cluster_ips(spec: &k8s::ServiceSpec) -> Vec<&str> {
    match (spec.cluster_ips.as_deref(), spec.cluster_ip.as_deref()) {
        (Some(list), _) if !list.is_empty() => list.iter().map(String::as_str).collect(),
        (_, Some(one)) if !one.is_empty() => vec![one],
        _ => Vec::new(),
    }
}

/// The ClusterIPs as addresses, checked as a set (at most two, one per
/// family, `None` alone); `None` when headless or when one is not an
/// address (reported where the addresses are read): the API server then
/// stops before these checks.
fn parsed_cluster_ips(f: &mut Fields<'_>, ips: &[&str]) -> Option<Vec<IpAddr>> {
    let value = || go_strings(ips);
    let path = || FieldPath::of("spec.clusterIPs");
    if ips.first() == Some(&"None") {
        if ips.len() > 1 {
            f.invalid(path(), value(), "'None' must be the first and only value");
        }
        return None;
    }
    if ips.len() > 2 {
        f.invalid(path(), value(), "may only hold up to 2 values");
    }
    let parsed: Vec<IpAddr> = ips.iter().map_while(|ip| field::parse_ip(ip)).collect();
    if parsed.len() != ips.len() {
        return None;
    }
    if parsed.len() > 1 && !(parsed.len() == 2 && Family::of(parsed[0]) != Family::of(parsed[1])) {
        f.invalid(path(), value(), "may specify no more than one IP for each IP family");
    }
    Some(parsed)
}

/// A list of strings as the API server prints one in an error:
/// `[]string{"10.96.0.1", "fd00::1"}`.
pub(crate) fn go_strings(list: &[impl AsRef<str>]) -> String {
    let quoted: Vec<String> = list.iter().map(|s| format!("{:?}", s.as_ref())).collect();
    format!("[]string{{{}}}", quoted.join(", "))
}

/// Each ClusterIP of the family `spec.ipFamilies` gives it.
fn check_ips_match(f: &mut Fields<'_>, ips: &[IpAddr], families: &[Family]) {
    for (i, (ip, family)) in ips.iter().zip(families).enumerate() {
        if Family::of(*ip) != *family {
            let why = format!("expected an {family} value as indicated by `ipFamilies[{i}]`");
            f.invalid_str(FieldPath::of("spec.clusterIPs").index(i), &ip.to_string(), &why);
        }
    }
}

// === impl ServiceCidrs ===

impl ServiceCidrs {
    /// One pool, of one family.
    pub const fn single(cidr: IpNet) -> Self {
        Self { first: cidr, second: None }
    }

    /// The pool of `family`, if the cluster has one.
    pub fn get(&self, family: Family) -> Option<IpNet> {
        let of = |net: &IpNet| Family::of(net.network()) == family;
        std::iter::once(self.first).chain(self.second).find(of)
    }

    /// The family Services get when they ask for none.
    pub fn first_family(&self) -> Family {
        Family::of(self.first.network())
    }
}

impl FromStr for ServiceCidrs {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        let mut cidrs = Vec::with_capacity(2);
        for part in text.split(',') {
            let part = part.trim();
            let net: IpNet = part.parse().map_err(|_| Error::NotCidr(part.to_owned()))?;
            cidrs.push(net.trunc());
        }
        match cidrs[..] {
            [first] => Ok(Self::single(first)),
            [first, second] if Family::of(first.network()) == Family::of(second.network()) => {
                Err(Error::SameFamily(first, second, Family::of(first.network())))
            }
            [first, second] => Ok(Self { first, second: Some(second) }),
            _ => Err(Error::TooMany),
        }
    }
}

impl fmt::Display for ServiceCidrs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.first)?;
        match self.second {
            Some(second) => write!(f, ",{second}"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests;
