//! Reject and connect-error counters, end to end (DESIGN §5): clients
//! turned away for lack of endpoints, or because the one endpoint refuses
//! or never answers, are counted exactly, by reason.

use std::thread;

use crate::support::endpoint::{Blackhole, refused_addr};
use crate::support::metrics::{
    ACTIVE, CONNECT_ERRORS, ENDPOINT_CONNECTIONS, RECEIVED, REJECTED, SENT, STAY, port_labels,
    rejected_client, scrape, service_with_pods, service_without_endpoints, settle, value,
};
use crate::support::net::fresh_ip;
use crate::support::prom::Exposition;
use crate::support::proxy::Proxy;

/// A family and a selector of its series.
type Series<'a> = (&'static str, Vec<(&'a str, &'a str)>);

/// `base` labels and then `extra` ones.
fn with<'a>(
    base: [(&'a str, &'a str); 3],
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut labels = base.to_vec();
    labels.extend_from_slice(extra);
    labels
}

/// A Service port's rejects for `reason`.
fn reject<'a>(service: &'a str, port: &'a str, reason: &'a str) -> Series<'a> {
    (REJECTED, with(port_labels(service, port), &[("reason", reason)]))
}

/// Connect errors to `endpoint` of a Service's port `tcp`, for `reason`.
fn error<'a>(service: &'a str, endpoint: &'a str, reason: &'a str) -> Series<'a> {
    (
        CONNECT_ERRORS,
        with(port_labels(service, "tcp"), &[("endpoint", endpoint), ("reason", reason)]),
    )
}

/// Clients of a Service without endpoints are counted as rejected for
/// `no_endpoints`; clients of a Service whose only endpoint refuses count
/// one `refused` connect error and one `connect_failed` reject each; so do
/// clients of one whose only endpoint never answers SYNs, with `timeout`.
#[test]
fn rejects_and_connect_errors_are_counted_exactly() {
    const EMPTY_CLIENTS: usize = 7;
    const REFUSED_CLIENTS: usize = 5;
    const BLACKHOLED_CLIENTS: usize = 3;
    let (empty, mut yaml) = service_without_endpoints("empty", 8181);
    let refusing_at = refused_addr(fresh_ip());
    let (refusing, more) = service_with_pods("refusing", "tcp", &[refusing_at]);
    yaml.push_str(&more);
    let blackhole = Blackhole::new(fresh_ip());
    let (blackholed, more) = service_with_pods("blackholed", "tcp", &[blackhole.addr]);
    yaml.push_str(&more);
    let mut proxy = Proxy::start(&yaml, &["--connect-timeout", "200ms"]);
    for frontend in [empty, refusing, blackholed] {
        proxy.wait_ready(|| rejected_client(frontend));
    }

    let empty_port = port_labels("empty", "8181");
    let (refusing_endpoint, blackholed_endpoint) =
        (refusing_at.to_string(), blackhole.addr.to_string());
    // Every series the clients may move, and by how much they must.
    let expected = [
        (reject("empty", "8181", "no_endpoints"), EMPTY_CLIENTS),
        (reject("empty", "8181", "connect_failed"), 0),
        (reject("refusing", "tcp", "no_endpoints"), 0),
        (reject("refusing", "tcp", "connect_failed"), REFUSED_CLIENTS),
        (error("refusing", &refusing_endpoint, "refused"), REFUSED_CLIENTS),
        (error("refusing", &refusing_endpoint, "timeout"), 0),
        (error("refusing", &refusing_endpoint, "other"), 0),
        (reject("blackholed", "tcp", "no_endpoints"), 0),
        (reject("blackholed", "tcp", "connect_failed"), BLACKHOLED_CLIENTS),
        (error("blackholed", &blackholed_endpoint, "refused"), 0),
        (error("blackholed", &blackholed_endpoint, "timeout"), BLACKHOLED_CLIENTS),
        (error("blackholed", &blackholed_endpoint, "other"), 0),
    ];
    let ports = [empty_port, port_labels("refusing", "tcp"), port_labels("blackholed", "tcp")];
    let idle = |m: &Exposition| ports.iter().all(|p| m.value(ACTIVE, p) == Some(0.0));

    let before = settle(&mut proxy, "the probes to end", idle);
    let base: Vec<f64> =
        expected.iter().map(|((name, labels), _)| value(&before, name, labels)).collect();
    let clients = [
        ("empty", empty, EMPTY_CLIENTS),
        ("refusing", refusing, REFUSED_CLIENTS),
        ("blackholed", blackholed, BLACKHOLED_CLIENTS),
    ];
    for (name, frontend, count) in clients {
        for i in 0..count {
            rejected_client(frontend).unwrap_or_else(|e| panic!("client {i} of {name}: {e}"));
        }
    }

    let reached = |m: &Exposition| {
        idle(m)
            && expected
                .iter()
                .zip(&base)
                .all(|(((name, labels), want), b)| value(m, name, labels) >= b + *want as f64)
    };
    let after = settle(&mut proxy, "the rejects to be counted", reached);
    thread::sleep(STAY);
    let later = scrape(&mut proxy);
    for (((name, labels), want), b) in expected.iter().zip(&base) {
        assert_eq!(value(&after, name, labels) - b, *want as f64, "{name} {labels:?}");
        assert_eq!(value(&later, name, labels), value(&after, name, labels), "{name} moved");
    }
    // Nothing reached an endpoint, nothing was carried.
    for port in &ports {
        let reached: f64 = after.select(ENDPOINT_CONNECTIONS, port).map(|s| s.value).sum();
        assert_eq!(reached, 0.0, "{ENDPOINT_CONNECTIONS} {port:?}");
        assert_eq!(after.get(RECEIVED, port), 0.0, "{port:?}");
        assert_eq!(after.get(SENT, port), 0.0, "{port:?}");
    }
    assert_eq!(after.count(ENDPOINT_CONNECTIONS, &empty_port), 0, "empty has no endpoints");
}
