//! The `/metrics` exposition format (DESIGN §5): after traffic of every
//! kind it passes `promtool check metrics` and has the contracted family
//! names, types and bounded labels; and the parser the metrics tests read
//! it with is itself checked.

use std::collections::BTreeSet;
use std::io::Write;
use std::net::Shutdown;

use crate::support::admin::rfc3339;
use crate::support::endpoint::{Endpoint, refused_addr};
use crate::support::metrics::{
    ACTIVE, CONNECT_ERRORS, ENDPOINT_CONNECTIONS, REJECTED, SENT, port_labels, rejected_client,
    service_with_pods, service_without_endpoints, settle, value,
};
use crate::support::net::{self, fresh_ip};
use crate::support::prom::Exposition;
use crate::support::proxy::Proxy;
use crate::support::tools::promtool_complaints;

/// Every family of DESIGN §5 that has series, with its type and label
/// names (`le` aside).
const FAMILIES: [(&str, &str, &[&str]); 15] = [
    ("svcproxy_connections_total", "counter", &["namespace", "service", "port"]),
    ("svcproxy_connections_active", "gauge", &["namespace", "service", "port"]),
    ("svcproxy_received_bytes_total", "counter", &["namespace", "service", "port"]),
    ("svcproxy_sent_bytes_total", "counter", &["namespace", "service", "port"]),
    ("svcproxy_connection_duration_seconds", "histogram", &["namespace", "service", "port"]),
    (
        "svcproxy_endpoint_connections_total",
        "counter",
        &["namespace", "service", "port", "endpoint"],
    ),
    (
        "svcproxy_endpoint_connect_errors_total",
        "counter",
        &["namespace", "service", "port", "endpoint", "reason"],
    ),
    ("svcproxy_rejected_connections_total", "counter", &["namespace", "service", "port", "reason"]),
    ("svcproxy_config_reloads_total", "counter", &["result"]),
    ("svcproxy_config_invalid_objects", "gauge", &[]),
    ("svcproxy_routing_generation", "gauge", &[]),
    ("svcproxy_services", "gauge", &[]),
    ("svcproxy_endpoints", "gauge", &[]),
    ("kubeproxy_sync_proxy_rules_duration_seconds", "histogram", &[]),
    ("kubeproxy_sync_proxy_rules_last_timestamp_seconds", "gauge", &[]),
];

/// After traffic of every kind (carried, rejected, refused), `/metrics`
/// passes `promtool check metrics`, and each family has its DESIGN §5
/// type and labels, with bounded label values.
#[test]
fn the_exposition_passes_promtool_and_has_the_design_names() {
    let echo = Endpoint::echo(fresh_ip());
    let (frontend, mut yaml) = service_with_pods("carried", "tcp", &[echo.addr]);
    let (empty, more) = service_without_endpoints("empty", 8282);
    yaml.push_str(&more);
    let refusing_at = refused_addr(fresh_ip());
    let (refusing, more) = service_with_pods("refusing", "tcp", &[refusing_at]);
    yaml.push_str(&more);
    let (mut proxy, ()) = Proxy::serving(&yaml, &[], || net::echo(frontend, b"some bytes"));
    proxy.wait_ready(|| rejected_client(empty));
    proxy.wait_ready(|| rejected_client(refusing));
    // A client whose address must not show up in any label.
    let mut client = net::connect(frontend).expect("connect");
    let client_ip = client.local_addr().expect("client address").ip().to_string();
    client.write_all(b"whose address?").expect("write");
    client.shutdown(Shutdown::Write).expect("half-close");
    assert_eq!(net::read_to_end(&mut client).expect("echo"), b"whose address?");
    drop(client);
    let metrics = settle(&mut proxy, "every kind of traffic to be counted", |m| {
        m.select(ACTIVE, &[]).all(|s| s.value == 0.0)
            && value(m, SENT, &port_labels("carried", "tcp")) > 0.0
    });

    let complaints = promtool_complaints(&metrics.text);
    assert!(
        complaints.is_empty(),
        "promtool check metrics: {complaints}\n--- exposition:\n{}",
        metrics.text
    );

    for (name, kind, labels) in FAMILIES {
        assert_eq!(
            metrics.types.get(name).map(String::as_str),
            Some(kind),
            "# TYPE of {name}\n{}",
            metrics.text
        );
        let names: Vec<String> = if kind == "histogram" {
            ["_bucket", "_sum", "_count"].iter().map(|s| format!("{name}{s}")).collect()
        } else {
            vec![name.to_owned()]
        };
        let samples: Vec<_> = metrics.samples.iter().filter(|s| names.contains(&s.name)).collect();
        assert!(!samples.is_empty(), "no series of {name}\n{}", metrics.text);
        let want: BTreeSet<&str> = labels.iter().copied().collect();
        for sample in samples {
            let have: BTreeSet<&str> =
                sample.labels.keys().map(String::as_str).filter(|k| *k != "le").collect();
            assert_eq!(have, want, "labels of {sample}");
        }
    }
    // Bounded label values: reasons and results from their fixed sets, ports
    // and endpoints as configured, never a client address.
    let is_client = |v: &str| v == client_ip || v.starts_with(&format!("{client_ip}:"));
    for sample in &metrics.samples {
        let reason = sample.label("reason");
        match sample.name.as_str() {
            REJECTED => {
                assert!(matches!(reason, Some("no_endpoints" | "connect_failed")), "{sample}");
            }
            CONNECT_ERRORS => {
                assert!(matches!(reason, Some("refused" | "timeout" | "other")), "{sample}");
            }
            "svcproxy_config_reloads_total" => {
                assert!(matches!(sample.label("result"), Some("success" | "failure")), "{sample}");
            }
            _ => {}
        }
        assert!(!sample.labels.values().any(|v| is_client(v)), "client {client_ip} in {sample}");
    }
    let endpoints: BTreeSet<&str> =
        metrics.select(ENDPOINT_CONNECTIONS, &[]).filter_map(|s| s.label("endpoint")).collect();
    let expected = [echo.addr.to_string(), refusing_at.to_string()];
    assert_eq!(endpoints, expected.iter().map(String::as_str).collect());
    // Each client of `refusing` tried its one endpoint once, and was turned away.
    let refused = metrics.get(CONNECT_ERRORS, &[("endpoint", &expected[1]), ("reason", "refused")]);
    let failed = metrics.get(REJECTED, &[("service", "refusing"), ("reason", "connect_failed")]);
    assert!(refused >= 1.0 && refused == failed, "refused {refused}, connect_failed {failed}");
}

/// The parsers the other tests read `/metrics` and health bodies with: a
/// mistake in them would pass or fail those tests for the wrong reason.
#[test]
fn the_exposition_parser_reads_labels_in_any_order_and_escapes() {
    let text = "# TYPE a counter\na{y=\"q\\\"uote\",x=\"1\"} 3\nb 4.5\nc_bucket{le=\"+Inf\"} 2\n";
    let e = Exposition::parse(text).expect("parse");
    assert_eq!(e.get("a", &[("x", "1"), ("y", "q\"uote")]), 3.0);
    assert_eq!(e.get("b", &[]), 4.5);
    assert_eq!(e.get("c_bucket", &[("le", "+Inf")]), 2.0);
    assert_eq!(e.types["a"], "counter");
    assert_eq!(rfc3339("1970-01-01T00:00:00Z"), Some(0.0));
    assert_eq!(rfc3339("2024-02-29T12:00:00.5+01:00"), Some(1_709_204_400.5));
    assert_eq!(rfc3339("2024-02-29 12:00:00Z"), None);
    assert_eq!(rfc3339(""), None);
}
