//! The API source at scale: 10,000 Services × 1 port × 3 endpoints served
//! by the fake API server of the tests (`tests/support/apiserver.rs`), the
//! real `svcproxy run --master URL` following it. Prints:
//!
//! - the time from start to the first routing table (`/healthz` 200; goal
//!   under 2 s) and the resident memory then (goal under 150 MiB);
//! - a single EndpointSlice change → the first new connection routed by it,
//!   each change after a quiet period (goal: p99 under `--min-sync-period`
//!   + 100 ms, the default period being 1 s);
//! - the CPU used while idle on established watches (goal: near zero);
//! - the resident memory after the first 1,000 watch events and after
//!   100,000 (goal: within 10 %).
//!
//! 10,000 listeners: this machine's descriptor hard limit is 20,000. Loopback
//! only: ClusterIPs in 127.100.0.0/16, endpoints in 127.101.0.0/16 (only
//! the measured Service's endpoints listen). Run: `cargo bench --bench api`.
//! With `--test` (as CI runs every bench, `cargo bench -- --test`) or
//! without `--bench` it is a smoke run at 200 Services.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench stops on a broken setup

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[path = "../tests/support"]
#[allow(dead_code, unreachable_pub)]
mod support {
    pub mod apiserver;
}

use support::apiserver::ApiServer;

const PORT: u16 = 8080;
const ENDPOINT_PORT: u16 = 9000;

/// What one run measures at.
struct Scale {
    services: usize,
    rounds: usize,
    idle: Duration,
    events: usize,
}

const FULL: Scale =
    Scale { services: 10_000, rounds: 20, idle: Duration::from_secs(10), events: 100_000 };
const SMOKE: Scale =
    Scale { services: 200, rounds: 2, idle: Duration::from_secs(1), events: 2_000 };

/// A smoke run proves the bench works without timing anything.
fn is_smoke() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--test") || !args.iter().any(|a| a == "--bench")
}

fn cluster_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 100, (i / 250) as u8, (i % 250 + 1) as u8)
}

fn service(i: usize) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": format!("svc-{i}"), "namespace": "default"},
        "spec": {"clusterIP": cluster_ip(i).to_string(),
                 "ports": [{"name": "tcp", "port": PORT, "targetPort": ENDPOINT_PORT}]},
    })
}

/// Service `i`'s EndpointSlice, its endpoints at `ips`, `version` in an
/// annotation so each write is a change.
fn slice(i: usize, ips: &[Ipv4Addr], port: u16, version: usize) -> Value {
    let endpoints: Vec<Value> = ips
        .iter()
        .map(|ip| json!({"addresses": [ip.to_string()], "conditions": {"ready": true}}))
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("svc-{i}-1"), "namespace": "default",
                     "labels": {"kubernetes.io/service-name": format!("svc-{i}")},
                     "annotations": {"bench/version": version.to_string()}},
        "addressType": "IPv4",
        "ports": [{"name": "tcp", "port": port, "protocol": "TCP"}],
        "endpoints": endpoints,
    })
}

fn endpoints_of(i: usize) -> Vec<Ipv4Addr> {
    (0..3).map(|k| Ipv4Addr::new(127, 101, (i / 80) as u8, (i % 80 * 3 + k + 1) as u8)).collect()
}

/// An endpoint that writes `name` to every connection and closes it.
fn endpoint(ip: Ipv4Addr, name: &'static str) -> SocketAddr {
    let listener = TcpListener::bind((ip, 0)).expect("bind endpoint");
    let local = listener.local_addr().expect("addr");
    thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let _ = stream.write_all(name.as_bytes());
        }
    });
    local
}

fn v4(addr: SocketAddr) -> Ipv4Addr {
    match addr.ip() {
        std::net::IpAddr::V4(ip) => ip,
        std::net::IpAddr::V6(_) => panic!("an IPv4 endpoint"),
    }
}

fn ask(frontend: SocketAddr) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&frontend, Duration::from_millis(200)).ok()?;
    stream.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    let mut name = String::new();
    stream.read_to_string(&mut name).ok()?;
    Some(name)
}

/// `GET path` on `to`: the status and the body.
fn get(to: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&to, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, text.split_once("\r\n\r\n")?.1.to_owned()))
}

fn sample(metrics: SocketAddr, series: &str) -> f64 {
    let (_, body) = get(metrics, "/metrics").expect("/metrics");
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port")
}

struct Proxy(Child);

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proxy {
    fn status(&self, field: &str) -> u64 {
        let text =
            std::fs::read_to_string(format!("/proc/{}/status", self.0.id())).expect("status");
        let line = text.lines().find_map(|l| l.strip_prefix(field)).expect("field");
        line.split_whitespace().next().and_then(|v| v.parse().ok()).expect("number")
    }

    fn rss_mib(&self) -> f64 {
        self.status("VmRSS:") as f64 / 1024.0
    }

    /// User + system CPU time so far, in clock ticks.
    fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.0.id())).expect("stat");
        let fields: Vec<&str> = stat.rsplit_once(')').expect("comm").1.split_whitespace().collect();
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
    }
}

