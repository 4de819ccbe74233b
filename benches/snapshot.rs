//! Snapshot build at cluster scale: 10,000 Services × 2 ports × 3 endpoints
//! (one EndpointSlice each). Goal: from objects already loaded to a
//! published Snapshot in under 50 ms.
//!
//! Compares the ways a Snapshot comes to be, and the stages:
//! - `one_file_changed`: the daemon's whole rebuild (`Control::publish`)
//!   over 100 files of 100 Services after one file was rewritten: every
//!   file read, the changed one parsed, model, Snapshot, commit (store,
//!   metrics; no listeners: 20,000 of them would take as many descriptors);
//! - `publish`: the daemon's rebuild from objects already loaded, with the
//!   validation Memo of the last build: model → Snapshot (round-robin
//!   cursors carried from the one published) → stored in an `ArcSwap`;
//! - `publish_cold`: the same without a Memo (the daemon's first build);
//! - `snapshot`: objects → model → Snapshot, cold, freed in the timing (the
//!   figure this bench gave before the Memo);
//! - `model`: objects → validated model, cold (as `check` does it);
//! - `parse`: YAML text (one `kind: List`) → objects.
//!
//! The `publish*` figures stop at the store, `one_file_changed` at the end
//! of the commit: the previous Snapshot is freed after it (and after the
//! timing), as the daemon frees it after publishing. The allocator is the daemon's
//! (mimalloc); the heap a Snapshot holds is the `heap` bench's.
//! Run: `cargo bench --bench snapshot`.

#![allow(clippy::expect_used)] // a bench stops on a broken setup

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use criterion::{Criterion, criterion_group, criterion_main};
use svcproxy::manifest::Object;
use svcproxy::metrics::Metrics;
use svcproxy::model::{Memo, Model};
use svcproxy::table::Snapshot;

mod scale;

use scale::{NODE, SERVICES, manifest, objects, options, snapshot};

/// The daemon's allocator (src/main.rs): a rebuild is mostly allocation.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Files of the `one_file_changed` bench, and Services per file.
const FILES: usize = 100;

/// Times `build` up to the store of its Snapshot; the previous one is
/// freed after the timing.
fn publish(table: &ArcSwap<Snapshot>, iters: u64, mut build: impl FnMut() -> Snapshot) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let started = Instant::now();
        let previous = table.swap(Arc::new(build()));
        total += started.elapsed();
        drop(previous);
    }
    total
}

fn stages(c: &mut Criterion, text: &str, objects: &[Object]) {
    let mut group = c.benchmark_group("10k_services");
    group.sample_size(10);
    let metrics = Metrics::new().expect("metrics");
    let table = ArcSwap::from_pointee(Snapshot::default());
    let mut memo = Memo::default();
    group.bench_function("publish", |b| {
        b.iter_custom(|iters| {
            publish(&table, iters, || {
                let model = Model::rebuild(black_box(objects), &options(), &mut memo);
                scale::build(model, &table.load(), &metrics)
            })
        })
    });
    group.bench_function("publish_cold", |b| {
        b.iter_custom(|iters| publish(&table, iters, || snapshot(black_box(objects), &metrics)))
    });
    group.bench_function("snapshot", |b| {
        b.iter(|| black_box(snapshot(black_box(objects), &metrics)))
    });
    group.bench_function("model", |b| {
        b.iter(|| black_box(Model::build(black_box(objects), &options())))
    });
    // Last: parsing 6 MiB again and again leaves a fragmented heap that
    // slows every bench after it by up to a half.
    group.bench_function("parse", |b| b.iter(|| black_box(scale::objects(black_box(text)))));
    group.finish();
}

fn bench(c: &mut Criterion) {
    let text = manifest(SERVICES);
    let objects = objects(&text);
    one_file_changed(c);
    stages(c, &text, &objects);
}

/// `Control::publish` over [`FILES`] files after one of them changed: the
/// daemon's whole rebuild (read, parse what changed, model, Snapshot,
/// commit, the listeners of its 20,000 loopback frontends reconciled).
fn one_file_changed(c: &mut Criterion) {
    use svcproxy::context::{Context, Splice};
    use svcproxy::control::Control;
    use svcproxy::source::Files;

    let dir = tempfile::tempdir().expect("temp dir");
    let per_file = SERVICES / FILES;
    let path = |f: usize| dir.path().join(format!("services-{f:03}.yaml"));
    for f in 0..FILES {
        let services = f * per_file..(f + 1) * per_file;
        std::fs::write(path(f), scale::list(services, 0)).expect("write");
    }
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let ctx = Arc::new(Context::new(Duration::from_secs(1), Splice::Auto).expect("context"));
    let files = Files::new(vec![dir.path().to_owned()]);
    let mut control = Control::new(files, options(), NODE.to_vec()).without_listeners();
    let mut publish = || runtime.block_on(control.publish(&ctx)).expect("publish");
    let first = publish();
    assert!(first.errors.is_empty(), "{:?}", first.errors);
    assert_eq!(first.snapshot.len(), SERVICES * 2);
    let mut last = first.snapshot;
    let mut versions = [0u8; FILES];
    let mut round = 0usize;
    let mut group = c.benchmark_group("10k_services");
    group.sample_size(10);
    group.bench_function("one_file_changed", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                round += 1;
                let f = round % FILES;
                versions[f] ^= 1;
                let services = f * per_file..(f + 1) * per_file;
                std::fs::write(path(f), scale::list(services, versions[f])).expect("write");
                let started = Instant::now();
                let outcome = publish();
                total += started.elapsed();
                // The previous Snapshot is freed here, after the timing.
                last = outcome.snapshot;
            }
            total
        })
    });
    group.finish();
    black_box(last);
}

criterion_group!(benches, bench);
criterion_main!(benches);
