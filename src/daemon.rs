//! `svcproxy run`: wires the stages together and handles signals.
//!
//! Startup: bind the admin addresses (a taken port is fatal), start the
//! API watchers, build and publish the first Snapshot, bind its frontends.
//! The files are served at once; the API server's objects join in one
//! publish once both its kinds were listed in full (with the API server as
//! the only source, nothing is published before). Then: a change to the
//! manifests or from the API server, or SIGHUP, re-reads every source (at
//! most once per `--min-sync-period`); SIGTERM drains; a second SIGTERM or
//! SIGINT exits at once.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::oneshot;
use tracing::{info, warn};

use crate::access::AccessLog;
use crate::admin;
use crate::admission::Admission;
use crate::context::{Context, HttpLimits, Splice, UdpLimits};
use crate::control::{self, Control};
use crate::listener;
use crate::metrics;
use crate::model::{Leaving, Options};
use crate::source::api::{self, Changes, Counters, Endpoint};
use crate::source::files::{Watch, watch};
use crate::source::{Api, Files, Pace};
use status::Ending;

mod status;

/// How long the connections reset at the drain timeout get to end.
const ABORT_GRACE: Duration = Duration::from_secs(1);

/// Everything `svcproxy run` was asked to do.
#[derive(Clone, Debug)]
pub struct Config {
    pub manifests: Vec<PathBuf>,
    /// The API server to follow, if any.
    pub api: Option<Endpoint>,
    pub options: Options,
    /// `--nodeport-addresses`; empty means every local address.
    pub nodeport_cidrs: Vec<IpNet>,
    pub metrics_addr: SocketAddr,
    pub healthz_addr: SocketAddr,
    pub connect_timeout: Duration,
    /// `--splice`: when bulk directions skip the userspace copy.
    pub splice: Splice,
    /// `--http-header-timeout`, `--http-idle-timeout`,
    /// `--http-max-header-bytes`, `--http2-max-concurrent-streams`.
    pub http: HttpLimits,
    /// `--http-access-log`: each HTTP request as a JSON line on stdout.
    pub access_log: bool,
    pub drain_timeout: Duration,
    /// `--udp-timeout`, `--udp-max-flows` (bounded at start by the
    /// descriptor limit).
    pub udp: UdpLimits,
    /// `--min-sync-period`: at most one rebuild per period.
    pub min_sync_period: Duration,
    /// `--max-connections`: client connections open at once; `None`: half
    /// the descriptor limit.
    pub max_connections: Option<u64>,
    /// `--conntrack-tcp-timeout-close-wait`; `None` (0 on the command
    /// line): never.
    pub close_wait: Option<Duration>,
}

