//! The control loop's rebuild: sources → model → Snapshot, as one
//! transaction. The only writer of the routing table.
//!
//! A rebuild builds everything first, off the data path: the sources read
//! again, the model, the Snapshot ([`build`]). Only then is the new state
//! committed, all at once: the sources' state, the last good versions, the
//! Snapshot published with one atomic store, the listeners reconciled with
//! it. A build that panics commits nothing: the old state stays whole, the
//! failure is logged and counted, and the next change is tried again.
//!
//! Keep last good: a file that no longer parses keeps the objects it had;
//! an object that turns invalid keeps its last valid version in service; an
//! explicitly named file that vanishes keeps its objects (a deleted file
//! inside a watched directory removes them). Every such fault is logged
//! with its file, object and field, and counted as a failed reload.

use std::any::Any;
use std::net::IpAddr;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use rustc_hash::FxHashSet;

use tracing::{error, info, warn};

use crate::context::Context;
use crate::listener::supervisor::Supervisor;
use crate::manifest::{FieldPath, Object, ObjectKey};
use crate::metrics::{InUse, Metrics, Published};
use crate::model::{Memo, Options};
use crate::source::files::UpdateRule;
use crate::source::{Api, Files, LastGood};
use crate::table::Snapshot;

mod build;
mod inputs;

/// Rebuilds and publishes Snapshots from the sources.
#[derive(Debug)]
pub struct Control {
    /// `None` only while a build runs on the blocking pool (and for good
    /// when that build was cut short by a signal).
    state: Option<State>,
    /// A listener per frontend of the published Snapshot.
    listeners: Supervisor,
    /// False for a caller that builds and publishes without serving.
    listen: bool,
}

/// What a build starts from: the settings, and the state the last commit
/// left.
#[derive(Debug)]
struct State {
    options: Options,
    /// Addresses NodePorts are bound on.
    node_ips: Vec<IpAddr>,
    /// The objects each file yielded when it last parsed.
    files: Files,
    /// The API server's objects, when it is a source.
    api: Option<Api>,
    /// Objects both sources hold, already logged.
    conflicts: FxHashSet<ObjectKey>,
    /// The last valid version of every object in service.
    last_good: LastGood,
    /// nodePorts dropped from Services changed to a type without them.
    update_rule: UpdateRule,
    /// The unknown fields of the file objects, each logged once.
    unknown: Unknown,
    /// Validations kept from build to build. A cache of results of
    /// objects it keeps alive, right whatever a build cut short left in
    /// it: not part of the transaction.
    memo: Memo,
    /// Makes the next builds panic once they built their Snapshot.
    #[cfg(test)]
    fault: bool,
}

/// A build, not committed yet.
#[derive(Debug)]
struct Built {
    files: Files,
    /// Whether the API server's objects are in (or it is no source).
    complete: bool,
    conflicts: FxHashSet<ObjectKey>,
    /// File objects the API server stands in for since this build.
    shadowed: Vec<Object>,
    /// When the EndpointSlice changes this build serves were made.
    triggers: Vec<SystemTime>,
    last_good: LastGood,
    update_rule: UpdateRule,
    unknown: Unknown,
    snapshot: Arc<Snapshot>,
    /// The metric series the Snapshot counts into.
    in_use: InUse,
    /// Invalid files, documents and objects, one message each.
    errors: Vec<String>,
    /// How many files and objects were rejected.
    invalid: usize,
    started: Instant,
}

/// Every unknown field of the file objects, by object and path.
type Unknown = FxHashSet<(ObjectKey, FieldPath)>;

/// What one committed rebuild published.
#[derive(Debug)]
pub struct Outcome {
    pub snapshot: Arc<Snapshot>,
    /// False while the API server is a source that has not been listed
    /// in full: the Snapshot holds the files' objects only.
    pub complete: bool,
    /// Invalid files, documents and objects, one message each.
    pub errors: Vec<String>,
}

/// A rebuild that committed nothing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bug met by some input; the state before it stays.
    #[error("routing table rebuild failed: {0}")]
    Panicked(String),
    /// An earlier rebuild was cut short and took the state with it.
    #[error("routing table rebuild cut short")]
    Gone,
}

// === impl Control ===

impl Control {
    pub fn new(files: Files, options: Options, node_ips: Vec<IpAddr>) -> Self {
        let state = State {
            options,
            node_ips,
            files,
            api: None,
            conflicts: FxHashSet::default(),
            last_good: LastGood::default(),
            update_rule: UpdateRule::default(),
            unknown: Unknown::default(),
            memo: Memo::default(),
            #[cfg(test)]
            fault: false,
        };
        Self { state: Some(state), listeners: Supervisor::default(), listen: true }
    }

