//! The `/metrics` exposition format (DESIGN §5): Prometheus text; before
//! any traffic every family is there with `# HELP` and `# TYPE`; after
//! traffic of every kind it passes `promtool check metrics` and has the
//! contracted family names, suffixes, types and bounded labels; and the
//! parser the metrics tests read it with is itself checked.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::Shutdown;

use crate::support::admin::{get_with_headers, rfc3339};
use crate::support::endpoint::{Endpoint, refused_addr};
use crate::support::metrics::{
    ACTIVE, CONNECT_ERRORS, ENDPOINT_CONNECTIONS, REJECTED, SENT, WAIT, port_labels,
    rejected_client, scrape, service_with_pods, service_without_endpoints, settle, value,
};
use crate::support::net::{self, addr, fresh_ip};
use crate::support::prom::Exposition;
use crate::support::proxy::Proxy;
use crate::support::tagged::{Named, PORT, service_of, visit_expecting};
use crate::support::tools::promtool_complaints;

/// Every family of DESIGN §5 that has series, with its type and label
/// names (`le` aside).
const FAMILIES: [(&str, &str, &[&str]); 20] = [
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
    ("process_open_fds", "gauge", &[]),
    ("process_max_fds", "gauge", &[]),
    ("process_resident_memory_bytes", "gauge", &[]),
    ("process_cpu_seconds_total", "counter", &[]),
    ("svcproxy_accept_paused_seconds_total", "counter", &["reason"]),
];

/// Every family DESIGN §5 names, with its type.
const DESIGN_FAMILIES: [(&str, &str); 23] = [
    ("svcproxy_connections_total", "counter"),
    ("svcproxy_connections_active", "gauge"),
    ("svcproxy_received_bytes_total", "counter"),
    ("svcproxy_sent_bytes_total", "counter"),
    ("svcproxy_endpoint_connections_total", "counter"),
    ("svcproxy_endpoint_connect_errors_total", "counter"),
    ("svcproxy_rejected_connections_total", "counter"),
    ("svcproxy_http_requests_total", "counter"),
    ("svcproxy_http_request_duration_seconds", "histogram"),
    ("svcproxy_endpoint_http_requests_total", "counter"),
    ("svcproxy_http_proxy_errors_total", "counter"),
    ("svcproxy_config_reloads_total", "counter"),
    ("svcproxy_config_invalid_objects", "gauge"),
    ("svcproxy_routing_generation", "gauge"),
    ("svcproxy_services", "gauge"),
    ("svcproxy_endpoints", "gauge"),
    ("kubeproxy_sync_proxy_rules_duration_seconds", "histogram"),
    ("kubeproxy_sync_proxy_rules_last_timestamp_seconds", "gauge"),
    ("process_open_fds", "gauge"),
    ("process_max_fds", "gauge"),
    ("process_resident_memory_bytes", "gauge"),
    ("process_cpu_seconds_total", "counter"),
    ("svcproxy_accept_paused_seconds_total", "counter"),
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
                let known = [
                    "no_endpoints",
                    "connect_failed",
                    "local_resources",
                    "close_wait_timeout",
                    "source_range",
                ];
                assert!(reason.is_some_and(|r| known.contains(&r)), "{sample}");
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

/// The families of the HTTP mode, which README's "Not yet" lists: their
/// values are not checked, only that they are exposed.
fn is_http_family(name: &str) -> bool {
    name.starts_with("svcproxy_http_") || name.starts_with("svcproxy_endpoint_http_")
}

/// The `# HELP` lines of an exposition, by family.
fn help_lines(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# HELP "))
        .filter_map(|l| l.split_once(' '))
        .map(|(name, help)| (name.to_owned(), help.to_owned()))
        .collect()
}

/// The families of `families` that are not exposed with a `# HELP` line
/// and a `# TYPE` line of their type, each with what is wrong.
fn missing_families<'a>(
    metrics: &Exposition,
    families: impl Iterator<Item = &'a (&'a str, &'a str)>,
) -> Vec<String> {
    let help = help_lines(&metrics.text);
    let mut wrong = Vec::new();
    for &(name, kind) in families {
        match metrics.types.get(name).map(String::as_str) {
            Some(have) if have == kind => {}
            Some(have) => wrong.push(format!("{name}: # TYPE {have}, DESIGN says {kind}")),
            None => wrong.push(format!("{name}: no # TYPE line")),
        }
        if help.get(name).is_none_or(|h| h.trim().is_empty()) {
            wrong.push(format!("{name}: no # HELP line"));
        }
    }
    wrong
}

