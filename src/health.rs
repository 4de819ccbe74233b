//! Whether this node serves, as `/healthz` and `/livez` report it and as
//! the health check ports read it: healthy once a Snapshot is published and
//! until the drain starts.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use hyper::StatusCode;
use parking_lot::Mutex;

/// The node's health.
#[derive(Debug, Default)]
pub struct Health {
    /// When the last Snapshot was published; `None` before the first.
    updated: Mutex<Option<SystemTime>>,
    /// Set on SIGTERM: the node is leaving, load balancers must stop
    /// sending new connections.
    draining: AtomicBool,
}

// === impl Health ===

impl Health {
    /// A Snapshot was published now.
    pub fn published(&self) {
        *self.updated.lock() = Some(SystemTime::now());
    }

    /// The drain started: unhealthy from now on.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// True once a Snapshot is published and until the drain starts.
    pub fn healthy(&self) -> bool {
        self.updated.lock().is_some() && !self.draining.load(Ordering::Relaxed)
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
