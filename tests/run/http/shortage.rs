//! An HTTP port whose proxy has no descriptor left to reach a pod: the
//! request gets a 503 counted as the proxy's own `local_resources`, and
//! the pod is neither counted as failing nor ejected.

use super::{once, service};
use crate::limits::{limit_leaving, set_soft_nofile, soft_nofile};
use crate::support::endpoint::Endpoint;
use crate::support::metrics::{CONNECT_ERRORS, scrape};
use crate::support::net::fresh_ip;
use crate::support::proxy::Proxy;

const PROXY_ERRORS: &str = "svcproxy_http_proxy_errors_total";

#[test]
fn a_request_with_no_descriptor_left_for_the_pod_is_a_503_counted_as_local_resources() {
    // Closes after each answer: no pooled connection spares the connect.
    let pod = Endpoint::http_hello(fresh_ip(), "a");
    let (web, yaml) = service("http", &[pod.addr]);
    let (mut proxy, _) = Proxy::serving(&yaml, &[], || once(web));
    let pid = proxy.pid();
    let limit = soft_nofile(pid);
    // One descriptor left: the accept takes it, the connect to the pod
    // finds none (again with two, then one, should the count be off).
    let mut tried = Vec::new();
    let mut short = 0;
    for headroom in [1, 2, 1] {
        set_soft_nofile(pid, limit);
        let leaving = limit_leaving(&mut proxy, "web", headroom);
        set_soft_nofile(pid, leaving);
        let statuses: Vec<Option<u16>> = (0..10).map(|_| once(web).ok().map(|r| r.0)).collect();
        short = statuses.iter().filter(|s| **s == Some(503)).count();
        tried.push((headroom, statuses));
        if short > 0 {
            break;
        }
    }
    set_soft_nofile(pid, limit);
    assert!(short > 0, "no request got a 503: {tried:?}\n{}", proxy.log());

    let metrics = scrape(&mut proxy);
    let local = [("service", "web"), ("reason", "local_resources")];
    assert_eq!(metrics.get(PROXY_ERRORS, &local), short as f64, "{tried:?}\n{}", metrics.text);
    let failed = [("service", "web"), ("reason", "connect_failed")];
    assert_eq!(metrics.get(PROXY_ERRORS, &failed), 0.0);
    let blamed: f64 = metrics.select(CONNECT_ERRORS, &[("service", "web")]).map(|s| s.value).sum();
    assert_eq!(blamed, 0.0, "connect errors counted against the pod:\n{}", metrics.text);
    // Its only pod was not ejected: served at once.
    assert_eq!(once(web).unwrap().0, 200);
}