/// DESIGN §5: every family of the table that has no series yet (no
/// Service, no traffic) is still on `/metrics` with `# HELP` and its
/// `# TYPE`, served as Prometheus text. (The HTTP families: next test.)
#[test]
fn every_design_family_is_exposed_with_help_and_type_before_any_traffic() {
    let mut proxy = Proxy::start("", &[]);
    proxy.wait_metric("svcproxy_routing_generation", WAIT, |g| g >= 1.0);
    let admin = proxy.admin();
    let (status, headers, _) = get_with_headers(admin.metrics, "/metrics");
    assert!(status.contains(" 200 "), "{status}");
    let content_type = headers.get("content-type").map(String::as_str).unwrap_or_default();
    assert!(content_type.starts_with("text/plain"), "Content-Type {content_type:?}");
    let metrics = scrape(&mut proxy);
    let wrong = missing_families(
        &metrics,
        DESIGN_FAMILIES.iter().filter(|(name, _)| !is_http_family(name)),
    );
    assert!(wrong.is_empty(), "{wrong:#?}\n{}", metrics.text);
    let complaints = promtool_complaints(&metrics.text);
    assert!(complaints.is_empty(), "promtool: {complaints}\n{}", metrics.text);
}

/// DESIGN §5 names the HTTP families (`svcproxy_http_requests_total`, the
/// request duration histogram, the endpoints' requests, the proxy's own
/// answers); the text format allows a family with no sample, and svcproxy
/// writes its other families that way, so they are exposed before any
/// HTTP port gives them series.
#[test]
fn the_http_families_are_exposed_with_help_and_type() {
    let ip = fresh_ip();
    let frontend = addr(ip, PORT);
    let e = Named::echo("e");
    let (mut proxy, ()) =
        Proxy::serving(&service_of("web", ip, &[&e]), &[], || visit_expecting(frontend, "e"));
    let metrics = scrape(&mut proxy);
    let wrong =
        missing_families(&metrics, DESIGN_FAMILIES.iter().filter(|(name, _)| is_http_family(name)));
    assert!(wrong.is_empty(), "{wrong:#?}\n{}", metrics.text);
}

