//! A fake Kubernetes API server, in the test process, for running the real
//! `svcproxy` binary against: no kube-apiserver can be installed where the
//! tests run. It serves v1 Services and discovery.k8s.io/v1 EndpointSlices
//! as the real one does for a read-only client (discovery, LIST with
//! selectors and pages, GET, WATCH with bookmarks, 401 and 410 `Status`
//! errors), and lets a test change the world under the client: objects,
//! compaction (`expire`), restarts (`stop`/`start_again`), slow LISTs
//! (`hold_lists`).
//!
//! The API is blocking, for `#[test]` functions; the server runs on its
//! own tokio runtime (two worker threads) and stops when dropped.
//!
//! # Layout
//!
//! - `store`: the objects, the global resourceVersion, the change log;
//! - `serve`: listener, connections, token check, routing (`route`);
//! - `list`: LIST (pages, continue tokens) and GET; `watch`: WATCH;
//! - `selector`: label and field selectors; `query`: query strings;
//! - `discovery`, `status`: the documents and the errors;
//! - `tls`, `kubeconfig`: what a client needs to connect.
//!
//! # Checked against kubectl
//!
//! By hand, with kubectl 1.32.5 (`/usr/lib/google-cloud-sdk/bin/kubectl.1.32`;
//! `/usr/bin/kubectl` is gcloud's dispatcher, which runs the kubectl of the
//! server's minor version, 1.33.1 here, and behaved the same):
//!
//! - `kubectl --server http://127.0.0.1:PORT get svc -A -w`, and with
//!   `--output-watch-events -l '!service.kubernetes.io/headless'`: the
//!   rows, then a row per apply and delete; an object relabelled out of and
//!   back into the selection came as DELETED then ADDED; `expire()` ended
//!   the watch, kubectl printing the `Expired` Status.
//! - `get svc -A`, `get endpointslices -A`, `get svc -A -l
//!   '!service.kubernetes.io/headless'`, `get svc web -n shop -o yaml`.
//! - `start_tls()`: `--certificate-authority ca.pem --token T`, and the
//!   kubeconfig of [`ApiServer::kubeconfig`]; a wrong or missing token got
//!   "the server has asked for the client to provide credentials".
//!
//! kubectl asks `/api` and `/apis` for aggregated discovery and falls back
//! to the legacy documents served here. It asks LISTs for `as=Table`; the
//! fake answers the plain list (no server-side printing), which kubectl
//! shows as NAME and AGE columns only.
//!
//! Also checked with a throwaway program against kube-rs 5's
//! `watcher` (default `Config`, svcproxy's label selector, 1,200 and
//! 20,000 Services): paged LISTs (`limit=500`, continue tokens), the WATCH
//! from the list's resourceVersion, a relist after `expire`'s 410, a
//! re-watch without LIST after `stop`/`start_again` and `end_watches`,
//! over HTTP and HTTPS, with `token` and `tokenFile` kubeconfigs.
//!
//! # Differences from the real server, and what may surprise
//!
//! - A LIST with a resourceVersion and no `resourceVersionMatch` (or
//!   `NotOlderThan`) answers the current state, as the real one does:
//!   "not older than" an expired version is still served. Only `Exact`, a
//!   continue token or a WATCH get 410 for a version before `expire()`.
//! - `stop()` cuts TLS connections without close_notify, as a crash
//!   would: kube-rs logs "peer closed connection without sending TLS
//!   close_notify".
//! - `expire()` also ends open watches with ERROR 410 (a real compaction
//!   does not reach the watch cache's clients; here it is how a test makes
//!   a client relist).
//! - No defaulting: objects are served as applied, plus the metadata the
//!   server stamps (namespace, uid, creationTimestamp, resourceVersion).
//! - With tokens set, every path needs one (no anonymous `/version`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::Value;
use tokio::runtime::Runtime;
use tokio_rustls::TlsAcceptor;

use store::{Kind, Store};

mod discovery;
mod kubeconfig;
mod list;
mod query;
mod route;
mod selector;
mod serve;
mod status;
mod store;
mod tls;
mod watch;

/// A running fake API server; dropping it stops it.
pub struct ApiServer {
    shared: Arc<Shared>,
    tls: Option<TlsAcceptor>,
    ca_pem: Option<String>,
    /// `None` between `stop` and `start_again`.
    running: Mutex<Option<serve::Running>>,
    /// `Option` only so that `Drop` can shut it down without blocking.
    runtime: Option<Runtime>,
}

/// The credentials a kubeconfig from [`ApiServer::kubeconfig`] carries.
#[derive(Clone, Debug)]
pub enum Auth {
    None,
    /// An inline `token:`.
    Token(String),
    /// `tokenFile:`, read by the client (and re-read as it changes).
    TokenFile(PathBuf),
}

