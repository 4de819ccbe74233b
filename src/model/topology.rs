//! Topology-aware routing, as kube-proxy's `CategorizeEndpoints` decides
//! it: an EndpointSlice may hint, per endpoint, the zones (and nodes) it
//! should serve. When every ready endpoint carries a hint and some are
//! hinted for this node (or its zone), only those take the Service's
//! Cluster-policy traffic; otherwise every endpoint does.

use std::sync::Arc;

use k8s_openapi::api::discovery::v1 as discovery;

use super::names::Names;
use super::resolve::Endpoint;

/// An endpoint's `hints`: the zones and nodes it should serve (ordered,
/// so one address's listings are ordered whole).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Hints {
    pub zones: Box<[Arc<str>]>,
    /// `forNodes` (trafficDistribution `PreferSameNode`).
    pub nodes: Box<[Arc<str>]>,
}

/// Which endpoints take a port's Cluster-policy traffic on this node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Topology {
    /// Every endpoint (no hints, or hints ignored).
    #[default]
    Any,
    /// Only those hinted for this zone.
    SameZone(Arc<str>),
    /// Only those hinted for this node.
    SameNode(Arc<str>),
}

/// Why a port's zone hints were not followed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ignored {
    /// A ready endpoint has no zone hint.
    MissingHint,
    /// The Node has no `topology.kubernetes.io/zone` label, or no Node
    /// object was found.
    NoZone,
    /// No ready endpoint is hinted for this zone.
    NoneForZone(Arc<str>),
}

/// The topology of a port, and why hints were ignored when some exist.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Choice {
    pub topology: Topology,
    pub ignored: Option<Ignored>,
}

/// Reads an EndpointSlice endpoint's hints; `None` when it has none.
pub(crate) fn hints(
    raw: Option<&discovery::EndpointHints>,
    names: &mut Names,
) -> Option<Arc<Hints>> {
    let raw = raw?;
    let zones = raw.for_zones.as_deref().unwrap_or_default().iter().map(|z| names.get(&z.name));
    let zones: Box<[Arc<str>]> = zones.collect();
    let nodes = raw.for_nodes.as_deref().unwrap_or_default().iter().map(|n| names.get(&n.name));
    let nodes: Box<[Arc<str>]> = nodes.collect();
    (!zones.is_empty() || !nodes.is_empty()).then(|| Arc::new(Hints { zones, nodes }))
}

/// kube-proxy's `topologyModeFromHints` over a port's `endpoints`, for the
/// node `node` in `zone`: node hints first, then zone hints, judged on the
/// ready endpoints only.
pub fn choose(endpoints: &[Endpoint], node: &str, zone: Option<&str>) -> Choice {
    let ready = || endpoints.iter().filter(|e| e.ready);
    let hints = |e: &Endpoint| e.hints.clone().unwrap_or_default();
    if ready().all(|e| e.hints.as_ref().is_some_and(|h| !h.nodes.is_empty()))
        && ready().any(|e| hints(e).nodes.iter().any(|n| &**n == node))
    {
        return Choice { topology: Topology::SameNode(node.into()), ignored: None };
    }
    let zoned = |e: &Endpoint| e.hints.as_ref().is_some_and(|h| !h.zones.is_empty());
    if !ready().any(zoned) {
        // No zone hints at all: nothing was ignored.
        return Choice::default();
    }
    let ignored = if !ready().all(zoned) {
        Ignored::MissingHint
    } else {
        match zone {
            None => Ignored::NoZone,
            Some(zone) if ready().any(|e| hints(e).zones.iter().any(|z| &**z == zone)) => {
                return Choice { topology: Topology::SameZone(zone.into()), ignored: None };
            }
            Some(zone) => Ignored::NoneForZone(zone.into()),
        }
    };
    Choice { topology: Topology::Any, ignored: Some(ignored) }
}

// === impl Topology ===

impl Topology {
    /// True when `endpoint` may take traffic under this topology.
    pub fn allows(&self, endpoint: &Endpoint) -> bool {
        let hinted = |list: fn(&Hints) -> &[Arc<str>], want: &str| {
            endpoint.hints.as_ref().is_some_and(|h| list(h).iter().any(|x| &**x == want))
        };
        match self {
            Topology::Any => true,
            Topology::SameZone(zone) => hinted(|h| &h.zones, zone),
            Topology::SameNode(node) => hinted(|h| &h.nodes, node),
        }
    }

