//! `svcproxy.io/lb-policy: least-request` on an HTTP port: each request
//! goes to the less busy of two endpoints picked at random, counted in
//! requests in flight (Envoy's `LEAST_REQUEST`), not connections.

use std::io::Write as _;
use std::thread;
use std::time::{Duration, Instant};

use super::{GET, addrs, endpoints, exchange, keep_alive, once, response, service};
use crate::support::admin::routes;
use crate::support::http::{HttpEndpoint, name_of};
use crate::support::proxy::Proxy;

/// With a slow request in flight on one of two pods, the 20 requests of a
/// keep-alive client that follow all go to the other; once the slow one is
/// answered, both are used again.
#[test]
fn requests_go_to_the_pod_with_fewer_requests_in_flight() {
    let pods = endpoints(&["a", "b"]);
    let (frontend, manifest) = service("http", &addrs(&pods));
    let manifest = manifest.replacen(
        "metadata: {name: web, namespace: default}",
        "metadata: {name: web, namespace: default, annotations: \
         {svcproxy.io/lb-policy: least-request}}",
        1,
    );
    let mut proxy = Proxy::start(&manifest, &[]);
    proxy.wait_ready(|| once(frontend));
    let table = routes(&proxy.admin());
    assert_eq!(table["frontends"][0]["policy"], "least-request", "{table:#}");
    let before: Vec<usize> = pods.iter().map(HttpEndpoint::served).collect();

    let mut slow = keep_alive(frontend);
    slow.get_mut()
        .write_all(b"GET /slow/3000 HTTP/1.1\r\nHost: web\r\n\r\n")
        .expect("the slow request");
    let busy = wait_for_arrival(&pods, &before);
    let idle = pods[1 - busy].addr;
    let mut client = keep_alive(frontend);
    for i in 0..20 {
        let (status, _, body) =
            exchange(&mut client, GET).unwrap_or_else(|e| panic!("{e}\n{}", proxy.log()));
        assert_eq!(status, 200, "{body}");
        let name = name_of(&body);
        assert_eq!(name, if busy == 0 { "b" } else { "a" }, "request {i}: {idle} is idle");
    }
    let (status, _, _) = response(&mut slow).expect("the slow response");
    assert_eq!(status, 200);

    let mut names = Vec::new();
    for _ in 0..20 {
        let (_, _, body) = exchange(&mut client, GET).expect("a request");
        names.push(name_of(&body).to_owned());
    }
    assert!(names.contains(&"a".to_owned()) && names.contains(&"b".to_owned()), "{names:?}");
    proxy.assert_running();
}

/// Which pod received a request since `before` (within 5 s).
fn wait_for_arrival(pods: &[HttpEndpoint], before: &[usize]) -> usize {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(i) = pods.iter().zip(before).position(|(p, b)| p.served() > *b) {
            return i;
        }
        assert!(Instant::now() < until, "the slow request reached no pod");
        thread::sleep(Duration::from_millis(2));
    }
}

/// A policy svcproxy does not know is an error naming the annotation and
/// the values it takes, as kubectl words an unsupported value.
#[test]
fn an_unknown_policy_is_an_error_naming_the_supported_values() {
    let (_, manifest) = service("http", &[]);
    let manifest = manifest.replacen(
        "metadata: {name: web, namespace: default}",
        "metadata: {name: web, namespace: default, annotations: {svcproxy.io/lb-policy: fastest}}",
        1,
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("web.yaml");
    std::fs::write(&path, manifest).expect("write");
    let out = crate::support::check([path.to_str().expect("utf-8")]);
    assert_eq!(out.code(), Some(1), "{out}");
    assert!(
        out.stderr.contains(
            "metadata.annotations.svcproxy.io/lb-policy: Unsupported value: \"fastest\": \
             supported values: \"least-request\", \"round-robin\""
        ),
        "{out}"
    );
}
