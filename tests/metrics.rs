//! Observability (DESIGN §5, issue 5), end to end: the real binary's
//! `/metrics`, `/healthz`, `/livez` and `/debug/routes`, read over plain
//! HTTP/1.1 while test clients use the proxy.
//!
//! Counters are checked for equality with what the clients did, never for
//! "it moved": byte counters are added when a connection ends, so a test
//! polls `/metrics` (with a deadline) until the expected value is reached,
//! then asserts it is exactly that, and still is a moment later. Every
//! proxy has its admin servers on ephemeral ports, read from its log.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use support::admin::{self, Admin};
use support::endpoint::{Blackhole, Endpoint, refused_addr};
use support::net::{self, addr, eventually, fresh_ip};
use support::prom::Exposition;
use support::proxy::{Port, Proxy, endpoint_slice, pod_at, service, write_by_rename};

const CONNECTIONS: &str = "svcproxy_connections_total";
const ACTIVE: &str = "svcproxy_connections_active";
const RECEIVED: &str = "svcproxy_received_bytes_total";
const SENT: &str = "svcproxy_sent_bytes_total";
const DURATION_COUNT: &str = "svcproxy_connection_duration_seconds_count";
const DURATION_SUM: &str = "svcproxy_connection_duration_seconds_sum";
const DURATION_BUCKET: &str = "svcproxy_connection_duration_seconds_bucket";
const ENDPOINT_CONNECTIONS: &str = "svcproxy_endpoint_connections_total";
const CONNECT_ERRORS: &str = "svcproxy_endpoint_connect_errors_total";
const REJECTED: &str = "svcproxy_rejected_connections_total";
const GENERATION: &str = "svcproxy_routing_generation";
const SERVICES: &str = "svcproxy_services";
const ENDPOINTS: &str = "svcproxy_endpoints";

/// The ServicePort every test Service listens on.
const PORT: u16 = 8080;
/// Bound on every wait for the proxy to catch up.
const WAIT: Duration = Duration::from_secs(10);
/// How long a reached value must then stay put.
const STAY: Duration = Duration::from_millis(300);

// --- helpers -------------------------------------------------------------------

/// The `namespace`, `service`, `port` labels of a Service port in `default`.
fn port_labels<'a>(service: &'a str, port: &'a str) -> [(&'a str, &'a str); 3] {
    [("namespace", "default"), ("service", service), ("port", port)]
}

/// `/metrics` of `proxy`, parsed; panics with the log when unreadable.
fn scrape(proxy: &mut Proxy) -> Exposition {
    let admin = proxy.admin();
    Exposition::scrape(&admin).unwrap_or_else(|e| panic!("GET /metrics: {e}\n{}", proxy.log()))
}

/// Polls `/metrics` until `done` holds, within [`WAIT`]; that exposition.
/// Past the deadline, panics naming `what`, with the last exposition and
/// the log.
fn settle(proxy: &mut Proxy, what: &str, done: impl Fn(&Exposition) -> bool) -> Exposition {
    let until = Instant::now() + WAIT;
    loop {
        proxy.assert_running();
        let metrics = scrape(proxy);
        if done(&metrics) {
            return metrics;
        }
        assert!(
            Instant::now() < until,
            "{what}: not reached after {WAIT:?}; /metrics:\n{}\n{}",
            metrics.text,
            proxy.log()
        );
        thread::sleep(Duration::from_millis(5));
    }
}

/// The value of a series, 0 when absent (a counter not yet created).
fn value(metrics: &Exposition, name: &str, labels: &[(&str, &str)]) -> f64 {
    metrics.value(name, labels).unwrap_or(0.0)
}

/// A Service `name` at a fresh ClusterIP, port [`PORT`] named `port_name`
/// to the container port named `tcp` of its Pods, one per endpoint (in
/// order); its frontend and its manifests.
fn service_with_pods(
    name: &str,
    port_name: &str,
    endpoints: &[SocketAddr],
) -> (SocketAddr, String) {
    let cluster_ip = fresh_ip();
    let mut yaml = service(name, cluster_ip, Some(name), &[Port::new(port_name, PORT, "tcp")], "");
    for (i, endpoint) in endpoints.iter().enumerate() {
        yaml.push_str(&pod_at(&format!("{name}-{i}"), name, *endpoint));
    }
    (addr(cluster_ip, PORT), yaml)
}

