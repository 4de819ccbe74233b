//! The API source: Services and EndpointSlices listed and watched from the
//! API server with kube-rs, as kube-proxy follows them, and this node's
//! Node (its zone, whether it is leaving).
//!
//! Services and EndpointSlices in every namespace, filtered on the server
//! with kube-proxy's label selector; the Node by its name. Each kind's watcher runs on its own task and keeps its
//! objects in the [`Store`]; the control loop reads them whole
//! ([`Api::listed`]) once both kinds were listed, and is told of every
//! change after that ([`Api::changed`]). A watch that ends relists, and
//! the relist replaces the objects only once complete. An API server that
//! cannot be reached is retried with backoff while the last Snapshot keeps
//! serving; each change of state is logged once, not each try.

use std::sync::Arc;
use std::time::SystemTime;

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::watcher;
use kube::runtime::watcher::{self as kube_watcher, Event};
use parking_lot::Mutex;
use prometheus::{IntCounterVec, IntGauge};
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tracing::{debug, info, warn};

use crate::manifest::{Kind, Object};

pub mod connect;
mod follow;
mod store;

pub use connect::Endpoint;
pub use store::Listed;
use store::{Change, KINDS, REQUIRED, Store};

/// The label kube-proxy's selector excludes (or requires, with
/// `--service-proxy-name`): Services another proxy serves.
const PROXY_NAME_LABEL: &str = "service.kubernetes.io/service-proxy-name";
/// Services labelled headless have no frontend to serve.
const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";

/// A handle on the running watchers; they stop when the last handle is
/// dropped.
#[derive(Clone, Debug)]
pub struct Api {
    shared: Arc<Shared>,
    _tasks: Arc<Tasks>,
}

/// The metric families the watchers count into.
#[derive(Clone, Debug)]
pub struct Counters {
    /// `svcproxy_api_watch_events_total{kind,type}`.
    pub events: IntCounterVec,
    /// `svcproxy_api_relists_total{kind}`.
    pub relists: IntCounterVec,
    /// `svcproxy_api_up`.
    pub up: IntGauge,
}

/// What the watcher tasks and the control loop share.
#[derive(Debug)]
pub struct Shared {
    store: Mutex<Store>,
    /// Per kind, whether its watch is established, for the log and the
    /// `up` gauge.
    links: Mutex<[Link; KINDS.len()]>,
    /// Bumped on every change once every kind is listed.
    changed: watch::Sender<u64>,
    counters: Counters,
}

/// A kind's watch, as last seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Link {
    Starting,
    Up,
    Down,
}

/// Changes from the API server, for one waiter: see [`Api::changes`].
#[derive(Debug)]
pub struct Changes(watch::Receiver<u64>);

/// Aborts the watcher tasks when dropped.
#[derive(Debug)]
struct Tasks(Vec<AbortHandle>);

/// Why the API source could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read the kubeconfig {}: {detail}", path.display())]
    Kubeconfig { path: std::path::PathBuf, detail: String },
    #[error("--master {url}: {detail}")]
    Master { url: String, detail: String },
    #[error(
        "no --manifests, --kubeconfig or --master, and no in-cluster configuration \
         (is svcproxy running in a pod with a service account?): {0}"
    )]
    InCluster(String),
    #[error("cannot build the API client: {0}")]
    Client(String),
}

// === impl Api ===

impl Api {
    /// Starts listing and watching Services and EndpointSlices, and the
    /// Node named `node`, on the API server `endpoint` names. Fails only on
    /// a configuration that cannot work (an unreadable kubeconfig, say); an
    /// API server that is down is retried.
    pub async fn start(
        endpoint: &Endpoint,
        service_proxy_name: Option<&str>,
        node: &str,
        counters: Counters,
    ) -> Result<Self, Error> {
        let config = endpoint.config().await?;
        info!(server = %config.cluster_url, from = %endpoint, "following the API server");
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::new(SystemTime::now())),
            links: Mutex::new([Link::Starting; KINDS.len()]),
            changed: watch::Sender::new(0),
            counters,
        });
        shared.counters.up.set(0);
        // Every series from the start, so a rate over them starts at zero.
        for kind in KINDS.map(label) {
            shared.counters.relists.with_label_values(&[kind]);
            for kind_of in ["ADDED", "MODIFIED", "DELETED"] {
                shared.counters.events.with_label_values(&[kind, kind_of]);
            }
        }
        let selected = watcher::Config::default().labels(&selector(service_proxy_name));
        // One Node, by name: kube-proxy's node informer.
        let named = watcher::Config::default().fields(&format!("metadata.name={node}"));
        let services = follow::client::<Service>(config.clone(), &shared)?;
        let slices = follow::client::<EndpointSlice>(config.clone(), &shared)?;
        let nodes = follow::client::<Node>(config, &shared)?;
        let tasks = [
            tokio::spawn(follow::follow::<Service>(services, selected.clone(), shared.clone())),
            tokio::spawn(follow::follow::<EndpointSlice>(slices, selected, shared.clone())),
            tokio::spawn(follow::follow::<Node>(nodes, named, shared.clone())),
        ];
        let tasks = Tasks(tasks.iter().map(tokio::task::JoinHandle::abort_handle).collect());
        Ok(Self { shared, _tasks: Arc::new(tasks) })
    }

    /// Everything listed now (`None` until both kinds were listed in
    /// full), and the `last-change-trigger-time`s of the EndpointSlice
    /// changes it holds that no read returned before (changes made since
    /// this process started).
    pub fn read(&self) -> (Option<Arc<Listed>>, Vec<SystemTime>) {
        let mut store = self.shared.store.lock();
        let listed = store.listed();
        let triggers = if listed.is_some() { store.take_triggers() } else { Vec::new() };
        (listed, triggers)
    }

    /// True once both kinds were listed in full.
    pub fn synced(&self) -> bool {
        self.shared.store.lock().synced()
    }

    /// The changes made from now on, once both kinds were listed (the
    /// completion of that listing included).
    pub fn changes(&self) -> Changes {
        Changes(self.shared.changed.subscribe())
    }
}

