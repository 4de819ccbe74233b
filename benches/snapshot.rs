//! Snapshot build at cluster scale: 10,000 Services × 2 ports × 3 endpoints
//! (one EndpointSlice each), as one `kind: List` manifest.
//!
//! Compares the stages of a rebuild: YAML text → objects (`parse`), objects
//! → validated model (`model`), and objects → model → Snapshot (`snapshot`,
//! the whole rebuild after parsing; goal: under 50 ms). Also prints the
//! heap held by one built Snapshot. Run: `cargo bench --bench snapshot`.

#![allow(clippy::expect_used)] // a bench stops on a broken setup

use std::alloc::System;
use std::fmt::Write as _;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use svcproxy::manifest::{Loaded, Object};
use svcproxy::model::{Model, Options};
use svcproxy::table::Snapshot;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const SERVICES: usize = 10_000;

/// A `kind: List` of `count` Services, each with two named ports and one
/// EndpointSlice of three ready endpoints.
fn manifest(count: usize) -> String {
    let mut text = String::from("apiVersion: v1\nkind: List\nitems:\n");
    for i in 0..count {
        let (a, b) = (i / 250, i % 250);
        let _ = write!(
            text,
            "- apiVersion: v1\n  kind: Service\n  metadata: {{name: svc-{i}, namespace: bench}}\n  \
             spec:\n    clusterIP: 127.{}.{a}.{b}\n    selector: {{app: svc-{i}}}\n    ports:\n    \
             - {{name: http, port: 80, targetPort: 8080}}\n    - {{name: metrics, port: 9090}}\n\
             - apiVersion: discovery.k8s.io/v1\n  kind: EndpointSlice\n  \
             metadata: {{name: svc-{i}-abc, namespace: bench, labels: {{kubernetes.io/service-name: svc-{i}}}}}\n  \
             addressType: IPv4\n  ports: [{{name: http, port: 8080}}, {{name: metrics, port: 9090}}]\n  endpoints:\n  \
             - addresses: [127.200.{a}.{b}]\n  - addresses: [127.201.{a}.{b}]\n  - addresses: [127.202.{a}.{b}]\n",
            96 + i / 62_500
        );
    }
    text
}

fn objects(text: &str) -> Vec<Object> {
    let mut loaded = Loaded::default();
    loaded.add_text(Path::new("bench.yaml"), text);
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors.first());
    loaded.objects
}

fn options() -> Options {
    Options {
        service_cidr: "10.96.0.0/12".parse().expect("cidr"),
        node_name: "bench".to_owned(),
        service_proxy_name: None,
    }
}

fn snapshot(objects: &[Object]) -> Snapshot {
    let node = [IpAddr::V4(Ipv4Addr::UNSPECIFIED)];
    Snapshot::build(Model::build(objects, &options()), 1, &node, "bench")
}

fn report_memory(objects: &[Object]) {
    let region = Region::new(GLOBAL);
    let built = snapshot(objects);
    let change = region.change();
    let held = change.bytes_allocated.saturating_sub(change.bytes_deallocated);
    assert_eq!(built.len(), SERVICES * 2);
    assert!(built.services.iter().all(|s| s.endpoints.iter().all(|e| e.len() == 3)));
    println!(
        "snapshot of {SERVICES} Services x 2 ports x 3 endpoints: {} routes, {:.1} MiB held, {:.1} MiB allocated while building",
        built.len(),
        held as f64 / (1 << 20) as f64,
        change.bytes_allocated as f64 / (1 << 20) as f64
    );
}

fn bench(c: &mut Criterion) {
    let text = manifest(SERVICES);
    let objects = objects(&text);
    report_memory(&objects);
    let mut group = c.benchmark_group("10k_services");
    group.sample_size(10);
    group.bench_function("parse", |b| b.iter(|| black_box(self::objects(black_box(&text)))));
    group.bench_function("model", |b| {
        b.iter(|| black_box(Model::build(black_box(&objects), &options())))
    });
    group.bench_function("snapshot", |b| b.iter(|| black_box(snapshot(black_box(&objects)))));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