/// One request as the server saw it, in arrival order (401s included).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// The decoded query pairs, in order.
    pub query: Vec<(String, String)>,
    /// The bearer token of `Authorization: Bearer ...`.
    pub token: Option<String>,
    /// The `Accept` header.
    pub accept: Option<String>,
}

/// What the server's tasks and the test's calls share.
struct Shared {
    addr: SocketAddr,
    store: Mutex<Store>,
    /// Poked after every change: watches wake and read the log.
    changed: tokio::sync::watch::Sender<()>,
    tokens: Mutex<Vec<String>>,
    requests: Mutex<Vec<Request>>,
    /// Per kind: LISTs wait while true.
    holds: [tokio::sync::watch::Sender<bool>; 3],
    /// Per kind: open WATCH streams.
    watches: [AtomicUsize; 3],
    /// How often a watch that allows bookmarks gets one.
    bookmark_every: Mutex<Duration>,
    /// Poked to end every open watch cleanly.
    end_watches: tokio::sync::watch::Sender<()>,
}

// === impl ApiServer ===

impl ApiServer {
    /// Plain HTTP on `127.0.0.1` and a free port.
    pub fn start() -> ApiServer {
        ApiServer::launch(None)
    }

    /// HTTPS with a fresh CA ([`ApiServer::ca_pem`]) and a certificate it
    /// signed for `127.0.0.1` and `localhost`.
    pub fn start_tls() -> ApiServer {
        ApiServer::launch(Some(tls::Tls::generate()))
    }

    fn launch(tls: Option<tls::Tls>) -> ApiServer {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("fake-apiserver")
            .enable_all()
            .build()
            .expect("a tokio runtime for the fake API server");
        let listener = {
            let _entered = runtime.enter();
            serve::bind(SocketAddr::from(([127, 0, 0, 1], 0))).expect("binding 127.0.0.1:0")
        };
        let addr = listener.local_addr().expect("the listener's address");
        let shared = Arc::new(Shared::new(addr));
        let (ca_pem, tls) = tls.map(|t| (t.ca_pem, t.acceptor)).unzip();
        let running = serve::spawn(runtime.handle(), listener, Arc::clone(&shared), tls.clone());
        let running = Mutex::new(Some(running));
        ApiServer { shared, tls, ca_pem, running, runtime: Some(runtime) }
    }

