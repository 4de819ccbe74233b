//! The per-connection path outside the kernel, at 10 and at 10,000
//! Services: what a new connection costs between accept and connect.
//!
//! - `route`: the published Snapshot loaded from its `ArcSwap` and the
//!   accepting Frontend's Route cloned out of it (what the accept loop does);
//! - `pick`: the Balancer's plan for a client (round robin, ejection check);
//! - `metrics`: every traffic-metric update one short connection makes;
//! - `accept`: the three together;
//! - `request`: every metric update one HTTP request makes, from its clock
//!   read at the head to its duration recorded at the body's end.
//!
//! The figure must not grow with the number of Services (issue 6).
//! Run: `cargo bench --bench path`.

#![allow(clippy::expect_used)] // a bench stops on a broken setup

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use arc_swap::ArcSwap;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use svcproxy::balance::Balancer;
use svcproxy::metrics::{Metrics, PortStats};
use svcproxy::table::{Frontend, Route, Snapshot};

mod scale;

/// The daemon's allocator (src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));

/// A published Snapshot of `services` Services and the Frontend of one in
/// the middle of it.
fn published(services: usize) -> (ArcSwap<Snapshot>, Frontend) {
    let objects = scale::objects(&scale::manifest(services));
    let snapshot = scale::snapshot(&objects, &Metrics::new().expect("metrics"));
    let frontends = snapshot.frontends();
    let frontend = frontends[frontends.len() / 2];
    (ArcSwap::from_pointee(snapshot), frontend)
}

fn route(table: &ArcSwap<Snapshot>, frontend: &Frontend) -> std::sync::Arc<Route> {
    table.load().route(frontend).cloned().expect("a route")
}

/// What one HTTP request does to its port's metrics, from its arrival
/// (the clock read the balancer's plan shares) to its response's end.
fn count_request(route: &Route, endpoint: usize) {
    let started = Instant::now();
    route.endpoints[endpoint].stats.http_requests.inc();
    if let Some(http) = route.stats.http() {
        http.responded(black_box(200));
        http.duration.observe(started.elapsed().as_secs_f64());
    }
}

/// What one short connection does to its port's metrics.
fn count(stats: &PortStats, route: &Route, endpoint: usize) {
    stats.connections.inc();
    stats.active.inc();
    route.endpoints[endpoint].stats.connections.inc();
    stats.received.inc_by(78);
    stats.sent.inc_by(230);
    stats.duration.observe(0.000_3);
    stats.active.dec();
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("connection");
    for services in [10, scale::SERVICES] {
        let (table, frontend) = published(services);
        let balancer = Balancer::default();
        let held = route(&table, &frontend);
        group.bench_function(BenchmarkId::new("route", services), |b| {
            b.iter(|| black_box(route(&table, black_box(&frontend))))
        });
        group.bench_function(BenchmarkId::new("pick", services), |b| {
            b.iter(|| black_box(balancer.plan(&held, black_box(CLIENT), Instant::now())))
        });
        group.bench_function(BenchmarkId::new("metrics", services), |b| {
            b.iter(|| count(&held.stats, &held, black_box(1)))
        });
        held.stats.serve_http();
        group.bench_function(BenchmarkId::new("request", services), |b| {
            b.iter(|| count_request(&held, black_box(1)))
        });
        group.bench_function(BenchmarkId::new("accept", services), |b| {
            b.iter(|| {
                let route = route(&table, black_box(&frontend));
                let plan = balancer.plan(&route, black_box(CLIENT), Instant::now());
                let first = plan.iter().next().expect("an endpoint");
                count(&route.stats, &route, first);
                black_box(plan)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
