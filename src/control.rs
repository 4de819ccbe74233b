//! The control loop's rebuild: sources → model → Snapshot, published with
//! one atomic store. The only writer of the routing table.
//!
//! Keep last good: a file that no longer parses keeps the objects it had;
//! an object that turns invalid keeps its last valid version in service; an
//! explicitly named file that vanishes keeps its objects (a deleted file
//! inside a watched directory removes them). Every such fault is logged
//! with its file, object and field, and counted as a failed reload.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rustc_hash::FxHashSet;
use tracing::{info, warn};

use crate::context::Context;
use crate::manifest::{self, Object, ObjectKey};
use crate::metrics::Metrics;
use crate::model::{Memo, Model, Options};
use crate::table::Snapshot;

mod files;
mod good;
mod update;
pub mod watch;

use files::Files;
use good::Good;
use update::Updates;

/// Rebuilds and publishes Snapshots from the manifest paths.
#[derive(Debug)]
pub struct Control {
    paths: Vec<PathBuf>,
    options: Options,
    /// Addresses NodePorts are bound on.
    node_ips: Vec<IpAddr>,
    generation: u64,
    /// The objects each file yielded when it last parsed.
    files: Files,
    /// Their validation, redone only for objects new since the last build.
    memo: Memo,
    /// The last valid version of every object in service.
    good: Good,
    /// nodePorts dropped from Services changed to a type without them.
    updates: Updates,
}

/// What one rebuild found.
#[derive(Debug)]
pub struct Outcome {
    pub snapshot: Arc<Snapshot>,
    /// Invalid files, documents and objects, one message each.
    pub errors: Vec<String>,
}

// === impl Control ===

impl Control {
    pub fn new(paths: Vec<PathBuf>, options: Options, node_ips: Vec<IpAddr>) -> Self {
        Self {
            paths,
            options,
            node_ips,
            generation: 0,
            files: Files::default(),
            memo: Memo::default(),
            good: Good::default(),
            updates: Updates::default(),
        }
    }

    /// Reads every source, builds a whole new Snapshot off the data path and
    /// publishes it in `ctx` with one store.
    pub fn rebuild(&mut self, ctx: &Context) -> Outcome {
        let metrics = &ctx.metrics;
        let started = Instant::now();
        // Flattened first: each item of a broken List names its own object.
        let errors: Vec<manifest::Error> =
            self.files.read(&self.paths).into_iter().flat_map(manifest::Error::flatten).collect();
        let model = self.model(&errors);
        let invalid = errors.len() + model.invalid_objects();
        let mut messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
        messages.extend(model.errors.iter().map(ToString::to_string));
        for message in &messages {
            warn!("{message}");
        }
        let in_use = metrics.begin();
        let snapshot = Arc::new(Snapshot::build(
            model,
            &ctx.table.load(),
            &self.node_ips,
            &self.options.node_name,
            Some((metrics, &in_use)),
        ));
        self.generation = snapshot.generation;
        for conflict in &snapshot.conflicts {
            warn!("{conflict}");
        }
        let previous = ctx.table.swap(snapshot.clone());
        metrics.retain(in_use);
        record(metrics, &snapshot, invalid, started);
        info!(
            generation = self.generation,
            services = snapshot.services.len(),
            frontends = snapshot.len(),
            invalid,
            took = ?started.elapsed(),
            "routing table published"
        );
        // Freeing the old Snapshot (when no connection holds it) is not part
        // of publishing the new one: it is left out of the sync duration.
        drop(previous);
        Outcome { snapshot, errors: messages }
    }

    /// The model of every object; an object rejected now that was valid
    /// before is served in its last valid version.
    fn model(&mut self, errors: &[manifest::Error]) -> Model {
        // Edits the API server would take as updates, in the version it
        // would store.
        let patched = self.updates.apply(self.files.objects(), &self.good);
        for object in &patched {
            let (file, key) = (object.origin.file.display(), object.key());
            warn!(
                %file,
                object = %key,
                "nodePorts or healthCheckNodePort its spec no longer needs are dropped, as an API \
                 update drops them; remove them from the file: `svcproxy check` and a restart \
                 reject them"
            );
        }
        let replaced: FxHashSet<&ObjectKey> = patched.iter().map(Object::key).collect();
        let current = || self.files.objects().filter(|o| !replaced.contains(o.key()));
        let model = Model::rebuild(current().chain(&patched), &self.options, &mut self.memo);
        let invalid: FxHashSet<ObjectKey> = model.errors.iter().map(|e| e.key().clone()).collect();
        let mut rejected = invalid.clone();
        rejected.extend(errors.iter().filter_map(|e| e.key().cloned()));
        let fallback =
            if rejected.is_empty() { Vec::new() } else { self.good.get(rejected.iter()) };
        // The patched versions served stand in for their files' objects.
        let served: Vec<Object> =
            patched.iter().filter(|o| !rejected.contains(o.key())).cloned().collect();
        if fallback.is_empty() {
            let mut replaced: FxHashSet<ObjectKey> =
                served.iter().map(|o| o.key().clone()).collect();
            replaced.extend(invalid);
            self.good = Good::new(self.files.lists(), replaced, served);
            return model;
        }
        for object in &fallback {
            let (file, key) = (object.origin.file.display(), object.key());
            warn!(%file, object = %key, "invalid now: keeping its last valid version in service");
        }
        let current = current().filter(|o| !rejected.contains(o.key()));
        let retry =
            Model::rebuild(current.chain(&served).chain(&fallback), &self.options, &mut self.memo);
        // Only what the retry served: never an object rejected at first.
        let invalid: FxHashSet<ObjectKey> = retry.errors.iter().map(|e| e.key().clone()).collect();
        let kept = served.into_iter().chain(fallback).filter(|o| !invalid.contains(o.key()));
        let kept: Vec<Object> = kept.collect();
        rejected.extend(invalid);
        rejected.extend(kept.iter().map(|o| o.key().clone()));
        self.good = Good::new(self.files.lists(), rejected, kept);
        merge(model, retry)
    }
}

/// The retry's Services with the first build's errors (they point at the
/// files as written), plus any new error of the retry.
fn merge(first: Model, retry: Model) -> Model {
    let mut errors = first.errors;
    for e in retry.errors {
        if !errors.iter().any(|f| f.to_string() == e.to_string()) {
            errors.push(e);
        }
    }
    Model { services: retry.services, errors }
}

fn record(metrics: &Metrics, snapshot: &Snapshot, invalid: usize, started: Instant) {
    let result = if invalid == 0 { "success" } else { "failure" };
    metrics.config_reloads.with_label_values(&[result]).inc();
    metrics.config_invalid_objects.set(i64::try_from(invalid).unwrap_or(i64::MAX));
    metrics.routing_generation.set(i64::try_from(snapshot.generation).unwrap_or(i64::MAX));
    metrics.services.set(i64::try_from(snapshot.services.len()).unwrap_or(i64::MAX));
    let endpoints: usize = snapshot.services.iter().flat_map(|s| &s.endpoints).map(Vec::len).sum();
    metrics.endpoints.set(i64::try_from(endpoints).unwrap_or(i64::MAX));
    metrics.sync_duration.observe(started.elapsed().as_secs_f64());
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
    metrics.sync_last_timestamp.set(now);
}
