//! svcproxy's own Service annotations: how its HTTP ports time out and
//! balance. A value it cannot read is a field error, as the API server
//! would give for a field: the Service keeps its last good version.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::field::Fields;
use crate::manifest::FieldPath;

/// The annotation that bounds an HTTP request's wait for its response.
pub const REQUEST_TIMEOUT: &str = "svcproxy.io/request-timeout";
/// The annotation that picks how a Service's endpoints are chosen.
pub const LB_POLICY: &str = "svcproxy.io/lb-policy";
/// The annotation that ends a UDP flow once it has had this many replies
/// per datagram sent (nginx's `proxy_responses`).
pub const UDP_RESPONSES: &str = "svcproxy.io/udp-responses";

/// How a Service port picks an endpoint for a connection (TCP) or a
/// request (HTTP).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Policy {
    /// In turn, as kube-proxy.
    #[default]
    RoundRobin,
    /// The less busy of two endpoints picked at random (Envoy's
    /// `LEAST_REQUEST`: power of two choices): requests in flight on HTTP
    /// ports, open connections on TCP ports.
    LeastRequest,
}

/// What the annotations ask of a Service.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Annotations {
    /// How long an HTTP request may wait for its response head (none:
    /// long polls and streams live).
    pub request_timeout: Option<Duration>,
    pub policy: Policy,
    /// UDP ports: replies per datagram after which a flow ends (none: only
    /// `--udp-timeout` of silence ends it).
    pub udp_responses: Option<u32>,
}

// === impl Policy ===

impl Policy {
    /// The annotation's value for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::RoundRobin => "round-robin",
            Policy::LeastRequest => "least-request",
        }
    }
}

/// The annotations of `meta`, each checked.
pub(super) fn read(f: &mut Fields<'_>, meta: &ObjectMeta) -> Annotations {
    let Some(annotations) = meta.annotations.as_ref() else { return Annotations::default() };
    Annotations {
        request_timeout: annotations.get(REQUEST_TIMEOUT).and_then(|v| request_timeout(f, v)),
        policy: annotations.get(LB_POLICY).map_or(Policy::RoundRobin, |v| policy(f, v)),
        udp_responses: annotations.get(UDP_RESPONSES).and_then(|v| udp_responses(f, v)),
    }
}

/// A duration as the flags read them (`30s`, `1m`), more than zero.
fn request_timeout(f: &mut Fields<'_>, value: &str) -> Option<Duration> {
    match humantime::parse_duration(value.trim()) {
        Ok(timeout) if !timeout.is_zero() => Some(timeout),
        _ => {
            let at = FieldPath::of("metadata.annotations").field(REQUEST_TIMEOUT);
            f.invalid_str(at, value, "must be a duration such as 30s or 1m, more than zero");
            None
        }
    }
}

/// A whole number of replies, at least one.
fn udp_responses(f: &mut Fields<'_>, value: &str) -> Option<u32> {
    match value.trim().parse::<u32>() {
        Ok(n) if n > 0 => Some(n),
        _ => {
            let at = FieldPath::of("metadata.annotations").field(UDP_RESPONSES);
            f.invalid_str(at, value, "must be a whole number of replies, at least 1");
            None
        }
    }
}

fn policy(f: &mut Fields<'_>, value: &str) -> Policy {
    match value.trim() {
        "round-robin" => Policy::RoundRobin,
        "least-request" => Policy::LeastRequest,
        _ => {
            let at = FieldPath::of("metadata.annotations").field(LB_POLICY);
            f.unsupported(at, value, &["least-request", "round-robin"]);
            Policy::RoundRobin
        }
    }
}
