//! The HTTP families (DESIGN §5), black-box: each response counted by the
//! status the client got, each request sent to an endpoint on that
//! endpoint, each answer of the proxy's own by reason, and every request's
//! duration. Counts are compared before and after, so the readiness
//! probe's requests do not matter.

use std::net::SocketAddr;

use super::{
    GET, addrs, endpoints, exchange, keep_alive, once, resetting_pod, service, service_named,
    serving, tally,
};
use crate::support::endpoint::refused_addr;
use crate::support::http::name_of;
use crate::support::metrics::{WAIT, scrape};
use crate::support::net::fresh_ip;
use crate::support::prom::Exposition;
use crate::support::proxy::Proxy;
use crate::support::tools::promtool_complaints;

const REQUESTS: &str = "svcproxy_http_requests_total";
const DURATION_COUNT: &str = "svcproxy_http_request_duration_seconds_count";
const ENDPOINT_REQUESTS: &str = "svcproxy_endpoint_http_requests_total";
const PROXY_ERRORS: &str = "svcproxy_http_proxy_errors_total";

/// A gRPC call: the proxy's own answer to it is gRPC's trailers-only
/// UNAVAILABLE, an HTTP 200.
const GRPC: &str = "POST /pkg.Svc/Call HTTP/1.1\r\nHost: web\r\nContent-Type: application/grpc\r\n\
                    Content-Length: 0\r\n\r\n";

/// The counts of one Service's `web` port, before and after.
struct Delta {
    service: &'static str,
    before: Exposition,
    after: Exposition,
}

impl Delta {
    /// `/metrics` now, as the "before" of the `web` port of `service`.
    fn start(proxy: &mut Proxy, service: &'static str) -> Delta {
        let before = scrape(proxy);
        Delta { service, after: before.clone(), before }
    }

    /// `/metrics` once `requests` more request durations are recorded (a
    /// body's end is recorded as the client reads it: it may lag a little).
    fn settle(&mut self, proxy: &mut Proxy, requests: f64) {
        let (service, count) = (self.service, self.before_value(DURATION_COUNT, &[]) + requests);
        let series =
            format!("{DURATION_COUNT}{{namespace=\"default\",service=\"{service}\",port=\"web\"}}");
        proxy.wait_metric(&series, WAIT, |v| v >= count);
        self.after = scrape(proxy);
    }

    /// How much `name` with `extra` labels grew (a series not written is 0).
    fn of(&self, name: &str, extra: &[(&str, &str)]) -> f64 {
        self.value(&self.after, name, extra) - self.before_value(name, extra)
    }

    fn before_value(&self, name: &str, extra: &[(&str, &str)]) -> f64 {
        self.value(&self.before, name, extra)
    }

    fn value(&self, metrics: &Exposition, name: &str, extra: &[(&str, &str)]) -> f64 {
        let port = [("namespace", "default"), ("service", self.service), ("port", "web")];
        let labels: Vec<(&str, &str)> = port.iter().chain(extra).copied().collect();
        metrics.value(name, &labels).unwrap_or(0.0)
    }

    /// Fails unless `name` with `extra` grew by `by`, showing `/metrics`.
    fn assert(&self, name: &str, extra: &[(&str, &str)], by: f64) {
        let grew = self.of(name, extra);
        assert_eq!(grew, by, "{name} {extra:?} grew by {grew}\n{}", self.after.text);
    }
}

#[test]
fn thirty_requests_over_three_pods_count_30_code_200_and_10_on_each_endpoint() {
    let pods = endpoints(&["a", "b", "c"]);
    let (frontend, manifest) = service("http", &addrs(&pods));
    let mut proxy = serving(&manifest, frontend);
    let mut delta = Delta::start(&mut proxy, "web");
    let mut connection = keep_alive(frontend);
    let mut names = Vec::new();
    for _ in 0..30 {
        let (status, _, body) =
            exchange(&mut connection, GET).unwrap_or_else(|e| panic!("{e}\n{}", proxy.log()));
        assert_eq!(status, 200, "{body}");
        names.push(name_of(&body).to_owned());
    }
    let counts = tally(names.iter().map(String::as_str));
    assert_eq!(counts.values().copied().collect::<Vec<_>>(), [10, 10, 10], "{counts:?}");
    delta.settle(&mut proxy, 30.0);
    delta.assert(REQUESTS, &[("code", "200")], 30.0);
    delta.assert(DURATION_COUNT, &[], 30.0);
    for pod in &pods {
        delta.assert(ENDPOINT_REQUESTS, &[("endpoint", &pod.addr.to_string())], 10.0);
    }
    // Written from the start, so `increase()` sees the first.
    let reasons =
        ["no_endpoints", "connect_failed", "endpoint_reset", "timeout", "local_resources"];
    for reason in reasons {
        let labels = [("service", "web"), ("reason", reason)];
        assert_eq!(delta.after.value(PROXY_ERRORS, &labels), Some(0.0), "{reason}");
    }
}

