//! The first routing table holds both kinds whole: a Service listed
//! without its EndpointSlices would reset its clients.

use std::time::Duration;

use super::{Cluster, service};
use crate::support::endpoint::Endpoint;
use crate::support::net::{eventually, fetch, fresh_ip, refuses};

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
    // Three kinds: Services, EndpointSlices and this node's Node.
    assert!(warnings <= 3, "one warning per kind, not one per try:\n{log}");

    cluster.api.start_again();
    let until = super::RECONNECT;
    let got = crate::support::net::eventually("served after the API server came up", until, || {
        fetch(frontend)
    });
    assert_eq!(got, "e1");
    assert_eq!(admin.healthz().expect("healthz").0, 200, "{}", proxy.log());
    proxy.assert_running();
}

/// A list the API server refuses (no RBAC yet, a bad token) is retried
/// with client-go's backoff, 0.8 s doubling with up to 100 % more at
/// random, not at a steady pace; it is logged once per kind, not per try.
#[test]
fn a_refused_list_is_retried_ever_more_slowly_and_logged_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let api = crate::support::apiserver::ApiServer::start();
    let kubeconfig =
        api.kubeconfig(dir.path(), crate::support::apiserver::Auth::Token("old".into()));
    api.accept_tokens(&["new"]);
    let e1 = Endpoint::name(fresh_ip(), "e1");
    let (frontend, objects) = service("web", &[&e1]);
    api.apply(&objects);
    let mut proxy = crate::support::proxy::Proxy::start_args(&[
        "--kubeconfig",
        kubeconfig.to_str().expect("utf-8"),
    ]);
    proxy.admin();
    // Tries at 0, then after at least 0.8, 1.6 and 3.2 s: at most 4 in 6 s
    // (a retry per second would make 7).
    let lists = |api: &crate::support::apiserver::ApiServer| {
        let requests = api.requests();
        requests.iter().filter(|r| !r.is_watch() && r.path.ends_with("/services")).count()
    };
    std::thread::sleep(Duration::from_secs(6));
    let tried = lists(&api);
    assert!((2..=4).contains(&tried), "{tried} LISTs of Services in 6 s\n{}", proxy.log());
    let log = proxy.log();
    let warnings = log.lines().filter(|l| l.contains("WARN")).count();
    // Three kinds: Services, EndpointSlices and this node's Node.
    assert_eq!(warnings, 3, "one warning per kind, none per try:\n{log}");
    assert_eq!(proxy.admin().healthz().expect("healthz").0, 503);

    api.accept_tokens(&["old"]);
    let got = eventually("served once the token is accepted", super::RECONNECT, || fetch(frontend));
    assert_eq!(got, "e1");
}
