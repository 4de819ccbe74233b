//! A proxy under test, started and serving: svcproxy, HAProxy or nginx on
//! its own loopback address (`127.77.0.10`–`.12`), pinned to the proxy
//! CPU when the bench pins, checked with real requests before any
//! measurement.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::runtime::Runtime;

use super::args::Impl;
use super::backend::{BULK_PATH, BULK_SIZE, SMALL_BODY, SMALL_PATH};
use super::pin::Pinning;
use super::process::Process;
use super::{http, peers, svcproxy};

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
    pub listen: SocketAddr,
    pub process: Process,
    /// svcproxy's `/metrics`.
    pub metrics: Option<SocketAddr>,
}

// === impl Proxy ===

impl Proxy {
    /// Starts `kind` and waits until a request through it succeeds.
    pub fn start(kind: Impl, env: &Env<'_>) -> Result<Proxy> {
        let ip = Ipv4Addr::new(127, 77, 0, 10 + kind as u8);
        let listen = SocketAddr::from((ip, free_port(ip)?));
        let dir = env.workdir.join(kind.name());
        std::fs::create_dir_all(&dir)?;
        let cmd = match kind {
            Impl::Svcproxy => {
                let manifests = dir.join("manifests");
                svcproxy::write_manifests(&manifests, listen, env.endpoints, env.services)?;
                let mut cmd = env.pin.command(env!("CARGO_BIN_EXE_svcproxy"));
                svcproxy::command(&mut cmd, &manifests, ip);
                cmd.args(env.svcproxy_args);
                cmd
            }
            Impl::Haproxy => {
                let config = dir.join("haproxy.cfg");
                let threads = env.pin.proxy_threads();
                let text = peers::haproxy_config(listen, env.endpoints, threads, env.maxconn);
                std::fs::write(&config, text)?;
                peers::haproxy_command(env.pin.command("haproxy"), &config)
            }
            Impl::Nginx => {
                let config = dir.join("nginx.conf");
                std::fs::write(
                    &config,
                    peers::nginx_config(&peers::nginx_stream()?, &nginx(env, listen, &dir)),
                )?;
                peers::nginx_command(env.pin.command("nginx"), &dir, &config)
            }
        };
        let process = Process::spawn(kind.name(), cmd, &dir.join("out.log"))?;
        let mut proxy = Proxy { kind, listen, process, metrics: None };
        let ready = Duration::from_secs(15 + u64::from(env.services) / 1000);
        proxy.process.wait_ready(ready, || probe(env.rt, listen))?;
        if kind == Impl::Svcproxy {
            let log = proxy.process.log_text();
            proxy.metrics = Some(svcproxy::metrics_addr(&log).context("no admin endpoints line")?);
        }
        Ok(proxy)
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

fn nginx<'a>(env: &Env<'a>, listen: SocketAddr, dir: &'a Path) -> peers::NginxSetup<'a> {
    peers::NginxSetup {
        listen,
        endpoints: env.endpoints,
        workdir: dir,
        workers: env.pin.proxy_threads(),
        nofile: env.nofile,
        // Each proxied connection is two of nginx's connections.
        maxconn: 2 * env.maxconn,
    }
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
fn free_port(ip: Ipv4Addr) -> Result<u16> {
    Ok(TcpListener::bind((ip, 0)).context("probe a free port")?.local_addr()?.port())
}