/// A failure to start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Admin(#[from] admin::Error),
    #[error("cannot start the access log's writer: {0}")]
    AccessLog(io::Error),
    #[error("cannot install signal handlers: {0}")]
    Signals(io::Error),
    #[error("cannot list local addresses for --nodeport-addresses: {0}")]
    Interfaces(io::Error),
    #[error(transparent)]
    Watch(#[from] watch::Error),
    #[error(transparent)]
    Api(#[from] api::Error),
    #[error(transparent)]
    Metrics(#[from] metrics::Error),
    /// The first rebuild failed (there is nothing to serve), or the
    /// control loop cannot go on.
    #[error(transparent)]
    Rebuild(#[from] control::Error),
}

/// Runs until SIGTERM (after the drain) or SIGINT. `ready` is told once the
/// first Snapshot is published and its listeners spawned.
pub async fn run(config: Config, ready: Option<oneshot::Sender<()>>) -> Result<(), Error> {
    let signals = Signals::install()?;
    let ctx = context(&config)?;
    let (healthz, metrics) =
        admin::start(config.healthz_addr, config.metrics_addr, ctx.clone()).await?;
    info!(%healthz, %metrics, "admin endpoints");
    let node_ips = node_ips(&config.nodeport_cidrs)?;
    let files = Files::new(config.manifests.clone());
    let watch = files.watch()?;
    let mut control = Control::new(files, config.options.clone(), node_ips);
    let api = match &config.api {
        Some(endpoint) => {
            let families = &ctx.metrics.api;
            let counters = Counters {
                events: families.events.clone(),
                relists: families.relists.clone(),
                up: families.up.clone(),
            };
            let name = config.options.service_proxy_name.as_deref();
            let node = &config.options.node_name;
            Some(Api::start(endpoint, name, node, counters).await?)
        }
        None => None,
    };
    if let Some(api) = &api {
        control = control.with_api(api.clone());
    }
    let pace = Pace::new(config.min_sync_period);
    let files_too = !config.manifests.is_empty();
    let changes = api.as_ref().map(Api::changes);
    let admin = (healthz, metrics);
    let mut daemon =
        Daemon { control, ctx: ctx.clone(), watch, api, changes, files_too, pace, signals, admin };
    if daemon.serve(ready).await? == Stop::Int {
        info!("SIGINT: exiting");
        status::stopped(Ending { cut: ctx.tracker.live(), ..Ending::default() });
        return Ok(());
    }
    // Health first: by the time a frontend refuses, /healthz says so too.
    ctx.health.drain();
    daemon.control.close();
    status::stopped(daemon.drain(config.drain_timeout).await);
    Ok(())
}

/// What every connection shares, with the limits `config` asks for (the
/// descriptor limit raised first: the defaults follow it).
fn context(config: &Config) -> Result<Arc<Context>, Error> {
    let fd_limit = listener::raise_fd_limit();
    let mut ctx = Context::new(config.connect_timeout, config.splice)?;
    ctx.http = config.http;
    ctx.close_wait = config.close_wait;
    ctx.udp = udp_limits(config.udp, fd_limit);
    let paused = ctx.metrics.accept_paused.max_connections.clone();
    ctx.admission = Admission::new(max_connections(config.max_connections, fd_limit), paused);
    if config.access_log {
        ctx.access = Some(Arc::new(AccessLog::stdout().map_err(Error::AccessLog)?));
    }
    Ok(Arc::new(ctx))
}

/// `asked`, with the flow table bounded by half the descriptor limit (a
/// flow holds one socket; the rest is for TCP connections), said once.
fn udp_limits(asked: UdpLimits, fd_limit: Option<u64>) -> UdpLimits {
    let by_fds = fd_limit.map_or(usize::MAX, |l| usize::try_from(l / 2).unwrap_or(usize::MAX));
    let max_flows = asked.max_flows.min(by_fds);
    info!(
        max_flows,
        asked = asked.max_flows,
        fd_limit,
        timeout = ?asked.timeout,
        "UDP flow table bound"
    );
    UdpLimits { max_flows, ..asked }
}

/// `asked`, or half the descriptor limit (a proxied connection holds two),
/// said once; no bound when neither is known.
fn max_connections(asked: Option<u64>, fd_limit: Option<u64>) -> usize {
    let max = asked.or(fd_limit.map(|l| l / 2));
    let by = if asked.is_some() { "--max-connections" } else { "half the descriptor limit" };
    match max {
        Some(max) => {
            info!(max, fd_limit, "client connections bound by {by}; at the bound accepting pauses")
        }
        None => warn!("descriptor limit unknown: client connections are not bounded"),
    }
    max.map_or(usize::MAX, |m| usize::try_from(m).unwrap_or(usize::MAX))
}

/// What ends serving.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    /// SIGTERM: drain, then exit.
    Term,
    /// SIGINT: exit at once.
    Int,
}

/// The running daemon: the control loop, what connections share, and
/// what it waits on.
struct Daemon {
    control: Control,
    ctx: Arc<Context>,
    /// Changes to the manifest files.
    watch: Watch,
    /// The API server's objects, when it is a source...
    api: Option<Api>,
    /// ...and its changes not read by a build yet.
    changes: Option<Changes>,
    /// Whether manifest files are a source too (served before the API
    /// server is listed).
    files_too: bool,
    /// `--min-sync-period`.
    pace: Pace,
    signals: Signals,
    /// Where /healthz and /metrics were bound, for the ready line.
    admin: (SocketAddr, SocketAddr),
}

/// The signals the daemon answers.
struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

// === impl Daemon ===

impl Daemon {
    /// Publishes the first Snapshot, then one per change or SIGHUP, until
    /// SIGTERM or SIGINT.
    async fn serve(&mut self, ready: Option<oneshot::Sender<()>>) -> Result<Stop, Error> {
        if let Some(stop) = self.listed().await {
            return Ok(stop);
        }
        if let Some(stop) = self.publish().await? {
            return Ok(stop);
        }
        status::ready(&self.ctx.table.load(), self.admin.0, self.admin.1);
        if let Some(ready) = ready {
            let _ = ready.send(());
        }
        loop {
            tokio::select! {
                () = self.watch.changed() => {}
                () = changed(self.changes.as_mut()) => {}
                _ = self.signals.hup.recv() => info!("SIGHUP: re-reading every source"),
                _ = self.signals.term.recv() => return Ok(Stop::Term),
                _ = self.signals.int.recv() => return Ok(Stop::Int),
            }
            self.ctx.health.queued();
            if let Some(stop) = self.publish().await? {
                return Ok(stop);
            }
        }
    }

    /// With the API server as the only source: waits until it was listed
    /// in full (a Snapshot without it would serve nothing), unless SIGTERM
    /// or SIGINT comes first.
    async fn listed(&mut self) -> Option<Stop> {
        let api = self.api.as_ref().filter(|_| !self.files_too)?;
        let (changes, signals) = (self.changes.as_mut()?, &mut self.signals);
        while !api.synced() {
            tokio::select! {
                () = changes.changed() => {}
                _ = signals.term.recv() => return Some(Stop::Term),
                _ = signals.int.recv() => return Some(Stop::Int),
            }
        }
        None
    }

    /// One rebuild and publish once the pace allows it and the burst of file
    /// changes settled, taking every change seen until then, unless SIGTERM
    /// or SIGINT comes first: they cut a running rebuild short (a first
    /// build of a large manifest set must not hold the exit); it then goes
    /// on alone on the blocking pool and nothing waits for it. A rebuild
    /// that panicked is fatal only when nothing was ever published; a
    /// control loop that lost its state is fatal.
    async fn publish(&mut self) -> Result<Option<Stop>, Error> {
        let Self { control, ctx, watch, changes, pace, signals, .. } = self;
        let rebuild = async {
            pace.wait().await;
            watch.settle().await;
            // The build reads every change until now.
            if let Some(changes) = changes {
                changes.seen();
            }
            match control.publish(ctx).await {
                Ok(outcome) => {
                    ctx.health.published(outcome.complete);
                    let node =
                        ctx.table.load().node.as_ref().map(|n| n.leaving.map(Leaving::as_str));
                    ctx.health.node(node);
                }
                // Logged and counted; the published table stays in service.
                Err(control::Error::Panicked(_)) if ctx.table.load().generation > 0 => {}
                Err(e) => return Err(Error::Rebuild(e)),
            }
            Ok(())
        };
        tokio::select! {
            result = rebuild => result.map(|()| None),
            _ = signals.term.recv() => Ok(Some(Stop::Term)),
            _ = signals.int.recv() => Ok(Some(Stop::Int)),
        }
    }

    /// Lets live connections finish for up to `timeout`, then resets the
    /// rest; a second SIGTERM, or SIGINT, ends it at once. Says what became
    /// of the connections live at its start.
    async fn drain(&mut self, timeout: Duration) -> Ending {
        let (tracker, signals) = (&self.ctx.tracker, &mut self.signals);
        let live = tracker.live();
        info!(live, ?timeout, "SIGTERM: draining");
        tokio::select! {
            left = tracker.drain(timeout) => {
                if left > 0 {
                    warn!(left, "drain timeout: resetting the remaining connections");
                    tracker.abort();
                    // Each resets its sockets as it ends; bounded, like all of this.
                    tracker.drain(ABORT_GRACE).await;
                }
                Ending { drained: live.saturating_sub(left), reset: left, cut: 0 }
            }
            _ = signals.term.recv() => {
                info!("second SIGTERM: exiting");
                Ending::cut(live, tracker.live())
            }
            _ = signals.int.recv() => {
                info!("SIGINT: exiting");
                Ending::cut(live, tracker.live())
            }
        }
    }
}

// === impl Signals ===

impl Signals {
    fn install() -> Result<Self, Error> {
        let on = |kind| signal(kind).map_err(Error::Signals);
        Ok(Self {
            term: on(SignalKind::terminate())?,
            int: on(SignalKind::interrupt())?,
            hup: on(SignalKind::hangup())?,
        })
    }
}

/// A change from the API server; never, without it.
async fn changed(changes: Option<&mut Changes>) {
    match changes {
        Some(changes) => changes.changed().await,
        None => std::future::pending().await,
    }
}

/// The addresses NodePorts are bound on: without CIDRs, `0.0.0.0` and,
/// when the node has an IPv6 address, `::` (binding it would fail on a
/// node without IPv6); else every local interface address inside them,
/// plus any single-address CIDR (`/32`, `/128`), taken as given.
pub fn node_ips(cidrs: &[IpNet]) -> Result<Vec<IpAddr>, Error> {
    let interfaces = if_addrs::get_if_addrs().map_err(Error::Interfaces)?;
    if cidrs.is_empty() {
        let mut ips = vec![IpAddr::V4(Ipv4Addr::UNSPECIFIED)];
        if interfaces.iter().any(|i| i.ip().is_ipv6()) {
            ips.push(IpAddr::V6(Ipv6Addr::UNSPECIFIED));
        }
        return Ok(ips);
    }
    let mut ips: Vec<IpAddr> = interfaces
        .iter()
        .map(|i| i.ip())
        .filter(|ip| cidrs.iter().any(|c| c.contains(ip)))
        .chain(cidrs.iter().filter(|c| c.prefix_len() == c.max_prefix_len()).map(|c| c.addr()))
        .collect();
    ips.sort();
    ips.dedup();
    if ips.is_empty() {
        warn!(?cidrs, "no local address inside --nodeport-addresses: NodePorts are not served");
    }
    Ok(ips)
}
