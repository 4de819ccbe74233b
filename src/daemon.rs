//! `svcproxy run`: wires the stages together and handles signals.
//!
//! Startup: bind the admin addresses (a taken port is fatal), build and
//! publish the first Snapshot, bind its frontends. Then: a change to the
//! manifests, or SIGHUP, re-reads every source; SIGTERM drains; a second
//! SIGTERM or SIGINT exits at once.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::oneshot;
use tracing::{error, info, warn};

use crate::admin;
use crate::context::{Context, Splice};
use crate::control::Control;
use crate::control::watch::{self, Watch};
use crate::health::Health;
use crate::listener::{self, supervisor::Supervisor};
use crate::metrics;
use crate::model::Options;

/// How long the connections reset at the drain timeout get to end.
const ABORT_GRACE: Duration = Duration::from_secs(1);

/// Everything `svcproxy run` was asked to do.
#[derive(Clone, Debug)]
pub struct Config {
    pub manifests: Vec<PathBuf>,
    pub options: Options,
    /// `--nodeport-addresses`; empty means every local address.
    pub nodeport_cidrs: Vec<IpNet>,
    pub metrics_addr: SocketAddr,
    pub healthz_addr: SocketAddr,
    pub connect_timeout: Duration,
    /// `--splice`: when bulk directions skip the userspace copy.
    pub splice: Splice,
    pub drain_timeout: Duration,
}

/// A failure to start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Admin(#[from] admin::Error),
    #[error("cannot install signal handlers: {0}")]
    Signals(io::Error),
    #[error("cannot list local addresses for --nodeport-addresses: {0}")]
    Interfaces(io::Error),
    #[error(transparent)]
    Watch(#[from] watch::Error),
    #[error(transparent)]
    Metrics(#[from] metrics::Error),
    #[error("routing table rebuild failed: {0}")]
    Rebuild(String),
}

/// Runs until SIGTERM (after the drain) or SIGINT. `ready` is told once the
/// first Snapshot is published and its listeners spawned.
pub async fn run(config: Config, ready: Option<oneshot::Sender<()>>) -> Result<(), Error> {
    listener::raise_fd_limit();
    let mut signals = Signals::install()?;
    let ctx = Arc::new(Context::new(config.connect_timeout, config.splice)?);
    let health = ctx.health.clone();
    let (healthz, metrics) =
        admin::start(config.healthz_addr, config.metrics_addr, ctx.clone()).await?;
    info!(%healthz, %metrics, "admin endpoints");
    let node_ips = node_ips(&config.nodeport_cidrs)?;
    let mut watch = Watch::new(&config.manifests)?;
    let control = Control::new(config.manifests.clone(), config.options.clone(), node_ips);
    let mut plane =
        Plane { control: Some(control), listeners: Supervisor::default(), ctx: ctx.clone() };
    if serve(&mut plane, &mut watch, &mut signals, &health, ready).await? == Stop::Int {
        info!("SIGINT: exiting");
        return Ok(());
    }
    // Health first: by the time a frontend refuses, /healthz says so too.
    health.drain();
    plane.listeners.close();
    drain(&ctx, config.drain_timeout, &mut signals).await;
    Ok(())
}

/// What ends serving.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    /// SIGTERM: drain, then exit.
    Term,
    /// SIGINT: exit at once.
    Int,
}

/// Publishes the first Snapshot, then one per change or SIGHUP, until
/// SIGTERM or SIGINT, which also cut a running rebuild short: a first build
/// of a large manifest set must not hold the exit.
async fn serve(
    plane: &mut Plane,
    watch: &mut Watch,
    signals: &mut Signals,
    health: &Health,
    ready: Option<oneshot::Sender<()>>,
) -> Result<Stop, Error> {
    if let Some(stop) = publish(plane, signals).await? {
        return Ok(stop);
    }
    health.published();
    if let Some(ready) = ready {
        let _ = ready.send(());
    }
    loop {
        tokio::select! {
            () = watch.changed() => {}
            _ = signals.hup.recv() => info!("SIGHUP: re-reading every source"),
            _ = signals.term.recv() => return Ok(Stop::Term),
            _ = signals.int.recv() => return Ok(Stop::Int),
        }
        if let Some(stop) = publish(plane, signals).await? {
            return Ok(stop);
        }
        health.published();
    }
}

