//! The heap a Snapshot holds at cluster scale: 10,000 Services × 2 ports ×
//! 3 endpoints (one EndpointSlice each), cold and as a rebuild with the
//! validation Memo it keeps.
//!
//! The figures are bytes asked of the allocator (the system's, wrapped to
//! count them), so they do not depend on which allocator serves them; the
//! timings live in the `snapshot` bench, on the daemon's allocator.
//! Run: `cargo bench --bench heap` (one pass, no timing).

#![allow(clippy::expect_used)] // a bench stops on a broken setup

use std::alloc::System;
use std::hint::black_box;

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use svcproxy::metrics::Metrics;
use svcproxy::model::{Memo, Model};
use svcproxy::table::Snapshot;

mod scale;

use scale::{SERVICES, manifest, objects, options, snapshot};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn mib(bytes: usize) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}

fn main() {
    let objects = objects(&manifest(SERVICES));

    let region = Region::new(GLOBAL);
    // The first build, which also creates every metric entry.
    let metrics = Metrics::new().expect("metrics");
    let built = snapshot(&objects, &metrics);
    let change = region.change();
    let held = change.bytes_allocated.saturating_sub(change.bytes_deallocated);
    assert_eq!(built.len(), SERVICES * 2);
    assert!(built.services.iter().all(|s| s.endpoints.iter().all(|e| e.len() == 3)));
    println!(
        "snapshot of {SERVICES} Services x 2 ports x 3 endpoints: {} routes, {:.1} MiB held \
         (metric entries included), {:.1} MiB allocated while building",
        built.len(),
        mib(held),
        mib(change.bytes_allocated)
    );
    drop(built);

    let region = Region::new(GLOBAL);
    let mut memo = Memo::default();
    let model = Model::rebuild(&objects, &options(), &mut memo);
    let built = scale::build(model, &Snapshot::default(), &metrics);
    let change = region.change();
    let held = change.bytes_allocated.saturating_sub(change.bytes_deallocated);
    println!(
        "rebuild: Snapshot and the Memo kept for the next build: {:.1} MiB held \
         (metric entries not included)",
        mib(held)
    );
    black_box((built, memo));
}