/// DESIGN §5: "Counters end in `_total`, times in `_seconds`, sizes in
/// `_bytes`": every family on `/metrics` after traffic, and every sample
/// belongs to a family with a `# TYPE`.
#[test]
fn counters_end_in_total_times_in_seconds_and_sizes_in_bytes() {
    let ip = fresh_ip();
    let frontend = addr(ip, PORT);
    let e = Named::echo("e");
    let (mut proxy, ()) =
        Proxy::serving(&service_of("web", ip, &[&e]), &[], || visit_expecting(frontend, "e"));
    let metrics = settle(&mut proxy, "the visit to be counted", |m| {
        m.select("svcproxy_sent_bytes_total", &[]).any(|s| s.value > 0.0)
    });
    let mut wrong = Vec::new();
    for (name, kind) in &metrics.types {
        let total = name.ends_with("_total");
        if (kind == "counter") != total {
            wrong.push(format!("{name} is a {kind}: only counters end in _total"));
        }
        if kind == "histogram" && !name.ends_with("_seconds") {
            wrong.push(format!("{name}: a histogram of times ends in _seconds"));
        }
        if (name.contains("duration") || name.contains("timestamp")) && !name.ends_with("_seconds")
        {
            wrong.push(format!("{name}: a time ends in _seconds"));
        }
        if name.contains("bytes") && !name.ends_with("_bytes") && !name.ends_with("_bytes_total") {
            wrong.push(format!("{name}: a size ends in _bytes"));
        }
    }
    for sample in &metrics.samples {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .filter_map(|s| sample.name.strip_suffix(s))
            .find(|f| metrics.types.get(*f).is_some_and(|k| k == "histogram"))
            .unwrap_or(&sample.name);
        if !metrics.types.contains_key(family) {
            wrong.push(format!("{sample}: no # TYPE for its family"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}\n{}", metrics.text);
}

/// The `process_*` families every Prometheus client exports describe the
/// proxy's own process, as `/proc` tells it: descriptors and their limit,
/// memory, CPU time, threads, start time.
#[test]
fn the_process_families_describe_the_proxy_process() {
    let mut proxy = Proxy::start("", &[]);
    proxy.wait_metric("svcproxy_routing_generation", WAIT, |g| g >= 1.0);
    let metrics = scrape(&mut proxy);
    let pid = proxy.pid();
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count() as f64;
    let open = metrics.get("process_open_fds", &[]);
    // The scrape's own connection, and the directory the count reads.
    assert!((open - fds).abs() <= 3.0, "process_open_fds {open}, /proc/{pid}/fd has {fds}");
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let soft = limits.lines().find(|l| l.starts_with("Max open files")).unwrap();
    let soft: f64 = soft.split_whitespace().nth(3).unwrap().parse().unwrap();
    assert_eq!(metrics.get("process_max_fds", &[]), soft);
    let rss = metrics.get("process_resident_memory_bytes", &[]);
    let vm_rss = proxy.rss_kib() as f64 * 1024.0;
    assert!(rss > vm_rss / 2.0 && rss < vm_rss * 2.0, "resident {rss}, VmRSS {vm_rss}");
    assert!(metrics.get("process_virtual_memory_bytes", &[]) >= rss);
    let cpu = metrics.get("process_cpu_seconds_total", &[]);
    assert!((0.0..60.0).contains(&cpu), "process_cpu_seconds_total {cpu}");
    assert!(metrics.get("process_threads", &[]) >= 1.0);
    let started = metrics.get("process_start_time_seconds", &[]);
    let now = crate::support::admin::unix_now();
    assert!((now - 60.0..=now + 1.0).contains(&started), "started {started}, now {now}");
    let complaints = promtool_complaints(&metrics.text);
    assert!(complaints.is_empty(), "promtool: {complaints}\n{}", metrics.text);
}

/// Scrapes take turns on a thread of their own (a page is rendered off
/// the runtime); many at once each still get the whole page, and
/// `/debug/routes` alike.
#[test]
fn concurrent_scrapes_each_get_the_whole_page() {
    let mut proxy = Proxy::start("", &[]);
    proxy.wait_metric("svcproxy_routing_generation", WAIT, |g| g >= 1.0);
    let admin = proxy.admin();
    let pages: Vec<_> = (0..16)
        .map(|i| {
            let path = if i % 4 == 0 { "/debug/routes" } else { "/metrics" };
            std::thread::spawn(move || (path, get_with_headers(admin.metrics, path)))
        })
        .collect();
    for page in pages {
        let (path, (status, _, body)) = page.join().expect("a scraper");
        assert!(status.contains(" 200 "), "{path}: {status}");
        match path {
            "/metrics" => {
                assert!(body.contains("# TYPE svcproxy_routing_generation gauge\n"), "{body}");
                assert!(body.contains("# TYPE process_open_fds gauge\n"), "{body}");
            }
            _ => assert!(body.trim_start().starts_with('{') && body.ends_with("}\n"), "{body}"),
        }
    }
    proxy.assert_running();
}
