//! Validation and defaulting of one `v1 Service`, as the API server does them.

use std::net::IpAddr;
use std::time::Duration;

use k8s_openapi::api::core::v1 as k8s;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use rustc_hash::FxHashSet;

use std::sync::Arc;

use super::annotations::{self, Annotations};
use super::family::{self, IpFamilies};
use super::field::{self, Fields};
use super::names::Names;
use super::ranges::{self, SourceRanges};
use super::{Error, Protocol, ServiceId};
use crate::manifest::{FieldPath, Kind, ObjectKey, Origin};

/// Default `sessionAffinityConfig.clientIP.timeoutSeconds` (3 hours).
pub const DEFAULT_AFFINITY_SECONDS: u32 = 10_800;
/// Largest `timeoutSeconds` (1 day).
pub const MAX_AFFINITY_SECONDS: u32 = 86_400;
/// The API server's default NodePort range.
pub const NODE_PORTS: std::ops::RangeInclusive<u16> = 30_000..=32_767;

/// `spec.type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceType {
    ClusterIp,
    NodePort,
    LoadBalancer,
    ExternalName,
}

/// `spec.clusterIP` / `spec.clusterIPs` after validation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClusterIp {
    /// Set in the manifest (dual-stack Services have two).
    Set(Vec<IpAddr>),
    /// Not set: allocated from `--service-cidr`.
    Allocate,
    /// `None`: a headless Service, not proxied.
    Headless,
}

/// Where a ServicePort's traffic goes on the pod.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TargetPort {
    Number(u16),
    /// A named container port, resolved per pod or by endpoint port name.
    Name(String),
}

/// One validated `spec.ports[i]`, defaults applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePort {
    /// Empty only on single-port Services.
    pub name: Arc<str>,
    /// How metrics and allocation name the port: its name, or its number
    /// when unnamed (single-port Services).
    pub label: Arc<str>,
    pub port: u16,
    pub protocol: Protocol,
    pub target: TargetPort,
    /// As written; allocation fills missing ones later.
    pub node_port: Option<u16>,
    pub app_protocol: Option<String>,
}

/// A validated Service: what the proxy needs of it, defaults applied.
#[derive(Clone, Debug)]
pub struct Service {
    pub id: ServiceId,
    pub origin: Origin,
    pub kind: ServiceType,
    pub cluster_ip: ClusterIp,
    /// `spec.ipFamilies` and `spec.ipFamilyPolicy`, for allocation.
    pub ip_families: IpFamilies,
    pub ports: Vec<ServicePort>,
    pub external_ips: Vec<IpAddr>,
    /// `status.loadBalancer.ingress[].ip`.
    pub ingress_ips: Vec<IpAddr>,
    /// `spec.loadBalancerSourceRanges`: the clients the ingress IPs serve.
    pub source_ranges: SourceRanges,
    pub external_name: Option<String>,
    /// `None`: no selector, endpoints come from Endpoints/EndpointSlices
    /// only. Sorted by key. A list, not a map: a selector has a label or
    /// two, and a map's smallest node is over 500 bytes.
    pub selector: Option<Box<[(String, String)]>>,
    /// `sessionAffinity: ClientIP` and its timeout.
    pub affinity: Option<Duration>,
    pub internal_local: bool,
    pub external_local: bool,
    /// `spec.healthCheckNodePort`: where load balancers ask this node
    /// whether it has endpoints of the Service (LoadBalancer with
    /// `externalTrafficPolicy: Local` only).
    pub health_check_node_port: Option<u16>,
    pub publish_not_ready: bool,
    /// `spec.allocateLoadBalancerNodePorts` (LoadBalancer only; default true).
    pub allocate_node_ports: bool,
    /// Labelled `service.kubernetes.io/headless`.
    pub headless_label: bool,
    /// The `service.kubernetes.io/service-proxy-name` label.
    pub proxy_name: Option<String>,
    /// `svcproxy.io/request-timeout` and `svcproxy.io/lb-policy`.
    pub annotations: Annotations,
}

