//! The UDP families of a Service port, plain atomics as the rest of the
//! traffic: only a port a build served as UDP carries them
//! ([`PortStats::serve_udp`]), written from then on, zeros included, and
//! removed with the port. A datagram touches two atomics.

use std::fmt::Write as _;
use std::sync::Arc;

use super::traffic::{Counter, Gauge, PortStats, header, labels};
use super::{UDP_DATAGRAMS, UDP_DROPPED, UDP_FLOWS_ACTIVE};

/// Which way a datagram went (the `direction` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From a client, to the proxy.
    Received,
    /// From the proxy, to a client.
    Sent,
}

/// Why a datagram was not forwarded (the `reason` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dropped {
    /// The Route has no endpoint.
    NoEndpoints,
    /// A new flow found the flow table full (`--udp-max-flows`).
    FlowTableFull,
    /// The endpoint answered with ICMP port unreachable.
    EndpointUnreachable,
    /// A socket's buffer was full, or a send failed otherwise.
    SendFailed,
    /// A LoadBalancer ingress IP, and the client outside the Service's
    /// `loadBalancerSourceRanges`.
    SourceRange,
}

/// One UDP Service port's datagrams and flows.
#[derive(Debug, Default)]
pub struct UdpStats {
    /// By [`Direction`], in the order of [`Direction::ALL`].
    datagrams: [Counter; 2],
    /// Flows open now.
    pub flows: Gauge,
    /// By [`Dropped`], in the order of [`Dropped::ALL`].
    dropped: [Counter; Dropped::ALL.len()],
}

// === impl Direction ===

impl Direction {
    pub const ALL: [Self; 2] = [Self::Received, Self::Sent];

    pub fn label(self) -> &'static str {
        match self {
            Self::Received => "received",
            Self::Sent => "sent",
        }
    }
}

// === impl Dropped ===

impl Dropped {
    /// Every reason, in the order the counters are kept and shown.
    pub const ALL: [Self; 5] = [
        Self::NoEndpoints,
        Self::FlowTableFull,
        Self::EndpointUnreachable,
        Self::SendFailed,
        Self::SourceRange,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Self::NoEndpoints => "no_endpoints",
            Self::FlowTableFull => "flow_table_full",
            Self::EndpointUnreachable => "endpoint_unreachable",
            Self::SendFailed => "send_failed",
            Self::SourceRange => "source_range",
        }
    }
}

// === impl UdpStats ===

impl UdpStats {
    /// The count of datagrams that went `direction`.
    pub fn datagrams(&self, direction: Direction) -> &Counter {
        &self.datagrams[direction as usize]
    }

    /// The count of datagrams dropped for `reason`.
    pub fn dropped(&self, reason: Dropped) -> &Counter {
        &self.dropped[reason as usize]
    }
}

/// The UDP families of every port that has them.
pub(super) fn render(out: &mut String, ports: &[Arc<PortStats>]) {
    let udp: Vec<(&PortStats, &UdpStats)> =
        ports.iter().filter_map(|s| s.udp().map(|u| (&**s, u))).collect();
    header(
        out,
        UDP_DATAGRAMS,
        "counter",
        "UDP datagrams from clients (received) and to them (sent).",
    );
    for (s, u) in &udp {
        for direction in Direction::ALL {
            let l = labels(&s.key, &[("direction", direction.label())]);
            let _ = writeln!(out, "{UDP_DATAGRAMS}{{{l}}} {}", u.datagrams(direction).get());
        }
    }
    header(out, UDP_FLOWS_ACTIVE, "gauge", "UDP flows open now.");
    for (s, u) in &udp {
        let _ = writeln!(out, "{UDP_FLOWS_ACTIVE}{{{}}} {}", labels(&s.key, &[]), u.flows.get());
    }
    header(out, UDP_DROPPED, "counter", "UDP datagrams not forwarded, by reason.");
    for (s, u) in &udp {
        for reason in Dropped::ALL {
            let l = labels(&s.key, &[("reason", reason.label())]);
            let _ = writeln!(out, "{UDP_DROPPED}{{{l}}} {}", u.dropped(reason).get());
        }
    }
}
