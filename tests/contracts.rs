//! The contracts of DESIGN §5 (metrics and health) still to move to
//! tests/admin/ (those of §2 and §4 are in the files of their subjects).
//!
//! Black-box: the real binary, real sockets, loopback addresses of each
//! test's own (`support::net::fresh_ip`); every wait has a deadline.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use support::admin::{self, Admin, rfc3339, routes};
use support::manifests::write_in_place;
use support::net::{self, addr, eventually, fresh_ip};
use support::prom::Exposition;
use support::proxy::Proxy;
use support::tagged::{Named, PORT, service_of, visit_expecting};
use support::tools::promtool_complaints;

/// Bound on every wait that is not itself the point of a test.
const WAIT: Duration = Duration::from_secs(10);

/// Every family DESIGN §5 names, with its type.
const DESIGN_FAMILIES: [(&str, &str); 16] = [
    ("svcproxy_connections_total", "counter"),
    ("svcproxy_connections_active", "gauge"),
    ("svcproxy_received_bytes_total", "counter"),
    ("svcproxy_sent_bytes_total", "counter"),
    ("svcproxy_endpoint_connections_total", "counter"),
    ("svcproxy_endpoint_connect_errors_total", "counter"),
    ("svcproxy_rejected_connections_total", "counter"),
    ("svcproxy_http_requests_total", "counter"),
    ("svcproxy_http_request_duration_seconds", "histogram"),
    ("svcproxy_config_reloads_total", "counter"),
    ("svcproxy_config_invalid_objects", "gauge"),
    ("svcproxy_routing_generation", "gauge"),
    ("svcproxy_services", "gauge"),
    ("svcproxy_endpoints", "gauge"),
    ("kubeproxy_sync_proxy_rules_duration_seconds", "histogram"),
    ("kubeproxy_sync_proxy_rules_last_timestamp_seconds", "gauge"),
];

/// The families of the HTTP mode, which README's "Not yet" lists: their
/// values are not checked, only that they are exposed.
fn is_http_family(name: &str) -> bool {
    name.starts_with("svcproxy_http_")
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs_f64()
}