/// A Service `name` whose one port is unnamed (so its metrics are
/// labelled with the number) and whose selector matches no Pod.
fn service_without_endpoints(name: &str, port: u16) -> (SocketAddr, String) {
    let cluster_ip = fresh_ip();
    let yaml = format!(
        "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: default\n\
         spec:\n  clusterIP: {cluster_ip}\n  selector:\n    app: nobody-{name}\n  ports:\n    \
         - protocol: TCP\n      port: {port}\n      targetPort: {port}\n"
    );
    (addr(cluster_ip, port), yaml)
}

/// Connects to a frontend that turns clients away and checks it does:
/// accepted, then closed or reset without a byte (on loopback the reset
/// may even beat the end of `connect`). An error while nothing listens
/// there yet (refused), so it doubles as a readiness probe.
fn rejected_client(frontend: SocketAddr) -> io::Result<()> {
    let is_reset = |e: &io::Error| {
        matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted)
    };
    let mut stream = match net::connect(frontend) {
        Ok(stream) => stream,
        Err(e) if is_reset(&e) => return Ok(()),
        Err(e) => return Err(e),
    };
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Ok(0) => Ok(()),
        Err(e) if is_reset(&e) => Ok(()),
        Ok(n) => panic!("{frontend} should turn clients away; it sent {:?}", &buf[..n]),
        Err(e) => panic!("{frontend} should turn clients away at once; reading: {e}"),
    }
}

/// `GET path` on `to`; panics unless it answers.
fn http(to: SocketAddr, path: &str) -> (u16, String) {
    admin::get(to, path).unwrap_or_else(|e| panic!("GET {path} from {to}: {e}"))
}

/// `/debug/routes`, parsed.
fn routes(admin: &Admin) -> Value {
    let (status, body) = http(admin.metrics, "/debug/routes");
    assert_eq!(status, 200, "/debug/routes answered {status}: {body}");
    serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("/debug/routes is not JSON ({e}): {body}"))
}

/// The entry of `frontend` ("ip:port/TCP") in `/debug/routes`.
fn frontend_entry<'a>(routes: &'a Value, frontend: &str) -> &'a Value {
    routes["frontends"]
        .as_array()
        .expect("`frontends` is an array")
        .iter()
        .find(|f| f["frontend"] == frontend)
        .unwrap_or_else(|| panic!("no frontend {frontend} in /debug/routes: {routes:#}"))
}

/// `address -> state` of a frontend entry's endpoints.
fn endpoint_states(entry: &Value) -> BTreeMap<String, String> {
    entry["endpoints"]
        .as_array()
        .unwrap_or_else(|| panic!("`endpoints` is not an array: {entry:#}"))
        .iter()
        .map(|e| {
            let address = e["address"].as_str().expect("endpoint address").to_owned();
            let state = e["state"].as_str().expect("endpoint state").to_owned();
            (address, state)
        })
        .collect()
}

