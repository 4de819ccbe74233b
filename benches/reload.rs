//! Reload latency: from a manifest write to the first new connection routed
//! by it. Goal: p99 under 250 ms.
//!
//! Starts the real `svcproxy run` on a temporary manifests directory with one
//! Service and two endpoints A and B (each answers its name), then 100 times
//! rewrites the Service's EndpointSlice to the other endpoint (alternating an
//! atomic rename and an in-place rewrite) and polls new connections until
//! one reaches it. Prints p50, p90, p99 and max. Loopback only. The proxy
//! runs with `--min-sync-period 0s`: rounds follow each other by 50 ms,
//! and the default period (at most one rebuild a second, a change after a
//! quiet second applied at once) would measure the pacing, not the reload.
//! Run: `cargo bench --bench reload`. With `--test` (as CI runs every
//! bench, `cargo bench -- --test`) or without `--bench` (`cargo test
//! --benches`) it is a 5-round smoke run.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench stops on a broken setup

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const ROUNDS: usize = 100;
const SMOKE_ROUNDS: usize = 5;
const FRONTEND: &str = "127.97.0.10:8080";

/// An endpoint that writes `name` to every connection and closes it.
fn endpoint(addr: &str, name: &'static str) -> SocketAddr {
    let listener = TcpListener::bind(addr).expect("bind endpoint");
    let local = listener.local_addr().expect("addr");
    thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let _ = stream.write_all(name.as_bytes());
        }
    });
    local
}

fn manifest(to: SocketAddr) -> String {
    let ip = FRONTEND.split(':').next().unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: reload}}\nspec:\n  clusterIP: {ip}\n  ports: [{{port: 8080}}]\n\
         ---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
         metadata: {{name: reload-1, labels: {{kubernetes.io/service-name: reload}}}}\naddressType: IPv4\n\
         ports: [{{port: {}}}]\nendpoints: [{{addresses: [\"{}\"]}}]\n",
        to.port(),
        to.ip()
    )
}

fn ask(frontend: SocketAddr) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&frontend, Duration::from_millis(200)).ok()?;
    stream.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    let mut name = String::new();
    stream.read_to_string(&mut name).ok()?;
    Some(name)
}

fn write(dir: &Path, text: &str, by_rename: bool) {
    let target = dir.join("reload.yaml");
    if by_rename {
        let tmp = dir.join(".reload.yaml.tmp");
        std::fs::write(&tmp, text).expect("write");
        std::fs::rename(&tmp, &target).expect("rename");
    } else {
        std::fs::write(&target, text).expect("write");
    }
}

struct Proxy(Child);

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A smoke run proves the bench works without timing anything.
fn is_smoke() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--test") || !args.iter().any(|a| a == "--bench")
}

fn main() {
    let rounds = if is_smoke() { SMOKE_ROUNDS } else { ROUNDS };
    let dir = tempfile::tempdir().expect("temp dir");
    let endpoints = [(endpoint("127.97.0.1:0", "a"), "a"), (endpoint("127.97.0.2:0", "b"), "b")];
    write(dir.path(), &manifest(endpoints[0].0), true);
    let _proxy = Proxy(
        Command::new(env!("CARGO_BIN_EXE_svcproxy"))
            .args([
                "run",
                "--metrics-bind-address",
                "127.0.0.1:0",
                "--healthz-bind-address",
                "127.0.0.1:0",
                "--min-sync-period",
                "0s",
            ])
            .arg("--manifests")
            .arg(dir.path())
            .env("RUST_LOG", "warn")
            .stderr(Stdio::inherit())
            .spawn()
            .expect("svcproxy run"),
    );
    let frontend: SocketAddr = FRONTEND.parse().expect("frontend");
    let started = Instant::now();
    while ask(frontend).as_deref() != Some("a") {
        assert!(started.elapsed() < Duration::from_secs(10), "proxy never served");
        thread::sleep(Duration::from_millis(10));
    }
    let mut samples = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let (to, name) = endpoints[(round + 1) % 2];
        let written = Instant::now();
        write(dir.path(), &manifest(to), round % 2 == 0);
        while ask(frontend).as_deref() != Some(name) {
            assert!(
                written.elapsed() < Duration::from_secs(5),
                "round {round}: change never applied"
            );
            thread::sleep(Duration::from_millis(1));
        }
        samples.push(written.elapsed());
        // Let the watcher settle so each round measures one change.
        thread::sleep(Duration::from_millis(50));
    }
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q).ceil() as usize).saturating_sub(1)];
    println!(
        "reload latency, write -> first connection routed by it, {rounds} rounds: \
         p50 {:?}, p90 {:?}, p99 {:?}, max {:?}",
        at(0.50),
        at(0.90),
        at(0.99),
        samples[samples.len() - 1]
    );
}
