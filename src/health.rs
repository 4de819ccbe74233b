//! Whether this node serves, as `/healthz` and `/livez` report it and as
//! the health check ports read it: healthy once a Snapshot of every source
//! is published (with the API server as a source: once it was listed in
//! full) and until the drain starts. An API server unreachable later
//! leaves the node healthy: it serves the last Snapshot, and has no change
//! it is behind on (kube-proxy's rule).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use hyper::StatusCode;
use parking_lot::Mutex;

/// The node's health.
#[derive(Debug, Default)]
pub struct Health {
    /// When the last Snapshot was published; `None` before the first.
    updated: Mutex<Option<SystemTime>>,
    /// Whether a published Snapshot held every source's objects.
    complete: AtomicBool,
    /// Set on SIGTERM: the node is leaving, load balancers must stop
    /// sending new connections.
    draining: AtomicBool,
}

// === impl Health ===

impl Health {
    /// A Snapshot was published now; `complete` when it holds every
    /// source's objects (a Snapshot of the files alone, served while the
    /// API server was not listed yet, is not).
    pub fn published(&self, complete: bool) {
        *self.updated.lock() = Some(SystemTime::now());
        if complete {
            self.complete.store(true, Ordering::Relaxed);
        }
    }

    /// The drain started: unhealthy from now on.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// True once a Snapshot of every source is published and until the
    /// drain starts.
    pub fn healthy(&self) -> bool {
        self.complete.load(Ordering::Relaxed) && !self.draining.load(Ordering::Relaxed)
    }

    /// kube-proxy's `/healthz` status and JSON body.
    pub fn answer(&self) -> (StatusCode, String) {
        let now = SystemTime::now();
        let updated = *self.updated.lock();
        let status = if self.healthy() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
        // Before the first Snapshot: Go's zero time, as kube-proxy writes
        // its never-set `lastUpdated`, so the field always parses.
        let last = updated.map_or_else(|| "0001-01-01T00:00:00Z".to_owned(), rfc3339);
        (status, format!("{{\"lastUpdated\": \"{last}\",\"currentTime\": \"{}\"}}", rfc3339(now)))
    }
}

fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}