/// Seconds since the Unix epoch of an RFC 3339 date-time
/// (`YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`); `None` if it is not one.
fn rfc3339(text: &str) -> Option<f64> {
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        if part.bytes().all(|c| c.is_ascii_digit()) { part.parse().ok() } else { None }
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    let in_range = (1..=12).contains(&month) && (1..=31).contains(&day);
    if !in_range || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = text.get(19..)?;
    let mut fraction = 0.0;
    if let Some(frac) = rest.strip_prefix('.') {
        let len = frac.bytes().take_while(u8::is_ascii_digit).count();
        if len == 0 {
            return None;
        }
        fraction = format!("0.{}", &frac[..len]).parse().ok()?;
        rest = &frac[len..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            if rest.len() != 6 || rest.as_bytes()[3] != b':' {
                return None;
            }
            let h: i64 = rest[1..3].parse().ok()?;
            let m: i64 = rest[4..6].parse().ok()?;
            sign * (h * 3600 + m * 60)
        }
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset;
    Some(seconds as f64 + fraction)
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs_f64()
}

/// Checks a kube-proxy health body: JSON with RFC 3339 `lastUpdated` and
/// `currentTime`, the latter now and not before the former.
fn assert_health_body(path: &str, body: &str) -> (f64, f64) {
    let json: Value = serde_json::from_str(body)
        .unwrap_or_else(|e| panic!("{path} body is not JSON ({e}): {body:?}"));
    let field = |key: &str| -> f64 {
        let text = json[key].as_str().unwrap_or_else(|| panic!("{path}: no string {key}: {body}"));
        rfc3339(text).unwrap_or_else(|| panic!("{path}: {key} {text:?} is not RFC 3339"))
    };
    let (last, current) = (field("lastUpdated"), field("currentTime"));
    let now = unix_now();
    assert!((current - now).abs() < 5.0, "{path}: currentTime is {current}, now is {now}: {body}");
    assert!(last <= current, "{path}: lastUpdated after currentTime: {body}");
    (last, current)
}

// --- 1. exact counts -------------------------------------------------------------

/// Twenty echo connections, each carrying a different known number of
/// bytes: the connection, byte, endpoint and duration counters equal what
/// the clients did, the active gauge returns to 0, and the endpoint
/// counters show the round robin.
#[test]
fn twenty_echo_connections_are_counted_exactly() {
    const N: usize = 20;
    let endpoints: Vec<Endpoint> = (0..4).map(|_| Endpoint::echo(fresh_ip())).collect();
    let addrs: Vec<SocketAddr> = endpoints.iter().map(|e| e.addr).collect();
    let (frontend, yaml) = service_with_pods("echo", "echo", &addrs);
    let (mut proxy, ()) = Proxy::serving(&yaml, &[], || net::echo(frontend, b"ready?"));
    let port = port_labels("echo", "echo");
    let names: Vec<String> = addrs.iter().map(ToString::to_string).collect();
    let endpoint_labels: Vec<Vec<(&str, &str)>> = names
        .iter()
        .map(|name| {
            let mut labels = port.to_vec();
            labels.push(("endpoint", name));
            labels
        })
        .collect();

    // The readiness probes are connections too: start from where they left
    // the counters, once the last one has ended.
    let before = settle(&mut proxy, "the probes' connections to end", |m| {
        m.value(ACTIVE, &port) == Some(0.0)
    });
    let base = |name: &str| before.get(name, &port);
    let (connections0, received0, sent0, count0) =
        (base(CONNECTIONS), base(RECEIVED), base(SENT), base(DURATION_COUNT));
    let per_endpoint0: Vec<f64> =
        endpoint_labels.iter().map(|l| before.get(ENDPOINT_CONNECTIONS, l)).collect();

    let sizes: Vec<u64> = (0..N as u64).map(|i| 1_000 + i * 20_011).collect();
    let total: u64 = sizes.iter().sum();
    for (i, &size) in sizes.iter().enumerate() {
        let (sent, received) = net::stream_through(frontend, i as u64, size)
            .unwrap_or_else(|e| panic!("connection {i} ({size} bytes): {e}\n{}", proxy.log()));
        assert_eq!(sent.1, size);
        assert_eq!(received, sent, "connection {i}: the echo differs from what was sent");
    }

    let expected = |m: &Exposition| {
        // Reached (then asserted equal below, so an overshoot fails too).
        m.get(CONNECTIONS, &port) >= connections0 + N as f64
            && m.get(RECEIVED, &port) >= received0 + total as f64
            && m.get(SENT, &port) >= sent0 + total as f64
            && m.get(DURATION_COUNT, &port) >= count0 + N as f64
            && m.get(ACTIVE, &port) == 0.0
    };
    let after = settle(&mut proxy, "the twenty connections to be counted", expected);
    let delta = |name: &str, base: f64| after.get(name, &port) - base;
    assert_eq!(delta(CONNECTIONS, connections0), N as f64, "{CONNECTIONS}");
    assert_eq!(delta(RECEIVED, received0), total as f64, "{RECEIVED}: bytes from clients");
    assert_eq!(delta(SENT, sent0), total as f64, "{SENT}: bytes to clients");
    assert_eq!(delta(DURATION_COUNT, count0), N as f64, "{DURATION_COUNT}");
    assert_eq!(after.get(ACTIVE, &port), 0.0, "{ACTIVE}");
    let mut inf = port.to_vec();
    inf.push(("le", "+Inf"));
    assert_eq!(after.get(DURATION_BUCKET, &inf), after.get(DURATION_COUNT, &port));
    assert!(after.get(DURATION_SUM, &port) > before.get(DURATION_SUM, &port));

    // Round robin over four endpoints: five each, and every endpoint's
    // counter is what that endpoint accepted, probes included.
    let per_endpoint: Vec<f64> =
        endpoint_labels.iter().map(|l| after.get(ENDPOINT_CONNECTIONS, l)).collect();
    let deltas: Vec<f64> = per_endpoint.iter().zip(&per_endpoint0).map(|(a, b)| a - b).collect();
    assert_eq!(deltas.iter().sum::<f64>(), N as f64, "per-endpoint deltas {deltas:?}");
    assert_eq!(deltas, vec![5.0; 4], "round robin over 4 endpoints: {deltas:?}");
    let accepted: Vec<f64> = endpoints.iter().map(|e| e.accepted() as f64).collect();
    assert_eq!(per_endpoint, accepted, "{ENDPOINT_CONNECTIONS} vs what each endpoint accepted");
    assert_eq!(
        per_endpoint.iter().sum::<f64>(),
        after.get(CONNECTIONS, &port),
        "every connection reached exactly one endpoint"
    );
    assert_eq!(after.count(ENDPOINT_CONNECTIONS, &port), 4, "one series per endpoint");
    for reason in ["no_endpoints", "connect_failed"] {
        let mut labels = port.to_vec();
        labels.push(("reason", reason));
        assert_eq!(after.get(REJECTED, &labels), 0.0, "{REJECTED} {reason}");
    }

    // Exact means it stays: nothing is counted late or twice.
    thread::sleep(STAY);
    let later = scrape(&mut proxy);
    for name in [CONNECTIONS, RECEIVED, SENT, DURATION_COUNT, ACTIVE] {
        assert_eq!(later.get(name, &port), after.get(name, &port), "{name} moved afterwards");
    }
}

/// The byte counters by direction: a client sends bytes, half-closes, and
/// gets back a longer reply; received counts the former, sent the latter.
#[test]
fn received_and_sent_bytes_are_counted_by_direction() {
    const CLIENTS: usize = 3;
    let endpoint = Endpoint::reply_after_eof(fresh_ip());
    let (frontend, yaml) = service_with_pods("asym", "tcp", &[endpoint.addr]);
    let ask = |message: &[u8]| -> io::Result<Vec<u8>> {
        let mut stream = net::connect(frontend)?;
        stream.write_all(message)?;
        stream.shutdown(Shutdown::Write)?;
        net::read_to_end(&mut stream)
    };
    let (mut proxy, _) = Proxy::serving(&yaml, &[], || ask(b"ready?"));
    let port = port_labels("asym", "tcp");
    let before = settle(&mut proxy, "the probes to end", |m| m.value(ACTIVE, &port) == Some(0.0));
    let (received0, sent0) = (before.get(RECEIVED, &port), before.get(SENT, &port));
    let (mut up, mut down) = (0, 0);
    for i in 0..CLIENTS {
        let message = vec![b'a' + i as u8; 100 * (i + 1)];
        let reply = ask(&message).unwrap_or_else(|e| panic!("client {i}: {e}"));
        let want = format!("got {} bytes: {}", message.len(), String::from_utf8_lossy(&message));
        assert_eq!(reply, want.as_bytes(), "client {i}");
        up += message.len();
        down += reply.len();
    }
    assert_ne!(up, down);
    let after = settle(&mut proxy, "the bytes to be counted", |m| {
        m.value(ACTIVE, &port) == Some(0.0)
            && m.get(RECEIVED, &port) - received0 >= up as f64
            && m.get(SENT, &port) - sent0 >= down as f64
    });
    assert_eq!(after.get(RECEIVED, &port) - received0, up as f64, "{RECEIVED}: from clients");
    assert_eq!(after.get(SENT, &port) - sent0, down as f64, "{SENT}: to clients");
}

// --- 2. rejects and connect errors -----------------------------------------------

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

// --- 3. removed series disappear -------------------------------------------------

/// How many Snapshots the churn publishes, each with a fresh set of
/// [`CHURN_WIDTH`] endpoints.
const CHURN_GENERATIONS: usize = 1_000;
const CHURN_WIDTH: usize = 20;

/// The churned Service's endpoints in generation `g`: `10.a.b.1`..`.20`,
/// never connected to, never repeated.
fn churn_ips(g: usize) -> Vec<Ipv4Addr> {
    let (a, b) = ((g / 256) as u8, (g % 256) as u8);
    (1..=CHURN_WIDTH as u8).map(|d| Ipv4Addr::new(10, a, b, d)).collect()
}

/// 1,000 published generations, each replacing all 20 endpoints of a
/// Service (20,000 endpoint series made and dropped): only the last 20
/// remain, and the exposition is as long as after the first. Then a
/// Service that carried traffic is deleted: none of its series remain.
#[test]
fn series_of_removed_endpoints_and_services_disappear() {
    let gone_endpoint = Endpoint::echo(fresh_ip());
    let (gone_frontend, gone_yaml) = service_with_pods("gone", "tcp", &[gone_endpoint.addr]);
    let churn_ip = fresh_ip();
    let churn_yaml = service("churn", churn_ip, None, &[Port::tcp(PORT)], "");
    let manifest = |g: usize, with_gone: bool| {
        let mut yaml = churn_yaml.clone();
        yaml.push_str(&endpoint_slice("churn-1", "churn", "tcp", 9000, &churn_ips(g)));
        if with_gone {
            yaml.push_str(&gone_yaml);
        }
        yaml
    };
    let (mut proxy, ()) =
        Proxy::serving(&manifest(0, true), &[], || net::echo(gone_frontend, b"counted"));
    let churn_port = port_labels("churn", "tcp");
    let gone_port = port_labels("gone", "tcp");
    let first = settle(&mut proxy, "gone's connection to end", |m| {
        m.value(ACTIVE, &gone_port) == Some(0.0) && m.count(ENDPOINT_CONNECTIONS, &churn_port) > 0
    });
    let samples_at_first = first.samples.len();
    assert_eq!(first.count(ENDPOINT_CONNECTIONS, &churn_port), CHURN_WIDTH);

    // Each generation is waited for by its content: the new set's series
    // are there and the previous set's are gone. SIGHUP after each rewrite
    // re-reads at once instead of after the watcher's 25 ms of quiet
    // (which the steady rewrites keep postponing, so it adds a rebuild
    // only every 150 ms or so): 1,000 generations fit in seconds.
    let path = proxy.manifest();
    let admin = proxy.admin();
    let series_of = |ip: Ipv4Addr| format!("endpoint=\"{ip}:9000\"");
    let start = Instant::now();
    for g in 1..CHURN_GENERATIONS {
        write_by_rename(&path, &manifest(g, true));
        proxy.signal("HUP");
        let (new, old) = (series_of(churn_ips(g)[0]), series_of(churn_ips(g - 1)[0]));
        let until = Instant::now() + WAIT;
        loop {
            let text = admin.metrics().unwrap_or_else(|e| panic!("{e}\n{}", proxy.log()));
            if text.contains(&new) && !text.contains(&old) {
                break;
            }
            assert!(
                Instant::now() < until,
                "generation {g} after {WAIT:?}: its series {} there, the previous set's {}\n\
                 {text}\n{}",
                if text.contains(&new) { "are" } else { "are not" },
                if text.contains(&old) { "remain" } else { "are gone" },
                proxy.log()
            );
            thread::sleep(Duration::from_millis(1));
        }
    }
    let churn_time = start.elapsed();
    eprintln!(
        "note: {CHURN_GENERATIONS} endpoint generations ({} endpoint series) in {churn_time:?}",
        CHURN_GENERATIONS * CHURN_WIDTH
    );

    let last = scrape(&mut proxy);
    let want: BTreeSet<String> =
        churn_ips(CHURN_GENERATIONS - 1).into_iter().map(|ip| format!("{ip}:9000")).collect();
    let have: BTreeSet<String> = last
        .select(ENDPOINT_CONNECTIONS, &churn_port)
        .map(|s| s.label("endpoint").expect("endpoint label").to_owned())
        .collect();
    assert_eq!(last.count(ENDPOINT_CONNECTIONS, &churn_port), CHURN_WIDTH);
    assert_eq!(have, want, "{ENDPOINT_CONNECTIONS} series of churn after the churn");
    assert_eq!(last.count(CONNECT_ERRORS, &churn_port), CHURN_WIDTH * 3, "3 reasons each");
    assert_eq!(last.get(ENDPOINTS, &[]), (CHURN_WIDTH + 1) as f64, "{ENDPOINTS}");
    assert_eq!(last.get(SERVICES, &[]), 2.0, "{SERVICES}");
    assert!(last.get(GENERATION, &[]) >= CHURN_GENERATIONS as f64, "{GENERATION}");
    assert_eq!(
        last.samples.len(),
        samples_at_first,
        "the exposition grew over the churn; first had {samples_at_first} samples"
    );

    // Delete a Service that carried traffic.
    let gone_labels = [("service", "gone")];
    assert!(last.get(CONNECTIONS, &gone_port) >= 1.0, "gone carried the probe");
    assert!(last.get(RECEIVED, &gone_port) >= 7.0, "gone carried the probe's bytes");
    let gone_series = last.with_labels(&gone_labels).count();
    assert!(gone_series > 10, "gone has {gone_series} series");
    write_by_rename(&path, &manifest(CHURN_GENERATIONS - 1, false));
    let removed =
        settle(&mut proxy, "gone to leave the Snapshot", |m| m.value(SERVICES, &[]) == Some(1.0));
    let left: Vec<String> = removed.with_labels(&gone_labels).map(ToString::to_string).collect();
    assert!(left.is_empty(), "series of the deleted Service remain: {left:#?}");
    assert_eq!(removed.samples.len(), samples_at_first - gone_series);
    assert_eq!(removed.get(ENDPOINTS, &[]), CHURN_WIDTH as f64);
    assert_eq!(removed.count(ENDPOINT_CONNECTIONS, &churn_port), CHURN_WIDTH);
    let routes = routes(&admin);
    let gone_frontend = format!("{gone_frontend}/TCP");
    assert!(
        routes["frontends"]
            .as_array()
            .expect("frontends")
            .iter()
            .all(|f| f["service"] != "gone" && f["frontend"] != gone_frontend.as_str()),
        "/debug/routes still lists gone: {routes:#}"
    );
}

// --- 4. the exposition is valid, names and labels as DESIGN §5 -------------------

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

    // promtool, when installed (Debian: `prometheus`).
    match Command::new("promtool").arg("--version").output() {
        Ok(out) if out.status.success() => {
            let mut child = Command::new("promtool")
                .args(["check", "metrics"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start promtool");
            child.stdin.take().expect("stdin").write_all(metrics.text.as_bytes()).expect("feed");
            let out = child.wait_with_output().expect("promtool");
            let report = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                out.status.success() && report.trim().is_empty(),
                "promtool check metrics: {}\n{report}\n--- exposition:\n{}",
                out.status,
                metrics.text
            );
        }
        _ => eprintln!("note: promtool is not installed: `promtool check metrics` skipped"),
    }

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

// --- 5. health ---------------------------------------------------------------------

/// `/healthz` and `/livez` answer 200 with kube-proxy's JSON body once
/// routing is published, and 503 while a SIGTERM drain waits for a live
/// connection.
#[test]
fn healthz_and_livez_are_200_when_serving_and_503_while_draining() {
    let started = unix_now();
    let echo = Endpoint::echo(fresh_ip());
    let (frontend, yaml) = service_with_pods("health", "tcp", &[echo.addr]);
    let (mut proxy, ()) =
        Proxy::serving(&yaml, &["--drain-timeout", "5s"], || net::echo(frontend, b"up?"));
    let admin = proxy.admin();
    for path in ["/healthz", "/livez"] {
        let (status, body) = http(admin.healthz, path);
        assert_eq!(status, 200, "{path}: {body}\n{}", proxy.log());
        let (last, _) = assert_health_body(path, &body);
        // Second precision: the publish was at or after the test's start.
        assert!(last >= started.floor() - 1.0, "{path}: lastUpdated {last} before the start");
    }
    let (status, _) = http(admin.healthz, "/nothing-here");
    assert_eq!(status, 404, "an unknown path");

    // A live connection keeps the drain going.
    let mut live = net::connect(frontend).expect("connect");
    live.write_all(b"x").expect("write");
    let mut byte = [0u8; 1];
    live.read_exact(&mut byte).expect("echo");
    let signalled = Instant::now();
    proxy.signal("TERM");
    for path in ["/healthz", "/livez"] {
        // Well inside the 5 s drain, so a failure shows the answer, not a
        // proxy that has exited.
        let body = eventually(
            &format!("{path} to answer 503 during the drain"),
            Duration::from_secs(3),
            || match admin::get(admin.healthz, path)? {
                (503, body) => Ok(body),
                (status, body) => Err(io::Error::other(format!("{status}: {body}"))),
            },
        );
        assert_health_body(path, &body);
    }
    assert!(proxy.running(), "the drain ended while a connection was live\n{}", proxy.log());
    assert!(signalled.elapsed() < Duration::from_secs(5), "too slow to observe the drain");
    // The live connection still works, then ends; the proxy exits.
    live.write_all(b"y").expect("write during the drain");
    live.read_exact(&mut byte).expect("echo during the drain");
    assert_eq!(&byte, b"y");
    live.shutdown(Shutdown::Write).expect("half-close");
    let rest = net::read_to_end(&mut live).expect("end of the live connection");
    assert!(rest.is_empty());
    drop(live);
    let status = proxy.wait_exit(WAIT);
    assert!(
        status.is_some_and(|s| s.success()),
        "exit after the drain: {status:?}\n{}",
        proxy.log()
    );
}

// --- 6. /debug/routes --------------------------------------------------------------

/// `/debug/routes` lists each frontend with its Service, port and kind and
/// its endpoints' states: `ready`; `ejected` right after a refused connect
/// (and `ready` again once the 0.5 s ejection ends); `terminating` for an
/// endpoint used only for lack of ready ones.
#[test]
fn debug_routes_shows_frontends_and_endpoint_states() {
    let good = Endpoint::echo(fresh_ip());
    let bad = refused_addr(fresh_ip());
    let (frontend, mut yaml) = service_with_pods("routed", "web", &[good.addr, bad]);
    // A selector-less Service whose one endpoint is terminating but serving.
    let fading = Endpoint::echo(fresh_ip());
    let fading_ip = fresh_ip();
    yaml.push_str(&service("fading", fading_ip, None, &[Port::tcp(PORT)], ""));
    yaml.push_str(&endpoint_slice(
        "fading-1",
        "fading",
        "tcp",
        fading.port(),
        &[support::proxy::ipv4(fading.addr)],
    ));
    let yaml = yaml.replace(
        &format!("      - {}\n    conditions:\n      ready: true", fading.addr.ip()),
        &format!(
            "      - {}\n    conditions:\n      ready: false\n      serving: true\n      \
             terminating: true",
            fading.addr.ip()
        ),
    );
    assert!(yaml.contains("terminating: true"), "{yaml}");
    let (mut proxy, ()) = Proxy::serving(&yaml, &[], || net::echo(frontend, b"route me"));
    let admin = proxy.admin();
    let key = format!("{frontend}/TCP");
    let (good_addr, bad_addr) = (good.addr.to_string(), bad.to_string());

    // The dump is consistent with /metrics and names what was configured.
    let dump = routes(&admin);
    let generation = proxy.metric(GENERATION);
    assert_eq!(dump["generation"].as_f64(), Some(generation), "generation: {dump:#}");
    let entry = frontend_entry(&dump, &key);
    assert_eq!(entry["service"], "routed", "{entry:#}");
    assert_eq!(entry["namespace"], "default", "{entry:#}");
    assert_eq!(entry["port"], "web", "{entry:#}");
    assert_eq!(entry["kind"], "ClusterIP", "{entry:#}");
    let states = endpoint_states(entry);
    // Not asserting both `ready` yet: a probe may have met the refusing one.
    assert_eq!(
        states.keys().cloned().collect::<BTreeSet<_>>(),
        BTreeSet::from([good_addr.clone(), bad_addr.clone()]),
        "{entry:#}"
    );
    assert_eq!(states[&good_addr], "ready");
    let fading_entry = frontend_entry(&dump, &format!("{}/TCP", addr(fading_ip, PORT)));
    assert_eq!(
        endpoint_states(fading_entry),
        BTreeMap::from([(fading.addr.to_string(), "terminating".to_owned())]),
        "{fading_entry:#}"
    );
    // The fallback is really used.
    net::echo(addr(fading_ip, PORT), b"last orders").expect("through a terminating endpoint");

    // Both ready once any ejection from the probes has ended.
    let both_ready = || {
        eventually("both endpoints of routed to be ready", WAIT, || {
            let states = endpoint_states(frontend_entry(&routes(&admin), &key));
            if states.values().all(|s| s == "ready") {
                Ok(())
            } else {
                Err(io::Error::other(format!("{states:?}")))
            }
        });
    };
    both_ready();

    // Round robin over two: within two clients one tries the refusing
    // endpoint first, fails over to the good one, and the dump taken
    // right after shows the refusing one ejected.
    let errors = [("service", "routed"), ("endpoint", bad_addr.as_str()), ("reason", "refused")];
    let until = Instant::now() + WAIT;
    let mut inconclusive = 0;
    loop {
        let errors_before = scrape(&mut proxy).get(CONNECT_ERRORS, &errors);
        let client = Instant::now();
        net::echo(frontend, b"fail over").unwrap_or_else(|e| panic!("{e}\n{}", proxy.log()));
        let states = endpoint_states(frontend_entry(&routes(&admin), &key));
        let elapsed = client.elapsed();
        let errors_after = scrape(&mut proxy).get(CONNECT_ERRORS, &errors);
        if errors_after > errors_before {
            if states[&bad_addr] == "ejected" {
                assert_eq!(states[&good_addr], "ready", "{states:?}");
                break;
            }
            // Too slow to see a 0.5 s ejection: not a verdict, try again.
            assert!(
                elapsed >= Duration::from_millis(450),
                "{bad_addr} refused a connect {elapsed:?} ago and shows {states:?}\n{}",
                proxy.log()
            );
            inconclusive += 1;
        }
        assert!(Instant::now() < until, "never saw the ejection ({inconclusive} slow tries)");
    }
    // The ejection ends; the failed-over clients were all carried.
    both_ready();
    let metrics = scrape(&mut proxy);
    let port = port_labels("routed", "web");
    let mut failed = port.to_vec();
    failed.push(("reason", "connect_failed"));
    assert_eq!(metrics.get(REJECTED, &failed), 0.0, "failover rejected nobody");
    assert_eq!(
        metrics.select(ENDPOINT_CONNECTIONS, &port).map(|s| s.value).sum::<f64>(),
        metrics.get(CONNECTIONS, &port),
        "every client of routed reached an endpoint"
    );
}

// --- the parser the tests rely on --------------------------------------------------

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
