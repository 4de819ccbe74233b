//! One build: the sources read again, edits read as updates, the model
//! with the last good version of each object it rejects, the Snapshot.
//! Nothing is committed here: the result is a [`Built`] that
//! [`Control`](super::Control) commits, or drops whole.

use std::sync::Arc;
use std::time::Instant;

use rustc_hash::FxHashSet;
use tracing::warn;

use super::inputs::Inputs;
use super::{Built, State, Unknown};
use crate::context::Context;
use crate::manifest::{Finding, Object, ObjectKey};
use crate::model::Model;
use crate::source::LastGood;
use crate::source::{Files, files};
use crate::table::Snapshot;

// === impl State ===

impl State {
    /// Builds the next state from the sources as they are now; only the
    /// memo changes.
    pub(super) fn build(&mut self, ctx: &Context) -> Built {
        let started = Instant::now();
        let (files, errors) = self.files.read();
        let (listed, triggers) = self.api.as_ref().map(|a| a.read()).unwrap_or_default();
        let complete = self.api.is_none() || listed.is_some();
        let inputs = Inputs { files: &files, api: listed.as_deref() };
        let conflicts = inputs.conflicts();
        let shadowed = files
            .objects()
            .filter(|o| conflicts.contains(o.key()) && !self.conflicts.contains(o.key()))
            .cloned()
            .collect();
        // Edits the API server would take as updates, in the version it
        // would store.
        let (patched, update_rule) = self.update_rule.apply(inputs.files(), &self.last_good);
        warn_patched(&patched);
        let unknown = warn_unknown(&files, &self.unknown);
        let (model, last_good) = self.model(inputs, &patched, &errors);
        let invalid = errors.len() + model.invalid_objects();
        let mut messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
        messages.extend(model.errors.iter().map(ToString::to_string));
        let in_use = ctx.metrics.begin();
        let (ips, node) = (&self.node_ips, &self.options.node_name);
        // Held for the whole build: an `Arc`, not a guard.
        let previous = ctx.table.load_full();
        let counting = Some((&ctx.metrics, &in_use));
        let snapshot = Arc::new(Snapshot::build(model, &previous, ips, node, counting));
        #[cfg(test)]
        assert!(!self.fault, "a fault injected into the build");
        Built {
            files,
            complete,
            conflicts,
            shadowed,
            triggers,
            last_good,
            update_rule,
            unknown,
            snapshot,
            in_use,
            errors: messages,
            invalid,
            started,
        }
    }

    /// The model of every object (the update rule's `patched` versions
    /// standing in for their files'), and what it served, for the next
    /// build's last good. An object rejected now that was valid before is
    /// served in its last valid version.
    fn model(
        &mut self,
        inputs: Inputs<'_>,
        patched: &[Object],
        errors: &[files::Error],
    ) -> (Model, LastGood) {
        let replaced: FxHashSet<&ObjectKey> = patched.iter().map(Object::key).collect();
        let current = inputs.objects().filter(|o| !replaced.contains(o.key()));
        let model = Model::rebuild(current.chain(patched), &self.options, &mut self.memo);
        let invalid = keys(&model);
        let mut rejected = invalid.clone();
        rejected.extend(errors.iter().filter_map(|e| e.key().cloned()));
        let fallback =
            if rejected.is_empty() { Vec::new() } else { self.last_good.get(rejected.iter()) };
        if !fallback.is_empty() {
            return self.retry(inputs, model, rejected, patched, fallback);
        }
        let served = served(patched, &rejected);
        let mut replaced: FxHashSet<ObjectKey> = served.iter().map(|o| o.key().clone()).collect();
        replaced.extend(invalid);
        (model, LastGood::new(inputs.lists(), replaced, served))
    }

    /// The model again, `rejected` objects replaced by their last valid
    /// version (`fallback`).
    fn retry(
        &mut self,
        inputs: Inputs<'_>,
        first: Model,
        mut rejected: FxHashSet<ObjectKey>,
        patched: &[Object],
        fallback: Vec<Object>,
    ) -> (Model, LastGood) {
        for object in &fallback {
            let (origin, key) = (&object.origin, object.key());
            warn!(%origin, object = %key, "invalid now: keeping its last valid version in service");
        }
        let served = served(patched, &rejected);
        let replaced: FxHashSet<&ObjectKey> = patched.iter().map(Object::key).collect();
        let current =
            inputs.objects().filter(|o| !replaced.contains(o.key()) && !rejected.contains(o.key()));
        let objects = current.chain(&served).chain(&fallback);
        let retry = Model::rebuild(objects, &self.options, &mut self.memo);
        // Only what the retry served: never an object rejected at first.
        let invalid = keys(&retry);
        let kept: Vec<Object> =
            served.into_iter().chain(fallback).filter(|o| !invalid.contains(o.key())).collect();
        rejected.extend(invalid);
        rejected.extend(kept.iter().map(|o| o.key().clone()));
        (merge(first, retry), LastGood::new(inputs.lists(), rejected, kept))
    }
}

/// The patched versions served: they stand in for their files' objects.
fn served(patched: &[Object], rejected: &FxHashSet<ObjectKey>) -> Vec<Object> {
    patched.iter().filter(|o| !rejected.contains(o.key())).cloned().collect()
}

/// The objects `model` rejected.
fn keys(model: &Model) -> FxHashSet<ObjectKey> {
    model.errors.iter().map(|e| e.key().clone()).collect()
}

/// Logs each unknown field of the files' objects that the last commit did
/// not know of (once per object, not on every rebuild; the object is
/// served all the same), and returns them all. The API server's objects
/// are left out: it checked them.
fn warn_unknown(files: &Files, logged: &Unknown) -> Unknown {
    let mut unknown = Unknown::default();
    for object in files.objects().filter(|o| !o.unknown_fields().is_empty()) {
        for finding in Finding::warnings(object) {
            let seen = (object.key().clone(), finding.path().clone());
            if !logged.contains(&seen) {
                warn!("{finding}: served as if it were not there");
            }
            unknown.insert(seen);
        }
    }
    unknown
}

fn warn_patched(patched: &[Object]) {
    for object in patched {
        let (origin, key) = (&object.origin, object.key());
        warn!(
            %origin,
            object = %key,
            "nodePorts or healthCheckNodePort its spec no longer needs are dropped, as an API \
             update drops them; remove them from the file: `svcproxy check` and a restart \
             reject them"
        );
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
    Model {
        services: retry.services,
        errors,
        http_by_port_name: retry.http_by_port_name,
        node: retry.node,
    }
}