/// Waits until `done` holds, polling every 10 ms, for at most `limit`.
fn wait(what: &str, limit: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "{what}: not after {limit:?}");
        thread::sleep(Duration::from_millis(10));
    }
    started.elapsed()
}

fn main() {
    let scale = if is_smoke() { SMOKE } else { FULL };
    let api = ApiServer::start();
    let a = endpoint(Ipv4Addr::new(127, 102, 0, 1), "a");
    let b = endpoint(Ipv4Addr::new(127, 102, 0, 2), "b");
    let mut objects = Vec::with_capacity(scale.services * 2);
    for i in 0..scale.services {
        objects.push(service(i));
        let slice = if i == 0 {
            slice(0, &[v4(a)], a.port(), 0)
        } else {
            slice(i, &endpoints_of(i), ENDPOINT_PORT, 0)
        };
        objects.push(slice);
    }
    api.apply_json(objects);
    let (metrics, healthz) = (free_addr(), free_addr());
    let started = Instant::now();
    let proxy = Proxy(
        Command::new(env!("CARGO_BIN_EXE_svcproxy"))
            .args(["run", "--master", &api.url()])
            .args(["--metrics-bind-address", &metrics.to_string()])
            .args(["--healthz-bind-address", &healthz.to_string()])
            .env("RUST_LOG", "warn")
            .stderr(Stdio::inherit())
            .spawn()
            .expect("svcproxy run"),
    );
    let limit = Duration::from_secs(60);
    wait("first routing table", limit, || get(healthz, "/healthz").is_some_and(|(s, _)| s == 200));
    let first = started.elapsed();
    let frontend = SocketAddr::from((cluster_ip(0), PORT));
    wait("served", limit, || ask(frontend).as_deref() == Some("a"));
    let rss = proxy.rss_mib();
    println!(
        "api source, {} Services x 1 port x 3 endpoints: first routing table after {first:?}, \
         RSS then {rss:.1} MiB",
        scale.services
    );

    // A single EndpointSlice change, after a quiet period each time.
    let mut samples = Vec::with_capacity(scale.rounds);
    for round in 0..scale.rounds {
        thread::sleep(Duration::from_millis(1_200));
        let (to, name) = if round % 2 == 0 { (b, "b") } else { (a, "a") };
        let changed = Instant::now();
        api.apply_json(vec![slice(0, &[v4(to)], to.port(), round + 1)]);
        wait("change routed", Duration::from_secs(10), || ask(frontend).as_deref() == Some(name));
        samples.push(changed.elapsed());
    }
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q).ceil() as usize).saturating_sub(1)];
    println!(
        "one EndpointSlice change -> routed, {} rounds (--min-sync-period 1s, each after a \
         quiet period): p50 {:?}, p99 {:?}, max {:?}",
        scale.rounds,
        at(0.5),
        at(0.99),
        samples[samples.len() - 1]
    );

    // Idle on established watches (bookmarks every second from the fake).
    thread::sleep(Duration::from_secs(2));
    let ticks = proxy.cpu_ticks();
    thread::sleep(scale.idle);
    let used = (proxy.cpu_ticks() - ticks) as f64 / 100.0;
    println!(
        "idle on established watches: {:.2} % of a core over {:?}",
        100.0 * used / scale.idle.as_secs_f64(),
        scale.idle
    );

    // Memory under a stream of watch events: the other Services' slices
    // rewritten in batches of 1,000.
    let modified = "svcproxy_api_watch_events_total{kind=\"EndpointSlice\",type=\"MODIFIED\"}";
    let base = sample(metrics, modified);
    let mut sent = 0;
    let mut after_first = 0.0;
    while sent < scale.events {
        let batch: Vec<Value> = (0..1_000)
            .map(|k| {
                let i = 1 + (sent + k) % (scale.services - 1);
                slice(i, &endpoints_of(i), ENDPOINT_PORT, sent + k + 1)
            })
            .collect();
        api.apply_json(batch);
        sent += 1_000;
        let target = base + sent as f64;
        wait("events applied", limit, || sample(metrics, modified) >= target);
        if sent == 1_000 {
            // The paced rebuild that takes them in.
            thread::sleep(Duration::from_millis(1_500));
            after_first = proxy.rss_mib();
        }
    }
    thread::sleep(Duration::from_millis(1_500));
    let after_all = proxy.rss_mib();
    println!(
        "RSS after 1,000 watch events {after_first:.1} MiB, after {} {after_all:.1} MiB ({:+.1} %)",
        scale.events,
        100.0 * (after_all - after_first) / after_first
    );
}
