//! Snapshot build at cluster scale: 10,000 Services × 2 ports × 3 endpoints
//! (one EndpointSlice each), as one `kind: List` manifest.
//!
//! Compares the stages of a rebuild: YAML text → objects (`parse`), objects
//! → validated model (`model`), and objects → model → Snapshot (`snapshot`,
//! the whole rebuild after parsing, reusing the metric entries as the daemon
//! does; goal: under 50 ms), with the binary's
//! allocator (the system's) wrapped to count the heap one Snapshot holds.
//! Run: `cargo bench --bench snapshot`.

#![allow(clippy::expect_used)] // a bench stops on a broken setup

use std::alloc::System;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use svcproxy::metrics::Metrics;
use svcproxy::model::Model;

mod scale;

use scale::{SERVICES, manifest, objects, options, snapshot};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Prints the heap one built Snapshot holds and what building it allocates.
fn report_memory(objects: &[svcproxy::manifest::Object]) {
    let region = Region::new(GLOBAL);
    // The first build, which also creates every metric entry.
    let built = snapshot(objects, &Metrics::new().expect("metrics"));
    let change = region.change();
    let held = change.bytes_allocated.saturating_sub(change.bytes_deallocated);
    assert_eq!(built.len(), SERVICES * 2);
    assert!(built.services.iter().all(|s| s.endpoints.iter().all(|e| e.len() == 3)));
    let mib = |bytes: usize| bytes as f64 / f64::from(1 << 20);
    println!(
        "snapshot of {SERVICES} Services x 2 ports x 3 endpoints: {} routes, {:.1} MiB held, \
         {:.1} MiB allocated while building",
        built.len(),
        mib(held),
        mib(change.bytes_allocated)
    );
}

fn bench(c: &mut Criterion) {
    let text = manifest(SERVICES);
    let objects = objects(&text);
    report_memory(&objects);
    let mut group = c.benchmark_group("10k_services");
    group.sample_size(10);
    group.bench_function("parse", |b| b.iter(|| black_box(scale::objects(black_box(&text)))));
    group.bench_function("model", |b| {
        b.iter(|| black_box(Model::build(black_box(&objects), &options())))
    });
    let metrics = Metrics::new().expect("metrics");
    group.bench_function("snapshot", |b| {
        b.iter(|| black_box(snapshot(black_box(&objects), &metrics)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
