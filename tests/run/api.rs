//! `svcproxy run` following an API server: the fake of
//! `support::apiserver` on loopback, the real binary against it.
//!
//! - `sync`: nothing is published before both kinds are listed in full;
//! - `changes`: Services and EndpointSlices added, changed, deleted;
//! - `outage`: a watch that expires (410) relists, an API server that is
//!   down leaves the last table serving;
//! - `sources`: the files and the API server together, an invalid object,
//!   the label selector, credentials and TLS;
//! - `metrics`: the API families;
//! - `topology`: this node's Node, its zone and its deletion.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tempfile::TempDir;

use crate::support::apiserver::{ApiServer, Auth};
use crate::support::endpoint::Endpoint;
use crate::support::manifests::{Ep, PORT, simple_service, slices};
use crate::support::net::{addr, fetch, fresh_ip};
use crate::support::proxy::Proxy;

mod changes;
mod metrics;
mod outage;
mod sources;
mod sync;
mod topology;

/// How long a change may take to be routed: `--min-sync-period` (1 s by
/// default) plus a second, as the API source promises.
const ROUTED: Duration = Duration::from_secs(2);

/// How long a reconnect may take: client-go's backoff doubles from 0.8 s
/// (jittered), so an API server back after 5 s is tried again within
/// about 13 s.
const RECONNECT: Duration = Duration::from_secs(20);

/// A fake API server and a kubeconfig that points at it.
struct Cluster {
    api: ApiServer,
    kubeconfig: PathBuf,
    _dir: TempDir,
}

/// A Service `name` on a fresh ClusterIP with one EndpointSlice per
/// endpoint of `endpoints`: its frontend and its objects.
fn service(name: &str, endpoints: &[&Endpoint]) -> (SocketAddr, String) {
    let ip = fresh_ip();
    let eps: Vec<Ep<'_>> = endpoints.iter().map(|e| Ep::ready(e)).collect();
    (addr(ip, PORT), simple_service(name, ip, PORT, false) + &slices(name, &eps))
}

// === impl Cluster ===

impl Cluster {
    fn start() -> Cluster {
        Cluster::with(ApiServer::start(), Auth::None)
    }

    fn with(api: ApiServer, auth: Auth) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let kubeconfig = api.kubeconfig(dir.path(), auth);
        Cluster { api, kubeconfig, _dir: dir }
    }

    /// `svcproxy run --kubeconfig K extra...`.
    fn proxy(&self, extra: &[&str]) -> Proxy {
        let kubeconfig = self.kubeconfig.to_str().expect("utf-8 path");
        let args: Vec<&str> =
            ["--kubeconfig", kubeconfig].into_iter().chain(extra.iter().copied()).collect();
        Proxy::start_args(&args)
    }

    /// [`Self::proxy`], once `frontend` answers `want`.
    fn serving(&self, extra: &[&str], frontend: SocketAddr, want: &str) -> Proxy {
        let mut proxy = self.proxy(extra);
        let got = proxy.wait_ready(|| fetch(frontend));
        assert_eq!(got, want, "{}", proxy.log());
        proxy
    }
}