/// One rebuild and publish, unless SIGTERM or SIGINT comes first; the
/// rebuild then goes on alone on the blocking pool and nothing waits for it
/// (its listeners are never reconciled).
async fn publish(plane: &mut Plane, signals: &mut Signals) -> Result<Option<Stop>, Error> {
    tokio::select! {
        result = plane.publish() => result.map(|()| None),
        _ = signals.term.recv() => Ok(Some(Stop::Term)),
        _ = signals.int.recv() => Ok(Some(Stop::Int)),
    }
}

/// The signals the daemon answers.
struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

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

/// Lets live connections finish for up to `timeout`, then resets the rest;
/// a second SIGTERM, or SIGINT, ends it at once.
async fn drain(ctx: &Context, timeout: Duration, signals: &mut Signals) {
    info!(live = ctx.tracker.live(), ?timeout, "SIGTERM: draining");
    tokio::select! {
        left = ctx.tracker.drain(timeout) => {
            if left > 0 {
                warn!(left, "drain timeout: resetting the remaining connections");
                ctx.tracker.abort();
                // Each resets its sockets as it ends; bounded, like all of this.
                ctx.tracker.drain(ABORT_GRACE).await;
            }
        }
        _ = signals.term.recv() => info!("second SIGTERM: exiting"),
        _ = signals.int.recv() => info!("SIGINT: exiting"),
    }
}

/// The control plane's state between rebuilds.
struct Plane {
    /// `None` only while a rebuild runs on the blocking pool.
    control: Option<Control>,
    listeners: Supervisor,
    ctx: Arc<Context>,
}

impl Plane {
    /// Rebuilds on the blocking pool (parsing a large manifest set must not
    /// stall a runtime worker that carries connections), then reconciles
    /// the listeners with the published Snapshot.
    async fn publish(&mut self) -> Result<(), Error> {
        let Some(mut control) = self.control.take() else { return Ok(()) };
        let ctx = self.ctx.clone();
        let (control, outcome) = tokio::task::spawn_blocking(move || {
            // A bug met by some input must not take every Service down: the
            // published table stays, the failure is counted and logged.
            let outcome = panic::catch_unwind(AssertUnwindSafe(|| control.rebuild(&ctx)));
            (control, outcome)
        })
        .await
        .map_err(|e| Error::Rebuild(e.to_string()))?;
        self.control = Some(control);
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(cause) => {
                let cause = cause
                    .downcast_ref::<&str>()
                    .map(ToString::to_string)
                    .or_else(|| cause.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                if self.ctx.table.load().generation == 0 {
                    return Err(Error::Rebuild(cause));
                }
                error!(%cause, "routing table rebuild failed: the published table stays in service");
                self.ctx.metrics.config_reloads.with_label_values(&["failure"]).inc();
                return Ok(());
            }
        };
        self.listeners.reconcile(&outcome.snapshot, &self.ctx);
        self.ctx.balancer.retain_endpoints(&outcome.snapshot);
        Ok(())
    }
}

/// The addresses NodePorts are bound on: `0.0.0.0` without CIDRs; else
/// every local interface address inside them, plus any single-address CIDR
/// (`/32`, `/128`), taken as given.
pub fn node_ips(cidrs: &[IpNet]) -> Result<Vec<IpAddr>, Error> {
    if cidrs.is_empty() {
        return Ok(vec![IpAddr::V4(Ipv4Addr::UNSPECIFIED)]);
    }
    let interfaces = if_addrs::get_if_addrs().map_err(Error::Interfaces)?;
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
