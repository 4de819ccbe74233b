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