    /// This control loop, with the API server as a source beside the
    /// files: its objects join once it listed both kinds in full.
    pub fn with_api(mut self, api: Api) -> Self {
        if let Some(state) = &mut self.state {
            state.api = Some(api);
        }
        self
    }

    /// This control loop, publishing without binding a listener: for a
    /// caller that measures or inspects rebuilds and serves nothing (the
    /// benches, whose 20,000 frontends would take as many descriptors).
    pub fn without_listeners(mut self) -> Self {
        self.listen = false;
        self
    }

    /// Reads every source, builds a whole new state off the data path (on
    /// the blocking pool: parsing a large manifest set must not stall a
    /// runtime worker that carries connections) and commits it. A build
    /// that panics commits nothing and is counted as a failed reload (what
    /// it logged before the panic, such as an object's last good version
    /// kept, stays logged).
    pub async fn publish(&mut self, ctx: &Arc<Context>) -> Result<Outcome, Error> {
        let mut state = self.state.take().ok_or(Error::Gone)?;
        let task_ctx = ctx.clone();
        let (state, built) = tokio::task::spawn_blocking(move || {
            // A bug met by some input must not take every Service down.
            let built = panic::catch_unwind(AssertUnwindSafe(|| state.build(&task_ctx)));
            (state, built)
        })
        .await
        // Not a panic of the build (that is caught): the runtime is going.
        .map_err(|_| Error::Gone)?;
        match built {
            Ok(built) => Ok(self.commit(state, built, ctx)),
            Err(cause) => {
                self.state = Some(state);
                let cause = message(&*cause);
                error!(%cause, "routing table rebuild failed: nothing changed");
                ctx.metrics.config_reloads.with_label_values(&["failure"]).inc();
                Err(Error::Panicked(cause))
            }
        }
    }

    /// Commits `built` over `state`: the state it read, the Snapshot
    /// published with one store, its metric series exported and those of
    /// Snapshots gone dropped, listeners bound for its new frontends and
    /// closed for those gone. Nothing here fails.
    fn commit(&mut self, mut state: State, built: Built, ctx: &Arc<Context>) -> Outcome {
        let Built {
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
            errors,
            invalid,
            started,
        } = built;
        state.files = files;
        state.conflicts = conflicts;
        state.last_good = last_good;
        state.update_rule = update_rule;
        state.unknown = unknown;
        self.state = Some(state);
        let previous = ctx.table.swap(snapshot.clone());
        ctx.metrics.publish(in_use, &published(&snapshot, invalid, started));
        programmed(&ctx.metrics, &triggers);
        if self.listen {
            self.listeners.reconcile(&snapshot, ctx);
        }
        ctx.balancer.retain_endpoints(&snapshot);
        ctx.upstreams.retain(&snapshot);
        for message in errors.iter().chain(&snapshot.conflicts) {
            warn!("{message}");
        }
        for object in &shadowed {
            let (origin, key) = (&object.origin, object.key());
            warn!(%origin, object = %key, "the API server holds this object too: its version is served");
        }
        info!(
            generation = snapshot.generation,
            services = snapshot.services.len(),
            frontends = snapshot.len(),
            invalid,
            took = ?started.elapsed(),
            "routing table published"
        );
        // Freeing the old Snapshot (when no connection holds it) is not part
        // of publishing the new one: it is left out of the sync duration.
        drop(previous);
        Outcome { snapshot, complete, errors }
    }

    /// Closes every listener (SIGTERM): no new connection is accepted.
    pub fn close(&mut self) {
        self.listeners.close();
    }

    /// Makes every build from now on panic once it built its Snapshot
    /// (`on`), or not.
    #[cfg(test)]
    fn inject_fault(&mut self, on: bool) {
        if let Some(state) = &mut self.state {
            state.fault = on;
        }
    }
}

/// What a panic said.
fn message(cause: &(dyn Any + Send)) -> String {
    cause
        .downcast_ref::<&str>()
        .map(ToString::to_string)
        .or_else(|| cause.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

fn published(snapshot: &Snapshot, invalid: usize, started: Instant) -> Published {
    Published {
        generation: snapshot.generation,
        services: snapshot.services.len(),
        endpoints: snapshot.services.iter().flat_map(|s| &s.endpoints).map(Vec::len).sum(),
        invalid,
        took: started.elapsed(),
    }
}

/// Observes, for each EndpointSlice change just published, the time from
/// the change to now.
fn programmed(metrics: &Metrics, triggers: &[SystemTime]) {
    let now = SystemTime::now();
    for trigger in triggers {
        let took = now.duration_since(*trigger).unwrap_or_default();
        metrics.api.programming.observe(took.as_secs_f64());
    }
}

#[cfg(test)]
mod tests;