    /// `http://127.0.0.1:PORT`, or `https://` for [`ApiServer::start_tls`].
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.shared.addr)
    }

    /// The address served (the same after `start_again`).
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// The CA (PEM) that signed the certificate of a TLS server.
    pub fn ca_pem(&self) -> Option<String> {
        self.ca_pem.clone()
    }

    /// Writes `dir/kubeconfig` (cluster server = [`ApiServer::url`], the CA
    /// data when TLS, `auth` as the user, a current context with namespace
    /// `default`) and returns its path.
    pub fn kubeconfig(&self, dir: &Path, auth: Auth) -> PathBuf {
        kubeconfig::write(dir, &self.url(), self.ca_pem.as_deref(), &auth)
    }

    /// From now on every request needs `Authorization: Bearer <one of
    /// these>`, or gets 401; empty turns the check off.
    pub fn accept_tokens(&self, tokens: &[&str]) {
        *self.shared.tokens.lock() = tokens.iter().map(|t| (*t).to_owned()).collect();
    }

    /// Creates or replaces the objects of `yaml` (`---`-separated v1
    /// Services and discovery.k8s.io/v1 EndpointSlices, or `kind: List`):
    /// see [`ApiServer::apply_json`].
    pub fn apply(&self, yaml: &str) {
        let documents: Vec<Value> =
            serde_saphyr::from_multiple(yaml).unwrap_or_else(|e| panic!("apply: bad YAML: {e}"));
        self.apply_json(documents);
    }

    /// Creates or replaces each object, in order: the namespace defaults to
    /// `default`, each bumps the global resourceVersion, gets it as
    /// `metadata.resourceVersion` (and a uid and creationTimestamp when
    /// new), and reaches the watches as ADDED or MODIFIED. Panics on any
    /// other kind of object.
    pub fn apply_json(&self, objects: Vec<Value>) {
        {
            let mut store = self.shared.store.lock();
            for object in objects.into_iter().flat_map(expand) {
                store.apply(object);
            }
        }
        self.shared.changed.send_replace(());
    }

    /// Deletes an object (`kind` is `Service` or `EndpointSlice`): the
    /// watches get DELETED. Panics when there is no such object.
    pub fn delete(&self, kind: &str, namespace: &str, name: &str) {
        self.shared.store.lock().delete(Kind::named(kind), namespace, name);
        self.shared.changed.send_replace(());
    }

    /// Compaction: every resourceVersion before now is too old. Open
    /// watches get an ERROR 410 `Expired` event and end; a later WATCH from
    /// an older version gets the same (200, then the event), a continue
    /// token or an `Exact` LIST from one gets a 410 `Status`.
    pub fn expire(&self) {
        self.shared.store.lock().expire();
        self.shared.changed.send_replace(());
    }

    /// Ends every open watch cleanly (the last chunk sent), as its
    /// `timeoutSeconds` would: a client watches again from the last
    /// resourceVersion it saw, without a new LIST.
    pub fn end_watches(&self) {
        self.shared.end_watches.send_replace(());
    }

    /// The global resourceVersion now (the last change's).
    pub fn resource_version(&self) -> u64 {
        self.shared.store.lock().rv()
    }

    /// Down, as a restart or a network cut: closes the listener and drops
    /// every connection (watches end mid-stream). Returns once the port is
    /// closed. Call it from test code, not from inside an async runtime.
    pub fn stop(&self) {
        let running = self.running.lock().take().expect("stop: the fake API server is not running");
        self.runtime().block_on(running.stop());
    }

    /// Up again after [`ApiServer::stop`], on the same port, with the same
    /// objects and resourceVersions.
    pub fn start_again(&self) {
        let mut running = self.running.lock();
        assert!(running.is_none(), "start_again: the fake API server is running");
        let addr = self.shared.addr;
        let listener = {
            let _entered = self.runtime().enter();
            serve::bind(addr).unwrap_or_else(|e| panic!("binding {addr} again: {e}"))
        };
        let shared = Arc::clone(&self.shared);
        *running = Some(serve::spawn(self.runtime().handle(), listener, shared, self.tls.clone()));
    }

    /// While `hold` is true, LISTs of `kind` get no answer (the connection
    /// stays open); `false` lets them, and later ones, through.
    pub fn hold_lists(&self, kind: &str, hold: bool) {
        self.shared.holds[Kind::named(kind).index()].send_replace(hold);
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.requests.lock().clone()
    }

    /// The WATCH streams of `kind` open now.
    pub fn watches(&self, kind: &str) -> usize {
        self.shared.watches[Kind::named(kind).index()].load(Ordering::SeqCst)
    }

    /// Waits until at least `n` WATCH streams of `kind` are open; panics
    /// (with the requests seen) after `deadline`.
    pub fn wait_for_watches(&self, kind: &str, n: usize, deadline: Duration) {
        let until = Instant::now() + deadline;
        while self.watches(kind) < n {
            if Instant::now() >= until {
                let requests = self.requests();
                panic!(
                    "{} {kind} watches open after {deadline:?}, waited for {n}; requests: {requests:#?}",
                    self.watches(kind)
                );
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// How often watches that allow bookmarks get one (1 s by default);
    /// applies to watches opened from now on.
    pub fn bookmark_every(&self, interval: Duration) {
        assert!(!interval.is_zero(), "a bookmark interval must not be zero");
        *self.shared.bookmark_every.lock() = interval;
    }

    fn runtime(&self) -> &Runtime {
        self.runtime.as_ref().expect("the runtime lives until drop")
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        // Close the port and the connections now when we may block (not
        // inside a runtime); the runtime's shutdown drops whatever is left.
        let running = self.running.get_mut().take();
        if let Some(running) = running.filter(|_| tokio::runtime::Handle::try_current().is_err()) {
            self.runtime().block_on(running.stop());
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

// === impl Request ===

impl Request {
    /// The first value of query parameter `key`.
    pub fn param(&self, key: &str) -> Option<&str> {
        query::param(&self.query, key)
    }

    /// A WATCH (`watch=true` or `watch=1`).
    pub fn is_watch(&self) -> bool {
        query::flag(&self.query, "watch")
    }
}

// === impl Shared ===

impl Shared {
    fn new(addr: SocketAddr) -> Shared {
        Shared {
            addr,
            store: Mutex::new(Store::new()),
            changed: tokio::sync::watch::Sender::new(()),
            tokens: Mutex::new(Vec::new()),
            requests: Mutex::new(Vec::new()),
            holds: std::array::from_fn(|_| tokio::sync::watch::Sender::new(false)),
            watches: Default::default(),
            bookmark_every: Mutex::new(Duration::from_secs(1)),
            end_watches: tokio::sync::watch::Sender::new(()),
        }
    }
}

/// The objects of one applied document: itself, the items of a `List`, or
/// nothing for an empty document.
fn expand(document: Value) -> Vec<Value> {
    match document {
        Value::Null => Vec::new(),
        Value::Object(ref fields) if fields.get("kind").and_then(Value::as_str) == Some("List") => {
            match document.get("items") {
                Some(Value::Array(items)) => items.clone(),
                _ => Vec::new(),
            }
        }
        document => vec![document],
    }
}