#[test]
fn a_503_without_endpoints_counts_code_503_and_no_endpoints_and_grpc_its_200() {
    let (frontend, manifest) = service("http", &[]);
    let mut proxy = Proxy::start(&manifest, &[]);
    let (status, _, body) = proxy.wait_ready(|| once(frontend));
    assert_eq!(status, 503, "{body}");
    let mut delta = Delta::start(&mut proxy, "web");
    for _ in 0..5 {
        assert_eq!(once(frontend).expect("a 503").0, 503);
    }
    let (status, headers, _) = exchange(&mut keep_alive(frontend), GRPC).expect("gRPC");
    assert_eq!((status, headers.get("grpc-status").map(String::as_str)), (200, Some("14")));
    delta.settle(&mut proxy, 6.0);
    delta.assert(REQUESTS, &[("code", "503")], 5.0);
    delta.assert(REQUESTS, &[("code", "200")], 1.0);
    delta.assert(PROXY_ERRORS, &[("reason", "no_endpoints")], 6.0);
    for reason in ["connect_failed", "endpoint_reset", "timeout"] {
        delta.assert(PROXY_ERRORS, &[("reason", reason)], 0.0);
    }
}

/// Five requests to a Service whose one pod is `pod`: each a 502, counted
/// under `reason`, and `sent` of them counted on the pod.
fn five_502s(pod: SocketAddr, reason: &str, sent: f64) {
    let (frontend, manifest) = service("http", &[pod]);
    let mut proxy = Proxy::start(&manifest, &[]);
    let (status, _, body) = proxy.wait_ready(|| once(frontend));
    assert_eq!(status, 502, "{body}");
    let mut delta = Delta::start(&mut proxy, "web");
    for _ in 0..5 {
        assert_eq!(once(frontend).expect("a 502").0, 502);
    }
    delta.settle(&mut proxy, 5.0);
    delta.assert(REQUESTS, &[("code", "502")], 5.0);
    delta.assert(PROXY_ERRORS, &[("reason", reason)], 5.0);
    delta.assert(ENDPOINT_REQUESTS, &[("endpoint", &pod.to_string())], sent);
}

#[test]
fn a_502_from_a_pod_that_resets_counts_endpoint_reset_and_the_request_sent_to_it() {
    five_502s(resetting_pod(), "endpoint_reset", 5.0);
}

#[test]
fn a_502_from_a_pod_that_refuses_counts_connect_failed_and_no_request_sent_to_it() {
    five_502s(refused_addr(fresh_ip()), "connect_failed", 0.0);
}

/// With 200s, 503s, 502s and a gRPC answer counted, `/metrics` passes
/// `promtool check metrics`.
#[test]
fn promtool_accepts_the_http_families_with_their_series() {
    let pods = endpoints(&["a"]);
    let (web, mut manifest) = service("http", &addrs(&pods));
    let (empty, more) = service_named("empty", "http", &[]);
    manifest.push_str(&format!("---\n{more}"));
    let (broken, more) = service_named("broken", "http", &[resetting_pod()]);
    manifest.push_str(&format!("---\n{more}"));
    let mut proxy = serving(&manifest, web);
    let mut delta = Delta::start(&mut proxy, "web");
    for (frontend, status) in [(web, 200), (empty, 503), (broken, 502)] {
        assert_eq!(once(frontend).expect("an answer").0, status, "{frontend}");
    }
    assert_eq!(exchange(&mut keep_alive(empty), GRPC).expect("gRPC").0, 200);
    delta.settle(&mut proxy, 1.0);
    let metrics = &delta.after;
    for service in ["web", "empty", "broken"] {
        let codes = metrics.count(REQUESTS, &[("service", service)]);
        assert!(codes > 0, "no {REQUESTS} of {service}\n{}", metrics.text);
    }
    let complaints = promtool_complaints(&metrics.text);
    assert!(complaints.is_empty(), "promtool: {complaints}\n{}", metrics.text);
}

/// An HTTP port's client connections count in the per-port families as a
/// TCP port's do: accepted, open now, bytes each way (the whole
/// exchange, heads included), and how long they lasted.
#[test]
fn client_connections_of_an_http_port_count_as_on_a_tcp_port() {
    const CONNECTIONS: &str = "svcproxy_connections_total";
    const RECEIVED: &str = "svcproxy_received_bytes_total";
    const SENT: &str = "svcproxy_sent_bytes_total";
    const LASTED: &str = "svcproxy_connection_duration_seconds_count";
    let pods = endpoints(&["a"]);
    let (frontend, manifest) = service("http", &addrs(&pods));
    let mut proxy = serving(&manifest, frontend);
    let mut delta = Delta::start(&mut proxy, "web");
    let mut connection = keep_alive(frontend);
    let mut answered = 0;
    for _ in 0..3 {
        let (status, headers, body) = exchange(&mut connection, GET).expect("a request");
        assert_eq!(status, 200);
        answered += body.len() + headers.len();
    }
    // This one open: the readiness probe's may still be closing.
    let active = "svcproxy_connections_active{namespace=\"default\",service=\"web\",port=\"web\"}";
    proxy.wait_metric(active, WAIT, |v| v == 1.0);
    delta.settle(&mut proxy, 3.0);
    delta.assert(CONNECTIONS, &[], 1.0);
    delta.assert(RECEIVED, &[], (3 * GET.len()) as f64);
    assert!(delta.of(SENT, &[]) > answered as f64, "{}", delta.after.text);
    drop(connection);
    proxy.wait_metric(active, WAIT, |v| v == 0.0);
    delta.after = scrape(&mut proxy);
    assert!(delta.of(LASTED, &[]) >= 1.0, "{}", delta.after.text);
}
