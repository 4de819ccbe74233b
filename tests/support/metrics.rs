//! What the metrics tests share: the family names of DESIGN §5, Services
//! to count traffic of, clients that are turned away, and a scrape of
//! `/metrics` that waits for counters to catch up.
//!
//! Counters are checked for equality with what the clients did, never for
//! "it moved": byte counters are added when a connection ends, so a test
//! polls `/metrics` (with a deadline, [`settle`]) until the expected value
//! is reached, then asserts it is exactly that, and still is a moment later
//! ([`STAY`]). Every proxy has its admin servers on ephemeral ports, read
//! from its log.

use std::io::{self, ErrorKind, Read};
use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use super::manifests::{Port, pod_at, service};
use super::net::{self, addr, fresh_ip};
use super::prom::Exposition;
use super::proxy::Proxy;

pub const CONNECTIONS: &str = "svcproxy_connections_total";
pub const ACTIVE: &str = "svcproxy_connections_active";
pub const RECEIVED: &str = "svcproxy_received_bytes_total";
pub const SENT: &str = "svcproxy_sent_bytes_total";
pub const DURATION_COUNT: &str = "svcproxy_connection_duration_seconds_count";
pub const DURATION_SUM: &str = "svcproxy_connection_duration_seconds_sum";
pub const DURATION_BUCKET: &str = "svcproxy_connection_duration_seconds_bucket";
pub const ENDPOINT_CONNECTIONS: &str = "svcproxy_endpoint_connections_total";
pub const CONNECT_ERRORS: &str = "svcproxy_endpoint_connect_errors_total";
pub const REJECTED: &str = "svcproxy_rejected_connections_total";
pub const GENERATION: &str = "svcproxy_routing_generation";
pub const SERVICES: &str = "svcproxy_services";
pub const ENDPOINTS: &str = "svcproxy_endpoints";

/// The ServicePort every test Service listens on.
pub const PORT: u16 = 8080;
/// Bound on every wait for the proxy to catch up.
pub const WAIT: Duration = Duration::from_secs(10);
/// How long a reached value must then stay put.
pub const STAY: Duration = Duration::from_millis(300);

/// The `namespace`, `service`, `port` labels of a Service port in `default`.
pub fn port_labels<'a>(service: &'a str, port: &'a str) -> [(&'a str, &'a str); 3] {
    [("namespace", "default"), ("service", service), ("port", port)]
}

/// `/metrics` of `proxy`, parsed; panics with the log when unreadable.
pub fn scrape(proxy: &mut Proxy) -> Exposition {
    let admin = proxy.admin();
    Exposition::scrape(&admin).unwrap_or_else(|e| panic!("GET /metrics: {e}\n{}", proxy.log()))
}

/// Polls `/metrics` until `done` holds, within [`WAIT`]; that exposition.
/// Past the deadline, panics naming `what`, with the last exposition and
/// the log.
pub fn settle(proxy: &mut Proxy, what: &str, done: impl Fn(&Exposition) -> bool) -> Exposition {
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
pub fn value(metrics: &Exposition, name: &str, labels: &[(&str, &str)]) -> f64 {
    metrics.value(name, labels).unwrap_or(0.0)
}

/// A Service `name` at a fresh ClusterIP, port [`PORT`] named `port_name`
/// to the container port named `tcp` of its Pods, one per endpoint (in
/// order); its frontend and its manifests.
pub fn service_with_pods(
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
pub fn service_without_endpoints(name: &str, port: u16) -> (SocketAddr, String) {
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
pub fn rejected_client(frontend: SocketAddr) -> io::Result<()> {
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
