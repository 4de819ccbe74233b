use std::sync::Arc;

use super::*;
use crate::metrics::Metrics;
use crate::table::{FrontendKind, Mode, RouteEndpoint};

fn route(n: u8, affinity: Option<Duration>) -> Route {
    let metrics = Metrics::new().unwrap();
    let in_use = metrics.begin();
    let stats = metrics.port(&ServiceId::new("ns", "svc"), &Arc::from("http"), &in_use);
    let endpoint = metrics.endpoint(&stats, SocketAddr::from(([127, 0, 1, 1], 80)), &in_use);
    Route {
        service: ServiceId::new("ns", "svc"),
        port: Arc::from("http"),
        kind: FrontendKind::ClusterIp,
        mode: Mode::Tcp,
        endpoints: (1..=n)
            .map(|i| RouteEndpoint {
                addr: SocketAddr::from(([127, 0, 1, i], 80)),
                terminating: false,
                stats: endpoint.clone(),
            })
            .collect(),
        affinity,
        request_timeout: None,
        policy: Policy::RoundRobin,
        udp_responses: None,
        topology: crate::model::Topology::Any,
        source_ranges: None,
        cursor: Default::default(),
        stats,
    }
}

/// The address of the first endpoint a plan tries (they are 127.0.1.i:80).
fn first(plan: &Plan) -> SocketAddr {
    SocketAddr::from(([127, 0, 1, plan.iter().next().unwrap() as u8 + 1], 80))
}

#[test]
fn round_robin_is_exactly_fair() {
    let (balancer, route, now) = (Balancer::default(), route(3, None), Instant::now());
    let mut counts = [0usize; 3];
    for _ in 0..3000 {
        let addr = first(&balancer.plan(&route, [127, 0, 0, 1].into(), now));
        counts[usize::from(match addr.ip() {
            IpAddr::V4(v4) => v4.octets()[3],
            _ => 0,
        }) - 1] += 1;
    }
    assert_eq!(counts, [1000, 1000, 1000]);
}

#[test]
fn a_plan_holds_at_most_four_distinct_endpoints() {
    let (balancer, now) = (Balancer::default(), Instant::now());
    let plan = balancer.plan(&route(6, None), [127, 0, 0, 1].into(), now);
    let addrs: Vec<usize> = plan.iter().collect();
    assert_eq!(addrs.len(), MAX_ATTEMPTS);
    let mut unique = addrs.clone();
    unique.dedup();
    assert_eq!(unique, addrs);
    assert_eq!(balancer.plan(&route(2, None), [127, 0, 0, 1].into(), now).iter().count(), 2);
    assert!(balancer.plan(&route(0, None), [127, 0, 0, 1].into(), now).is_empty());
}

#[test]
fn a_failed_endpoint_is_skipped_then_retried_after_its_backoff() {
    let (balancer, route, now) = (Balancer::default(), route(3, None), Instant::now());
    let bad = route.endpoints[0].addr;
    balancer.failed(bad, now);
    for _ in 0..6 {
        assert_ne!(first(&balancer.plan(&route, [127, 0, 0, 1].into(), now)), bad);
    }
    assert!(!balancer.is_ejected(bad, now + Duration::from_secs(1)));
    balancer.connected(&route, [127, 0, 0, 1].into(), bad, now);
    assert_eq!(balancer.ejected_count.load(Ordering::Relaxed), 0);
}

#[test]
fn every_endpoint_ejected_still_yields_a_plan() {
    let (balancer, route, now) = (Balancer::default(), route(2, None), Instant::now());
    for t in &route.endpoints {
        balancer.failed(t.addr, now);
    }
    assert_eq!(balancer.plan(&route, [127, 0, 0, 1].into(), now).iter().count(), 2);
}

#[test]
fn affinity_pins_a_client_until_its_timeout() {
    let (balancer, now) = (Balancer::default(), Instant::now());
    let route = route(3, Some(Duration::from_secs(10)));
    let client: IpAddr = [127, 0, 9, 9].into();
    let pinned = first(&balancer.plan(&route, client, now));
    balancer.connected(&route, client, pinned, now);
    for i in 0..10 {
        let at = now + Duration::from_secs(i);
        assert_eq!(first(&balancer.plan(&route, client, at)), pinned);
        balancer.connected(&route, client, pinned, at);
    }
    // 10 s without a connection: the pin has expired, round robin moves on.
    let later = now + Duration::from_secs(30);
    let picks: Vec<SocketAddr> =
        (0..3).map(|_| first(&balancer.plan(&route, client, later))).collect();
    assert!(picks.iter().any(|p| *p != pinned));
}

#[test]
fn the_pin_table_is_bounded() {
    let (balancer, now) = (Balancer::default(), Instant::now());
    let route = route(1, Some(Duration::from_secs(60)));
    let endpoint = route.endpoints[0].addr;
    for i in 0..(MAX_PINS as u32 + 500) {
        balancer.connected(&route, IpAddr::from(i.to_be_bytes()), endpoint, now);
    }
    assert_eq!(balancer.pins(), MAX_PINS);
}

/// Routes whose endpoints each have their own stats (in flight apart).
fn least_request_route(n: u8) -> Route {
    let metrics = Metrics::new().unwrap();
    let in_use = metrics.begin();
    let mut route = route(n, None);
    for endpoint in &mut route.endpoints {
        endpoint.stats = metrics.endpoint(&route.stats, endpoint.addr, &in_use);
    }
    route.policy = Policy::LeastRequest;
    route
}

#[test]
fn least_request_never_picks_the_busiest_of_three_first_and_spreads_the_rest() {
    let (balancer, route, now) = (Balancer::default(), least_request_route(3), Instant::now());
    let busy = Balancer::outstanding(&route, &route.endpoints[0]);
    let mut counts = [0usize; 3];
    for _ in 0..3000 {
        let plan = balancer.plan(&route, IpAddr::from([10, 0, 0, 1]), now);
        counts[plan.iter().next().unwrap()] += 1;
        assert_eq!(plan.iter().count(), 3, "the others follow, for retries");
    }
    assert_eq!(counts[0], 0, "{counts:?}");
    // Two idle ones: each first in about half the plans.
    assert!(counts[1] > 1200 && counts[2] > 1200, "{counts:?}");
    drop(busy);
    assert_eq!(route.endpoints[0].stats.in_flight.load(Ordering::Relaxed), 0);
}

#[test]
fn least_request_skips_an_ejected_endpoint() {
    let (balancer, route, now) = (Balancer::default(), least_request_route(2), Instant::now());
    balancer.failed(route.endpoints[1].addr, now);
    let _busy: Vec<_> =
        (0..5).filter_map(|_| Balancer::outstanding(&route, &route.endpoints[0])).collect();
    for _ in 0..100 {
        let plan = balancer.plan(&route, IpAddr::from([10, 0, 0, 1]), now);
        assert_eq!(first(&plan), route.endpoints[0].addr);
    }
}

#[test]
fn round_robin_counts_nothing_in_flight() {
    let route = route(2, None);
    assert!(Balancer::outstanding(&route, &route.endpoints[0]).is_none());
}
