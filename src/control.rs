//! The control loop's rebuild: sources → model → Snapshot, published with
//! one atomic store. The only writer of the routing table.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use tracing::{info, warn};

use crate::manifest;
use crate::model::{Model, Options};
use crate::proxy::Context;
use crate::table::Snapshot;

/// Rebuilds and publishes Snapshots from the manifest paths.
#[derive(Debug)]
pub struct Control {
    paths: Vec<PathBuf>,
    options: Options,
    /// Addresses NodePorts are bound on.
    node_ips: Vec<IpAddr>,
    generation: u64,
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
        Self { paths, options, node_ips, generation: 0 }
    }

    /// Reads every source, builds a whole new Snapshot off the data path and
    /// publishes it in `ctx` with one store.
    pub fn rebuild(&mut self, ctx: &Context) -> Outcome {
        let started = Instant::now();
        let loaded = manifest::load(&self.paths);
        let model = Model::build(&loaded.objects, &self.options);
        let mut errors: Vec<String> = loaded
            .errors
            .into_iter()
            .flat_map(manifest::Error::flatten)
            .map(|e| e.to_string())
            .collect();
        errors.extend(model.errors.iter().map(ToString::to_string));
        for error in &errors {
            warn!("{error}");
        }
        self.generation += 1;
        let snapshot = Arc::new(Snapshot::build(
            model,
            self.generation,
            &self.node_ips,
            &self.options.node_name,
        ));
        for conflict in &snapshot.conflicts {
            warn!("{conflict}");
        }
        ctx.table.store(snapshot.clone());
        info!(
            generation = self.generation,
            services = snapshot.services.len(),
            frontends = snapshot.len(),
            invalid = errors.len(),
            took = ?started.elapsed(),
            "routing table published"
        );
        Outcome { snapshot, errors }
    }
}
