//! The first routing table holds both kinds whole: a Service listed
//! without its EndpointSlices would reset its clients.

use std::time::Duration;

use super::{Cluster, service};
use crate::support::endpoint::Endpoint;
use crate::support::net::{fetch, fresh_ip, refuses};

#[test]
fn nothing_is_published_before_both_lists_are_complete() {
    let cluster = Cluster::start();
    let e1 = Endpoint::name(fresh_ip(), "e1");
    let (frontend, objects) = service("web", &[&e1]);
    cluster.api.apply(&objects);
    cluster.api.hold_lists("EndpointSlice", true);
    let mut proxy = cluster.proxy(&[]);

    // The Services are listed and watched; the EndpointSlices' list hangs.
    cluster.api.wait_for_watches("Service", 1, Duration::from_secs(10));
    let admin = proxy.admin();
    let (status, body) = admin.healthz().expect("healthz");
    assert_eq!(status, 503, "{body}\n{}", proxy.log());
    assert!(refuses(frontend), "a frontend is bound before the EndpointSlices are listed");
    assert_eq!(proxy.metric("svcproxy_routing_generation"), 0.0, "{}", proxy.log());

    cluster.api.hold_lists("EndpointSlice", false);
    assert_eq!(proxy.wait_ready(|| fetch(frontend)), "e1");
    // Published once, with both kinds.
    assert_eq!(proxy.metric("svcproxy_routing_generation"), 1.0, "{}", proxy.log());
    let (status, body) = admin.healthz().expect("healthz");
    assert_eq!(status, 200, "{body}\n{}", proxy.log());
}

#[test]
fn an_api_server_down_at_start_is_retried_and_healthz_says_503_until_listed() {
    let cluster = Cluster::start();
    let e1 = Endpoint::name(fresh_ip(), "e1");
    let (frontend, objects) = service("web", &[&e1]);
    cluster.api.apply(&objects);
    cluster.api.stop();
    let mut proxy = cluster.proxy(&[]);
    let admin = proxy.admin();
    // Tried a few times (client-go's backoff), logged once per kind.
    std::thread::sleep(Duration::from_secs(3));
    let (status, _) = admin.healthz().expect("healthz");
    assert_eq!(status, 503, "{}", proxy.log());
    let log = proxy.log();
    let warnings = log.lines().filter(|l| l.contains("WARN") && l.contains("API server")).count();
    assert!(warnings <= 2, "one warning per kind, not one per try:\n{log}");

    cluster.api.start_again();
    let until = super::RECONNECT;
    let got = crate::support::net::eventually("served after the API server came up", until, || {
        fetch(frontend)
    });
    assert_eq!(got, "e1");
    assert_eq!(admin.healthz().expect("healthz").0, 200, "{}", proxy.log());
    proxy.assert_running();
}
