//! A proxy under test, started and serving: svcproxy, HAProxy or nginx on
//! its own loopback address (TCP mode `127.77.0.10`–`.12`, HTTP mode
//! `.20`–`.22`), pinned to the proxy CPU when the bench pins, checked with
//! real requests before any measurement.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::runtime::Runtime;

use super::args::{Impl, Mode};
use super::backend::{BULK_PATH, BULK_SIZE, SMALL_BODY, SMALL_PATH};
use super::launch::{self, Launch};
use super::pin::Pinning;
use super::process::Process;
use super::{http, svcproxy};

/// What every proxy is started from.
pub struct Env<'a> {
    pub rt: &'a Runtime,
    pub pin: &'a Pinning,
    pub endpoints: &'a [SocketAddr],
    pub workdir: &'a Path,
    /// Extra Services for svcproxy.
    pub services: u32,
    /// Extra arguments for `svcproxy run`.
    pub svcproxy_args: &'a [String],
    /// Connections a proxy must accept at once (the idle test's, and more).
    pub maxconn: usize,
    pub nofile: u64,
}

/// A running proxy; stopped when dropped.
pub struct Proxy {
    pub kind: Impl,
    pub mode: Mode,
    pub listen: SocketAddr,
    /// Where h2c clients go (HTTP mode): `listen`, or nginx's second port.
    pub h2c: Option<SocketAddr>,
    pub process: Process,
    /// svcproxy's `/metrics`.
    pub metrics: Option<SocketAddr>,
    /// Its configuration, log, and scratch files.
    pub dir: PathBuf,
}

// === impl Proxy ===

impl Proxy {
    /// Starts `kind` in `mode` and waits until a request through it
    /// succeeds.
    pub fn start(kind: Impl, mode: Mode, env: &Env<'_>) -> Result<Proxy> {
        let first = if mode == Mode::Tcp { 10 } else { 20 };
        let ip = Ipv4Addr::new(127, 77, 0, first + kind as u8);
        let listen = SocketAddrV4::new(ip, free_port(ip)?);
        let dir = env.workdir.join(format!("{}-{}", kind.name(), mode.name()));
        std::fs::create_dir_all(&dir)?;
        let Launch { cmd, h2c } = launch::launch(kind, mode, env, listen, &dir)?;
        let process = Process::spawn(kind.name(), cmd, &dir.join("out.log"))?;
        let listen = SocketAddr::V4(listen);
        let mut proxy = Proxy { kind, mode, listen, h2c, process, metrics: None, dir };
        let ready = Duration::from_secs(15 + u64::from(env.services) / 1000);
        proxy.process.wait_ready(ready, || probe(env.rt, listen))?;
        if kind == Impl::Svcproxy {
            let log = proxy.process.log_text();
            proxy.metrics = Some(svcproxy::metrics_addr(&log).context("no admin endpoints line")?);
        }
        Ok(proxy)
    }

    /// `svcproxy (http)`, say: the implementation and its mode.
    pub fn name(&self) -> String {
        format!("{} ({})", self.kind.name(), self.mode.name())
    }

    /// Six new connections and one 1 MiB response through the proxy: the
    /// endpoints they reached (`bN` as N), in order.
    pub fn check(&self, rt: &Runtime) -> Result<Vec<u8>> {
        let mut seen = Vec::new();
        for _ in 0..6 {
            let (head, body) = rt.block_on(http::fetch(self.listen, SMALL_PATH))?;
            if head.status != 200 || body != SMALL_BODY {
                bail!("{}: bad answer {head:?} {body:?}", self.kind.name());
            }
            seen.extend(head.backend);
        }
        let (head, body) = rt.block_on(http::fetch(self.listen, BULK_PATH))?;
        if head.status != 200 || body.len() != BULK_SIZE {
            bail!("{}: bad 1 MiB answer {head:?}, {} bytes", self.kind.name(), body.len());
        }
        Ok(seen)
    }
}

/// svcproxy's `svcproxy_connections_active` for the bench Service, from
/// its `/metrics` at `metrics`.
pub fn active(rt: &Runtime, metrics: SocketAddr) -> Result<f64> {
    let (head, body) = rt.block_on(http::fetch(metrics, "/metrics"))?;
    if head.status != 200 {
        bail!("/metrics answered {}", head.status);
    }
    svcproxy::active_connections(&String::from_utf8_lossy(&body))
}

/// One small request through the proxy.
fn probe(rt: &Runtime, listen: SocketAddr) -> Result<()> {
    let (head, _) = rt.block_on(http::fetch(listen, SMALL_PATH))?;
    if head.status != 200 {
        bail!("answered {}", head.status);
    }
    Ok(())
}

/// A port free on `ip` right now (the proxy binds it a moment later; the
/// address is the bench's own, so nothing else competes for it).
pub fn free_port(ip: Ipv4Addr) -> Result<u16> {
    Ok(TcpListener::bind((ip, 0)).context("probe a free port")?.local_addr()?.port())
}
