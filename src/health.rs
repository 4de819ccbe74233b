//! Whether this node serves, as `/healthz` and `/livez` report it and as
//! the health check ports read it: healthy once a Snapshot of every source
//! is published (with the API server as a source: once it was listed in
//! full) and until the drain starts, unless it falls behind: a change seen
//! and not published for [`BEHIND`] (kube-proxy's rule). An API server
//! unreachable later leaves the node healthy: it serves the last Snapshot,
//! and is behind on no change it saw.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use hyper::StatusCode;
use parking_lot::Mutex;

/// How long a change may wait for its Snapshot before the node counts as
/// behind: kube-proxy's healthz timeout, twice its default sync period.
pub const BEHIND: Duration = Duration::from_secs(60);

/// The node's health.
#[derive(Debug, Default)]
pub struct Health {
    /// When the last Snapshot was published; `None` before the first.
    updated: Mutex<Option<SystemTime>>,
    /// When the oldest change not published yet was seen.
    queued: Mutex<Option<SystemTime>>,
    /// Whether a published Snapshot held every source's objects.
    complete: AtomicBool,
    /// Set on SIGTERM: the node is leaving, load balancers must stop
    /// sending new connections.
    draining: AtomicBool,
    /// This node's Node object, as last published: `None` before one was
    /// read, else why it is leaving (`Some(None)`: it is not).
    node: Mutex<Option<Option<&'static str>>>,
}

/// Which endpoint is asked: `/healthz` also fails while the Node is being
/// taken out of service, `/livez` (for the kubelet's liveness probe) does
/// not, as in kube-proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    Healthz,
    Livez,
}

// === impl Health ===

impl Health {
    /// A Snapshot was published now; `complete` when it holds every
    /// source's objects (a Snapshot of the files alone, served while the
    /// API server was not listed yet, is not).
    pub fn published(&self, complete: bool) {
        *self.updated.lock() = Some(SystemTime::now());
        *self.queued.lock() = None;
        if complete {
            self.complete.store(true, Ordering::Relaxed);
        }
    }

    /// A change was seen; it counts as published once the next Snapshot
    /// is.
    pub fn queued(&self) {
        self.queued.lock().get_or_insert_with(SystemTime::now);
    }

    /// The published Snapshot's Node: `None` when none was read, else why
    /// it is being taken out of service, if it is. Logged when that
    /// changes.
    pub fn node(&self, node: Option<Option<&'static str>>) {
        let mut state = self.node.lock();
        // A Node that was leaving and is now gone has left: it stays
        // ineligible, as kube-proxy keeps the deleted object's state.
        let node = match (node, *state) {
            (None, Some(Some(why))) => Some(Some(why)),
            _ => node,
        };
        let before = std::mem::replace(&mut *state, node);
        drop(state);
        match (before.flatten(), node.flatten()) {
            (was, Some(why)) if was != Some(why) => {
                tracing::warn!("/healthz answers 503: {why}");
            }
            (Some(_), None) => tracing::info!("/healthz: the Node is in service again"),
            _ => {}
        }
    }

    /// The drain started: unhealthy from now on.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// True once a Snapshot of every source is published and until the
    /// drain starts.
    pub fn healthy(&self) -> bool {
        self.complete.load(Ordering::Relaxed)
            && !self.draining.load(Ordering::Relaxed)
            && !self.behind(SystemTime::now())
    }

    /// True when a change seen before `now - BEHIND` is not published.
    fn behind(&self, now: SystemTime) -> bool {
        let queued = *self.queued.lock();
        queued.is_some_and(|at| now.duration_since(at).unwrap_or_default() > BEHIND)
    }

    /// kube-proxy's `/healthz` or `/livez` status and JSON body; with a
    /// Node read, `/healthz` says whether it is eligible (`nodeEligible`).
    pub fn answer(&self, probe: Probe) -> (StatusCode, String) {
        let now = SystemTime::now();
        let updated = *self.updated.lock();
        let node = match probe {
            Probe::Healthz => *self.node.lock(),
            Probe::Livez => None,
        };
        let eligible = node.map(|leaving| leaving.is_none());
        let healthy = self.healthy() && eligible != Some(false);
        let status = if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
        // Before the first Snapshot: Go's zero time, as kube-proxy writes
        // its never-set `lastUpdated`, so the field always parses.
        let last = updated.map_or_else(|| "0001-01-01T00:00:00Z".to_owned(), rfc3339);
        let eligible = eligible.map_or_else(String::new, |e| format!(",\"nodeEligible\": {e}"));
        let body = format!(
            "{{\"lastUpdated\": \"{last}\",\"currentTime\": \"{}\"{eligible}}}",
            rfc3339(now)
        );
        (status, body)
    }
}

fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthy_from_a_complete_snapshot_until_behind_or_draining() {
        let health = Health::default();
        assert!(!health.healthy(), "nothing published");
        health.published(false);
        assert!(!health.healthy(), "the files alone, the API server not listed yet");
        health.published(true);
        assert!(health.healthy());

        // A change seen and not published: healthy for BEHIND, then not.
        health.queued();
        let seen = health.queued.lock().expect("queued");
        assert!(!health.behind(seen + BEHIND));
        assert!(health.behind(seen + BEHIND + Duration::from_secs(1)));
        // A later change does not move the oldest one.
        health.queued();
        assert_eq!(*health.queued.lock(), Some(seen));
        health.published(true);
        assert!(!health.behind(seen + 2 * BEHIND) && health.healthy());

        health.drain();
        assert!(!health.healthy());
    }
}