/// Validates one Service object (`key` is its identity); every field error
/// is reported. Field paths are built only for errors: this runs for every
/// Service on each rebuild.
pub(crate) fn validate(
    service: &k8s::Service,
    key: &ObjectKey,
    origin: &Origin,
    names: &mut Names,
) -> Result<Service, Vec<Error>> {
    let meta = &service.metadata;
    let (namespace, name) = (&*key.namespace, &*key.name);
    let mut f = Fields::new(origin, Kind::Service, namespace, name);
    validate_meta(&mut f, namespace, name);
    let default_spec = k8s::ServiceSpec::default();
    let spec = service.spec.as_ref().unwrap_or(&default_spec);
    let kind = service_type(&mut f, spec);
    let cluster_ip = cluster_ip(&mut f, spec, kind);
    let ip_families = family::read(&mut f, spec, kind);
    let ports = ports(&mut f, spec, kind, &cluster_ip, names);
    let external_ips = ips(&mut f, "spec.externalIPs", spec.external_ips.as_deref());
    let ingress = service.status.as_ref().and_then(|s| s.load_balancer.as_ref());
    let ingress_ips = ingress_ips(&mut f, ingress);
    let source_ranges = ranges::read(&mut f, spec, kind);
    let affinity = affinity(&mut f, spec);
    let annotations = annotations::read(&mut f, meta);
    let policies = policies(&mut f, spec, kind, &external_ips);
    let external_name = external_name(&mut f, spec, kind);
    f.finish(Service {
        // Interned: a Service and its EndpointSlices then name it with one
        // shared string, which every lookup by id compares by address.
        id: ServiceId { namespace: names.get(namespace), name: names.get(name) },
        origin: origin.clone(),
        kind,
        cluster_ip,
        ip_families,
        ports,
        external_ips,
        ingress_ips,
        source_ranges,
        external_name,
        selector: selector(spec),
        affinity,
        internal_local: policies.internal_local,
        external_local: policies.external_local,
        health_check_node_port: policies.health_check_node_port,
        publish_not_ready: spec.publish_not_ready_addresses.unwrap_or(false),
        allocate_node_ports: spec.allocate_load_balancer_node_ports.unwrap_or(true),
        headless_label: label(meta, super::HEADLESS_LABEL).is_some(),
        proxy_name: label(meta, super::PROXY_NAME_LABEL).map(str::to_owned),
        annotations,
    })
}

/// A Service's traffic policies (`Local`: true) and the
/// healthCheckNodePort `externalTrafficPolicy: Local` may need.
struct Policies {
    internal_local: bool,
    /// Only for a Service reachable from outside: the policy applies to
    /// nothing else.
    external_local: bool,
    health_check_node_port: Option<u16>,
}

fn policies(
    f: &mut Fields<'_>,
    spec: &k8s::ServiceSpec,
    kind: ServiceType,
    external_ips: &[IpAddr],
) -> Policies {
    // NodePort, LoadBalancer, or any Service with externalIPs, as the API
    // server counts them for externalTrafficPolicy.
    let externally_reachable = matches!(kind, ServiceType::NodePort | ServiceType::LoadBalancer)
        || !external_ips.is_empty();
    let internal_local =
        traffic_policy(f, "spec.internalTrafficPolicy", &spec.internal_traffic_policy);
    let external_local =
        traffic_policy(f, "spec.externalTrafficPolicy", &spec.external_traffic_policy);
    let health_check_node_port = health_check_node_port(
        f,
        spec.health_check_node_port,
        kind == ServiceType::LoadBalancer && external_local,
    );
    Policies {
        internal_local,
        external_local: external_local && externally_reachable,
        health_check_node_port,
    }
}

/// `spec.externalName`, required by (and kept only for) `type: ExternalName`.
fn external_name(f: &mut Fields<'_>, spec: &k8s::ServiceSpec, kind: ServiceType) -> Option<String> {
    if kind != ServiceType::ExternalName {
        return None;
    }
    if spec.external_name.as_deref().unwrap_or("").is_empty() {
        f.required(FieldPath::of("spec.externalName"));
    }
    spec.external_name.clone()
}