/// `GET path` with `Connection: close`: the status line, the headers
/// (lower-cased names) and the body.
fn get_with_headers(to: SocketAddr, path: &str) -> (String, BTreeMap<String, String>, String) {
    let mut stream = net::connect(to).unwrap_or_else(|e| panic!("connect {to}: {e}"));
    let request = format!("GET {path} HTTP/1.1\r\nHost: {to}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("send the request");
    let answer = net::text(net::read_to_end(&mut stream).expect("read the answer")).expect("UTF-8");
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    let mut lines = head.lines();
    let status = lines.next().unwrap_or_default().to_owned();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

/// `/metrics` of `proxy`, parsed.
fn scrape(proxy: &mut Proxy) -> Exposition {
    support::metrics::scrape(proxy)
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

// --- §5: metrics and health ---

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

/// DESIGN §5 names `svcproxy_http_requests_total` (counter) and
/// `svcproxy_http_request_duration_seconds` (histogram); the text format
/// allows a family with no sample, and svcproxy writes its other
/// families that way, so they should be exposed before the HTTP mode
/// gives them values.
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
    let metrics = support::metrics::settle(&mut proxy, "the visit to be counted", |m| {
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

/// DESIGN §5: `/healthz` and `/livez` answer 503 before the first
/// Snapshot (a manifest set that takes a while to build), with a JSON body
/// whose `currentTime` is RFC 3339; then 200 once it is published.
#[test]
fn healthz_and_livez_answer_503_before_the_first_snapshot() {
    let mut proxy = Proxy::start_with_a_slow_first_build();
    let admin = proxy.admin();
    let generation = |admin: &Admin| admin.sample("svcproxy_routing_generation").unwrap_or(-1.0);
    let until = Instant::now() + Duration::from_secs(30);
    let mut before_first = 0;
    loop {
        proxy.assert_running();
        let answers: Vec<(&str, u16, String)> = ["/healthz", "/livez"]
            .into_iter()
            .map(|path| {
                let (status, body) = admin::http(admin.healthz, path);
                (path, status, body)
            })
            .collect();
        // Read after the answers: 0 here means no Snapshot was published
        // when they were given.
        let published = generation(&admin);
        if published == 0.0 {
            for (path, status, body) in &answers {
                assert_eq!(*status, 503, "{path} before the first Snapshot: {body}");
                let json: Value = serde_json::from_str(body)
                    .unwrap_or_else(|e| panic!("{path} body is not JSON ({e}): {body}"));
                let now = json["currentTime"].as_str().and_then(rfc3339);
                assert!(now.is_some_and(|t| (t - unix_now()).abs() < 5.0), "{path}: {body}");
                assert!(json["lastUpdated"].is_string(), "{path}: {body}");
            }
            before_first += 1;
        } else if published >= 1.0 && answers.iter().all(|(_, status, _)| *status == 200) {
            break;
        }
        assert!(Instant::now() < until, "no 200 after 30 s: {answers:?}\n{}", proxy.log());
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        before_first > 0,
        "the first Snapshot was published before the first probe: nothing was shown\n{}",
        proxy.log()
    );
}

/// DESIGN §5: the health body is kube-proxy's `{"lastUpdated": RFC3339,
/// "currentTime": RFC3339}`; before the first Snapshot kube-proxy writes
/// its zero time, svcproxy an empty string.
#[test]
fn the_health_body_has_an_rfc3339_last_updated_even_before_the_first_snapshot() {
    let mut proxy = Proxy::start_with_a_slow_first_build();
    let admin = proxy.admin();
    let (status, body) = admin::http(admin.healthz, "/healthz");
    let generation = admin.sample("svcproxy_routing_generation").expect("generation");
    assert_eq!(generation, 0.0, "published before the probe: nothing shown\n{}", proxy.log());
    assert_eq!(status, 503, "{body}");
    let json: Value = serde_json::from_str(&body).expect("a JSON body");
    let last = json["lastUpdated"].as_str().unwrap_or_default();
    assert!(rfc3339(last).is_some(), "lastUpdated {last:?} is not RFC 3339: {body}");
}

/// DESIGN §5: `/debug/routes` is the current Snapshot: after a change its
/// generation is the new one (as `/metrics` says) and the frontend lists
/// the new endpoints.
#[test]
fn debug_routes_follows_each_published_snapshot() {
    let ip = fresh_ip();
    let frontend = addr(ip, PORT);
    let (a, b) = (Named::echo("a"), Named::echo("b"));
    let (mut proxy, ()) =
        Proxy::serving(&service_of("web", ip, &[&a]), &[], || visit_expecting(frontend, "a"));
    let admin = proxy.admin();
    let key = format!("{frontend}/TCP");
    let endpoints_of = |dump: &Value| -> Vec<String> {
        let entry = dump["frontends"]
            .as_array()
            .and_then(|f| f.iter().find(|f| f["frontend"] == key.as_str()))
            .unwrap_or_else(|| panic!("no frontend {key}: {dump:#}"));
        entry["endpoints"]
            .as_array()
            .unwrap_or_else(|| panic!("no endpoints: {entry:#}"))
            .iter()
            .map(|e| e["address"].as_str().expect("address").to_owned())
            .collect()
    };
    let before = routes(&admin);
    let first = before["generation"].as_f64().expect("a generation number");
    assert_eq!(endpoints_of(&before), [a.addr().to_string()], "{before:#}");

    write_in_place(&proxy.manifest(), &service_of("web", ip, &[&b]));
    let after = eventually("/debug/routes to show the new endpoint", WAIT, || {
        let dump = routes(&admin);
        if endpoints_of(&dump) == [b.addr().to_string()] { Ok(dump) } else { Err("not yet") }
    });
    let generation = after["generation"].as_f64().expect("a generation number");
    assert!(generation > first, "generation {generation} after {first}: {after:#}");
    assert_eq!(proxy.metric("svcproxy_routing_generation"), generation, "{after:#}");
}

/// DESIGN §5: each publish counts: `svcproxy_config_reloads_total
/// {result="success"}`, the generation and the rebuild histogram's count
/// move together; `kubeproxy_sync_proxy_rules_last_timestamp_seconds` is
/// the Unix time of the publish, and `/healthz`'s `lastUpdated` follows.
#[test]
fn each_publish_is_counted_and_timestamped() {
    const SUCCESS: &str = "svcproxy_config_reloads_total{result=\"success\"}";
    const GENERATION: &str = "svcproxy_routing_generation";
    const SYNCS: &str = "kubeproxy_sync_proxy_rules_duration_seconds_count";
    const LAST: &str = "kubeproxy_sync_proxy_rules_last_timestamp_seconds";
    let ip = fresh_ip();
    let frontend = addr(ip, PORT);
    let e = Named::echo("e");
    let (mut proxy, ()) =
        Proxy::serving(&service_of("web", ip, &[&e]), &[], || visit_expecting(frontend, "e"));
    let read = |proxy: &mut Proxy| -> [f64; 4] {
        let text = proxy.admin().metrics().expect("/metrics");
        [SUCCESS, GENERATION, SYNCS, LAST].map(|series| {
            admin::sample(&text, series).unwrap_or_else(|| panic!("no {series}\n{text}"))
        })
    };
    let [success, generation, syncs, last] = read(&mut proxy);
    assert!(generation >= 1.0 && success >= 1.0 && syncs >= 1.0, "{}", proxy.log());
    assert!((last - unix_now()).abs() < 60.0, "last sync at {last}, now {}", unix_now());

    let hup = unix_now();
    proxy.signal("HUP");
    proxy.wait_metric(GENERATION, WAIT, |g| g > generation);
    let [success2, generation2, syncs2, last2] = read(&mut proxy);
    let published = generation2 - generation;
    assert_eq!(success2 - success, published, "successes per publish\n{}", proxy.log());
    assert_eq!(syncs2 - syncs, published, "rebuild durations per publish\n{}", proxy.log());
    assert!(last2 >= hup - 1.0 && last2 <= unix_now() + 1.0, "last sync {last2}, SIGHUP at {hup}");
    let (status, headers, body) = get_with_headers(proxy.admin().healthz, "/healthz");
    assert!(status.contains(" 200 "), "{status}: {body}");
    let content_type = headers.get("content-type").map(String::as_str).unwrap_or_default();
    assert!(content_type.starts_with("application/json"), "Content-Type {content_type:?}");
    let json: Value = serde_json::from_str(&body).expect("a JSON body");
    let updated = json["lastUpdated"].as_str().and_then(rfc3339).expect("lastUpdated");
    // Second precision.
    assert!(updated >= hup.floor() - 1.0, "lastUpdated {updated} before the SIGHUP at {hup}");
}