    /// kube-proxy's name of the mode (`PreferSameZone`, `PreferSameNode`),
    /// `None` for every endpoint.
    pub fn as_str(&self) -> Option<&'static str> {
        match self {
            Topology::Any => None,
            Topology::SameZone(_) => Some("PreferSameZone"),
            Topology::SameNode(_) => Some("PreferSameNode"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::{Choice, Hints, Ignored, Topology, choose};
    use crate::model::resolve::Endpoint;
    use crate::model::usable;

    /// An endpoint `n` (127.0.0.n:80), ready or not, hinted for `zones`
    /// and `nodes` (no hints at all when both are empty).
    fn endpoint(n: u8, ready: bool, zones: &[&str], nodes: &[&str]) -> Endpoint {
        let list = |l: &[&str]| l.iter().map(|s| Arc::from(*s)).collect();
        let hints = (!zones.is_empty() || !nodes.is_empty())
            .then(|| Arc::new(Hints { zones: list(zones), nodes: list(nodes) }));
        Endpoint {
            addr: ([127, 0, 0, n], 80).into(),
            ready,
            serving: true,
            terminating: !ready,
            node_name: None,
            hints,
        }
    }

    fn picked(endpoints: &[Endpoint], zone: Option<&str>) -> Vec<u8> {
        let topology = choose(endpoints, "node-a", zone).topology;
        let last = |e: &Endpoint| match e.addr.ip() {
            std::net::IpAddr::V4(ip) => ip.octets()[3],
            std::net::IpAddr::V6(_) => 0,
        };
        usable(endpoints, None, &topology).map(last).collect()
    }

    #[test]
    fn endpoints_hinted_for_this_zone_are_the_only_ones_used() {
        let all = [
            endpoint(1, true, &["a"], &[]),
            endpoint(2, true, &["b"], &[]),
            endpoint(3, true, &["a"], &[]),
        ];
        assert_eq!(choose(&all, "node-a", Some("a")).topology, Topology::SameZone("a".into()));
        assert_eq!(picked(&all, Some("a")), [1, 3]);
        assert_eq!(picked(&all, Some("b")), [2]);
    }

    #[test]
    fn no_endpoint_for_this_zone_or_no_zone_means_every_endpoint() {
        let all = [endpoint(1, true, &["a"], &[]), endpoint(2, true, &["b"], &[])];
        let none_for_c = choose(&all, "node-a", Some("c"));
        assert_eq!(none_for_c.ignored, Some(Ignored::NoneForZone("c".into())));
        assert_eq!(picked(&all, Some("c")), [1, 2]);
        assert_eq!(choose(&all, "node-a", None).ignored, Some(Ignored::NoZone));
        assert_eq!(picked(&all, None), [1, 2]);
    }

    #[test]
    fn one_ready_endpoint_without_a_hint_means_every_endpoint() {
        let all = [endpoint(1, true, &["a"], &[]), endpoint(2, true, &[], &[])];
        assert_eq!(choose(&all, "node-a", Some("a")).ignored, Some(Ignored::MissingHint));
        assert_eq!(picked(&all, Some("a")), [1, 2]);
        // An endpoint that is not ready does not count.
        let all = [
            endpoint(1, true, &["a"], &[]),
            endpoint(2, false, &[], &[]),
            endpoint(3, true, &["b"], &[]),
        ];
        assert_eq!(picked(&all, Some("a")), [1]);
    }

    #[test]
    fn no_hints_at_all_is_nothing_to_note() {
        let all = [endpoint(1, true, &[], &[]), endpoint(2, true, &[], &[])];
        assert_eq!(choose(&all, "node-a", Some("a")), Choice::default());
    }

    #[test]
    fn node_hints_come_before_zone_hints() {
        let all = [endpoint(1, true, &["a"], &["node-a"]), endpoint(2, true, &["a"], &["node-b"])];
        assert_eq!(choose(&all, "node-a", Some("a")).topology, Topology::SameNode("node-a".into()));
        assert_eq!(picked(&all, Some("a")), [1]);
        // No endpoint for this node: the zone hints decide.
        let all = [endpoint(1, true, &["a"], &["node-b"]), endpoint(2, true, &["b"], &["node-c"])];
        assert_eq!(picked(&all, Some("a")), [1]);
    }

    #[test]
    fn with_no_ready_endpoint_the_terminating_ones_serve_whatever_their_hints() {
        let all = [endpoint(1, false, &["b"], &[]), endpoint(2, false, &["a"], &[])];
        assert_eq!(picked(&all, Some("a")), [1, 2]);
    }
}