// === impl Changes ===

impl Changes {
    /// Waits for a change not [`Self::seen`] yet; never returns once the
    /// watchers are gone.
    pub async fn changed(&mut self) {
        if self.0.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Every change until now is about to be read: only a later one makes
    /// [`Self::changed`] return.
    pub fn seen(&mut self) {
        self.0.borrow_and_update();
    }
}

// === impl Shared ===

impl Shared {
    /// Applies one watcher event of `kind`.
    fn apply(&self, kind: Kind, event: Event<Object>) {
        let (change, synced) = {
            let mut store = self.store.lock();
            let change = store.apply(kind, event);
            (change, store.synced())
        };
        let label = label(kind);
        match change {
            Change::Added | Change::Modified | Change::Deleted => {
                let kind_of = match change {
                    Change::Added => "ADDED",
                    Change::Modified => "MODIFIED",
                    _ => "DELETED",
                };
                self.counters.events.with_label_values(&[label, kind_of]).inc();
            }
            // A list in progress says nothing yet: it may still fail.
            Change::Listing | Change::Buffered => return,
            Change::Unchanged => {
                self.counters.events.with_label_values(&[label, "MODIFIED"]).inc();
                self.connected(kind);
                return;
            }
            Change::Listed { objects, relist } => {
                if relist {
                    self.counters.relists.with_label_values(&[label]).inc();
                }
                info!(kind = label, objects, relist, "API server: listed");
                if kind == Kind::Node && objects == 0 && !relist {
                    warn!(
                        "API server: no Node named as --node-name: topology hints are ignored and \
                         /healthz cannot tell when this node leaves"
                    );
                }
            }
        }
        self.connected(kind);
        if synced {
            self.changed.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// The watch of `kind` expired (410 Gone): the watcher lists again at
    /// once. Routine (the API server keeps a few minutes of history), so
    /// neither a failure nor worth a warning.
    fn expired(&self, kind: Kind) {
        info!(kind = label(kind), "API server: the watch expired, listing again");
    }

    /// The watch of `kind` failed; the watcher retries after a backoff.
    fn failed(&self, kind: Kind, error: &kube_watcher::Error) {
        let before = self.link(kind, Link::Down);
        let kind = label(kind);
        if before == Link::Down {
            debug!(kind, %error, "API server: still failing");
        } else if self.store.lock().synced() {
            warn!(kind, %error, "API server: watch failed; serving what it last listed, retrying");
        } else {
            warn!(kind, %error, "API server: cannot list; nothing of it is served yet, retrying");
        }
    }

    /// The API server answered a request of `kind`'s watcher.
    fn connected(&self, kind: Kind) {
        if self.link(kind, Link::Up) == Link::Down {
            info!(kind = label(kind), "API server: reachable again");
        }
    }

    /// Sets `kind`'s link, returns what it was, and keeps `up` true to the
    /// links.
    fn link(&self, kind: Kind, now: Link) -> Link {
        let mut links = self.links.lock();
        let index = KINDS.iter().position(|k| *k == kind).unwrap_or(0);
        let before = std::mem::replace(&mut links[index], now);
        // Up with the kinds the routing table needs: a role that may not
        // read Nodes costs topology hints, not the table.
        let needed = KINDS.iter().zip(links.iter()).filter(|(k, _)| REQUIRED.contains(k));
        let up = needed.into_iter().all(|(_, l)| *l == Link::Up);
        self.counters.up.set(i64::from(up));
        before
    }
}

impl Drop for Tasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// kube-proxy's label selector on Services and EndpointSlices.
pub fn selector(service_proxy_name: Option<&str>) -> String {
    let proxy = match service_proxy_name {
        Some(name) => format!("{PROXY_NAME_LABEL}={name}"),
        None => format!("!{PROXY_NAME_LABEL}"),
    };
    format!("{proxy},!{HEADLESS_LABEL}")
}

/// The `kind` label of the API metrics.
fn label(kind: Kind) -> &'static str {
    match kind {
        Kind::Service => "Service",
        Kind::EndpointSlice => "EndpointSlice",
        Kind::Endpoints => "Endpoints",
        Kind::Pod => "Pod",
        Kind::Node => "Node",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kube_proxy_selects_with_one_label_selector() {
        assert_eq!(
            selector(None),
            "!service.kubernetes.io/service-proxy-name,!service.kubernetes.io/headless"
        );
        assert_eq!(
            selector(Some("svcproxy")),
            "service.kubernetes.io/service-proxy-name=svcproxy,!service.kubernetes.io/headless"
        );
    }
}