/// `spec.selector`, sorted by key; `None` when empty.
fn selector(spec: &k8s::ServiceSpec) -> Option<Box<[(String, String)]>> {
    let pairs = spec.selector.as_ref().filter(|s| !s.is_empty())?;
    Some(pairs.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

fn label<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.labels.as_ref()?.get(key).map(String::as_str)
}

fn validate_meta(f: &mut Fields<'_>, namespace: &str, name: &str) {
    if name.is_empty() {
        f.required(FieldPath::of("metadata.name"));
    } else if !field::is_dns1035_label(name) {
        f.invalid_str(FieldPath::of("metadata.name"), name, field::DNS1035_LABEL);
    }
    if !field::is_dns1123_label(namespace) {
        f.invalid_str(FieldPath::of("metadata.namespace"), namespace, field::DNS1123_LABEL);
    }
}

fn service_type(f: &mut Fields<'_>, spec: &k8s::ServiceSpec) -> ServiceType {
    match spec.type_.as_deref().unwrap_or("ClusterIP") {
        "ClusterIP" | "" => ServiceType::ClusterIp,
        "NodePort" => ServiceType::NodePort,
        "LoadBalancer" => ServiceType::LoadBalancer,
        "ExternalName" => ServiceType::ExternalName,
        other => {
            let supported = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
            f.unsupported(FieldPath::of("spec.type"), other, &supported);
            ServiceType::ClusterIp
        }
    }
}

fn cluster_ip(f: &mut Fields<'_>, spec: &k8s::ServiceSpec, kind: ServiceType) -> ClusterIp {
    if kind == ServiceType::ExternalName {
        external_name_forbidden(f, spec);
        return ClusterIp::Headless;
    }
    let single = spec.cluster_ip.as_deref().filter(|s| !s.is_empty());
    let listed = spec.cluster_ips.as_deref().unwrap_or_default();
    if let (Some(one), Some(first)) = (single, listed.first())
        && one != first
    {
        let why = "first value must match `clusterIP`";
        f.invalid(FieldPath::of("spec.clusterIPs"), family::go_strings(listed), why);
    }
    match (single, listed) {
        (Some("None"), _) => {
            if matches!(kind, ServiceType::NodePort | ServiceType::LoadBalancer) {
                let why = "may not be set to 'None' for NodePort or LoadBalancer services";
                f.invalid_str(FieldPath::of("spec.clusterIP"), "None", why);
            }
            ClusterIp::Headless
        }
        (Some(ip), []) => match service_ip(f, || FieldPath::of("spec.clusterIP"), ip) {
            Some(ip) => ClusterIp::Set(vec![ip]),
            None => ClusterIp::Allocate,
        },
        (_, []) => ClusterIp::Allocate,
        (_, [first, ..]) if first == "None" => ClusterIp::Headless,
        (_, listed) => {
            let ips = ips(f, "spec.clusterIPs", Some(listed));
            if ips.is_empty() { ClusterIp::Allocate } else { ClusterIp::Set(ips) }
        }
    }
}

/// What an ExternalName Service (a DNS alias) must not carry. The API
/// server copies `clusterIP` into `clusterIPs` before validating, so a
/// `clusterIP` alone is reported as `clusterIPs`.
fn external_name_forbidden(f: &mut Fields<'_>, spec: &k8s::ServiceSpec) {
    let why = "may not be set for ExternalName services";
    let cluster_ip = spec.cluster_ip.as_deref().is_some_and(|ip| !ip.is_empty());
    if cluster_ip || spec.cluster_ips.as_ref().is_some_and(|ips| !ips.is_empty()) {
        f.forbidden(FieldPath::of("spec.clusterIPs"), why);
    }
    if spec.ip_families.as_ref().is_some_and(|families| !families.is_empty()) {
        f.forbidden(FieldPath::of("spec.ipFamilies"), why);
    }
    if spec.ip_family_policy.is_some() {
        f.forbidden(FieldPath::of("spec.ipFamilyPolicy"), why);
    }
}

fn ports(
    f: &mut Fields<'_>,
    spec: &k8s::ServiceSpec,
    kind: ServiceType,
    cluster_ip: &ClusterIp,
    names: &mut Names,
) -> Vec<ServicePort> {
    let list = spec.ports.as_deref().unwrap_or_default();
    if list.is_empty() && kind != ServiceType::ExternalName && *cluster_ip != ClusterIp::Headless {
        f.required(FieldPath::of("spec.ports"));
    }
    // Sets, not scans of the ports so far: a Service may list thousands.
    let mut seen = Seen::default();
    let mut out: Vec<ServicePort> = Vec::with_capacity(list.len());
    for (i, raw) in list.iter().enumerate() {
        let at = || FieldPath::of("spec.ports").index(i);
        let port = service_port(f, &at, raw, list.len() > 1, kind, names);
        if !port.name.is_empty() && !seen.names.insert(port.name.clone()) {
            f.duplicate(at().field("name"), format_args!("{:?}", port.name));
        }
        if !seen.ports.insert((port.port, port.protocol)) {
            let value = format!("{{\"protocol\":\"{}\",\"port\":{}}}", port.protocol, port.port);
            f.duplicate(at(), value);
        }
        if let Some(node_port) = port.node_port
            && !seen.node_ports.insert((node_port, port.protocol))
        {
            f.duplicate(at().field("nodePort"), node_port);
        }
        out.push(port);
    }
    out
}

/// What the ports of one Service claimed so far.
#[derive(Default)]
struct Seen {
    names: FxHashSet<Arc<str>>,
    ports: FxHashSet<(u16, Protocol)>,
    node_ports: FxHashSet<(u16, Protocol)>,
}

/// One `spec.ports[i]`; `at` builds its path, only for errors.
fn service_port(
    f: &mut Fields<'_>,
    at: &impl Fn() -> FieldPath,
    raw: &k8s::ServicePort,
    multi: bool,
    kind: ServiceType,
    names: &mut Names,
) -> ServicePort {
    let name = raw.name.as_deref().unwrap_or_default();
    if name.is_empty() && multi {
        f.required(at().field("name"));
    } else if !name.is_empty() && !field::is_dns1123_label(name) {
        f.invalid_str(at().field("name"), name, field::DNS1123_LABEL);
    }
    let port = port_number(f, at, "port", raw.port).unwrap_or(0);
    let protocol = Protocol::parse(f, raw.protocol.as_deref(), || at().field("protocol"));
    let target = target_port(f, at, raw.target_port.as_ref(), port);
    let node_port = node_port(f, at, raw.node_port, kind);
    let app_protocol = raw.app_protocol.clone().filter(|s| !s.is_empty());
    let label = if name.is_empty() { names.number(port) } else { names.get(name) };
    let name = if name.is_empty() { names.get("") } else { label.clone() };
    ServicePort { name, label, port, protocol, target, node_port, app_protocol }
}

/// A required port field `child` of the path `at` builds; k8s-openapi
/// decodes a missing one as 0, so a 0 is told apart from a missing field by
/// the manifest's own lines.
pub(crate) fn port_number(
    f: &mut Fields<'_>,
    at: &impl Fn() -> FieldPath,
    child: &'static str,
    value: i32,
) -> Option<u16> {
    if let Some(port) = u16::try_from(value).ok().filter(|p| *p > 0) {
        return Some(port);
    }
    let path = at().field(child);
    if f.present(&path) {
        f.invalid(path, value, field::PORT_RANGE)
    } else {
        f.required(path)
    }
    None
}

fn target_port(
    f: &mut Fields<'_>,
    at: &impl Fn() -> FieldPath,
    raw: Option<&IntOrString>,
    port: u16,
) -> TargetPort {
    match raw {
        // The API server defaults an unset or zero targetPort to `port`.
        None | Some(IntOrString::Int(0)) => TargetPort::Number(port),
        Some(IntOrString::String(s)) if s.is_empty() => TargetPort::Number(port),
        Some(IntOrString::Int(n)) => match u16::try_from(*n) {
            Ok(n) => TargetPort::Number(n),
            Err(_) => {
                f.invalid(at().field("targetPort"), n, field::PORT_RANGE);
                TargetPort::Number(port)
            }
        },
        Some(IntOrString::String(s)) => {
            if !field::is_port_name(s) {
                f.invalid_str(at().field("targetPort"), s, field::PORT_NAME);
            }
            TargetPort::Name(s.clone())
        }
    }
}

fn node_port(
    f: &mut Fields<'_>,
    at: &impl Fn() -> FieldPath,
    raw: Option<i32>,
    kind: ServiceType,
) -> Option<u16> {
    let value = raw.filter(|n| *n != 0)?;
    if !matches!(kind, ServiceType::NodePort | ServiceType::LoadBalancer) {
        f.forbidden(at().field("nodePort"), "may not be used when `type` is 'ClusterIP'");
        return None;
    }
    match u16::try_from(value).ok().filter(|n| node_port_range(f, *n)) {
        Some(n) => Some(n),
        None => {
            let why = format!(
                "provided port is not in the valid range. The range of valid ports is {}-{}",
                NODE_PORTS.start(),
                NODE_PORTS.end()
            );
            f.invalid(at().field("nodePort"), value, &why);
            None
        }
    }
}

/// `spec.healthCheckNodePort`, as the API server checks it: only on a
/// LoadBalancer Service with `externalTrafficPolicy: Local`, in the
/// NodePort range.
fn health_check_node_port(f: &mut Fields<'_>, raw: Option<i32>, allowed: bool) -> Option<u16> {
    let value = raw.filter(|n| *n != 0)?;
    let at = || FieldPath::of("spec.healthCheckNodePort");
    if !allowed {
        let why =
            "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'";
        f.invalid(at(), value, why);
        return None;
    }
    let port = u16::try_from(value).ok().filter(|n| node_port_range(f, *n));
    if port.is_none() {
        let why = format!(
            "provided port is not in the valid range. The range of valid ports is {}-{}",
            NODE_PORTS.start(),
            NODE_PORTS.end()
        );
        f.invalid(at(), value, &why);
    }
    port
}

/// Whether `port` is in the NodePort range: 30000-32767 in a manifest, the
/// API server's default; any port from the API server, whose
/// `--service-node-port-range` may be another and allocated it.
fn node_port_range(f: &Fields<'_>, port: u16) -> bool {
    NODE_PORTS.contains(&port) || (f.api_checked() && port != 0)
}

fn ips(f: &mut Fields<'_>, path: &'static str, raw: Option<&[String]>) -> Vec<IpAddr> {
    let list = raw.unwrap_or_default().iter().enumerate();
    list.filter_map(|(i, text)| service_ip(f, || FieldPath::of(path).index(i), text)).collect()
}

/// An address a Service may be reached on: an IP, neither unspecified (it
/// would take the port on every address) nor multicast. `path` builds the
/// field's path, only for errors.
fn service_ip(f: &mut Fields<'_>, path: impl Fn() -> FieldPath, text: &str) -> Option<IpAddr> {
    let Some(ip) = field::parse_ip(text) else {
        f.invalid_str(path(), text, field::IP_ADDRESS);
        return None;
    };
    if ip.is_unspecified() || ip.is_multicast() {
        f.invalid_str(path(), text, "may not be unspecified (0.0.0.0, ::) or multicast");
        return None;
    }
    Some(ip)
}

fn ingress_ips(f: &mut Fields<'_>, status: Option<&k8s::LoadBalancerStatus>) -> Vec<IpAddr> {
    let path = |i: usize| FieldPath::of("status.loadBalancer.ingress").index(i).field("ip");
    let mut out = Vec::new();
    for (i, ingress) in
        status.and_then(|s| s.ingress.as_deref()).unwrap_or_default().iter().enumerate()
    {
        let Some(text) = ingress.ip.as_deref().filter(|s| !s.is_empty()) else {
            continue;
        };
        let ip = service_ip(f, || path(i), text);
        // `ipMode: Proxy`: the load balancer delivers to the nodes, not to
        // this IP, so kube-proxy does not take it over; nor do we.
        if ingress.ip_mode.as_deref() != Some("Proxy") {
            out.extend(ip);
        }
    }
    out
}

fn affinity(f: &mut Fields<'_>, spec: &k8s::ServiceSpec) -> Option<Duration> {
    match spec.session_affinity.as_deref().unwrap_or("None") {
        "None" | "" => {
            if spec.session_affinity_config.is_some() {
                let why = "must not be set when `sessionAffinity` is None";
                f.forbidden(FieldPath::of("spec.sessionAffinityConfig"), why);
            }
            None
        }
        "ClientIP" => {
            let path = FieldPath::of("spec.sessionAffinityConfig.clientIP.timeoutSeconds");
            let config = spec.session_affinity_config.as_ref().and_then(|c| c.client_ip.as_ref());
            let seconds = config.and_then(|c| c.timeout_seconds);
            let seconds = match seconds.map(u32::try_from) {
                None => DEFAULT_AFFINITY_SECONDS,
                Some(Ok(s)) if (1..=MAX_AFFINITY_SECONDS).contains(&s) => s,
                Some(_) => {
                    let why = format!(
                        "must be greater than 0 and less than or equal to {MAX_AFFINITY_SECONDS}"
                    );
                    f.invalid(path, seconds.unwrap_or_default(), &why);
                    DEFAULT_AFFINITY_SECONDS
                }
            };
            Some(Duration::from_secs(u64::from(seconds)))
        }
        other => {
            f.unsupported(FieldPath::of("spec.sessionAffinity"), other, &["ClientIP", "None"]);
            None
        }
    }
}

/// True for `Local`.
fn traffic_policy(f: &mut Fields<'_>, path: &'static str, raw: &Option<String>) -> bool {
    match raw.as_deref().unwrap_or("Cluster") {
        "Cluster" | "" => false,
        "Local" => true,
        other => {
            f.unsupported(FieldPath::of(path), other, &["Cluster", "Local"]);
            false
        }
    }
}
