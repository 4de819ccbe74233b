//! The idle test: a fresh proxy, K idle connections through it (no byte
//! sent), held until the endpoints have accepted all K (and, for svcproxy,
//! `svcproxy_connections_active` counts all K), then the proxy's resident
//! memory growth per connection. Issue 6's target for svcproxy: ≤ 4 KiB.

use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::net::TcpStream;
use tokio::runtime::Runtime;
use tokio::task::JoinSet;

use super::backend::Backends;
use super::http;
use super::process::Process;
use super::proxy::{self, Proxy};
use super::run::{Idle, Measure};

/// Connects in flight at once: bursts larger than the listen backlogs
/// would only measure SYN retransmits.
const CONNECT_BATCH: usize = 256;
/// Bound on opening, and on seeing, all K connections.
const DEADLINE: Duration = Duration::from_secs(60);

/// Holds `k` idle connections through `proxy`; its RSS growth.
pub fn measure(rt: &Runtime, proxy: &mut Proxy, backends: &Backends, k: usize) -> Result<Measure> {
    // Accepted counts only grow: connections closing meanwhile (a stopped
    // proxy's) cannot hide new ones.
    let (accepted_before, open_before) = (backends.accepted(), backends.open());
    if let Some(metrics) = proxy.metrics {
        // A first scrape, so the memory a scrape takes is in both figures.
        proxy::active(rt, metrics)?;
    }
    let before_kib = proxy.process.rss_kib();
    let conns = rt.block_on(open(proxy.listen, k))?;
    let name = proxy.kind.name();
    let wanted = accepted_before + u64::try_from(k)?;
    wait(&mut proxy.process, name, "the endpoints to accept them all", || {
        Ok(backends.accepted() >= wanted)
    })?;
    if let Some(metrics) = proxy.metrics {
        wait(&mut proxy.process, name, "svcproxy_connections_active to count them", || {
            Ok(proxy::active(rt, metrics)? >= k as f64)
        })?;
    }
    let held_kib = proxy.process.rss_kib();
    drop(conns);
    // Closed before the next proxy starts, so it begins from the same state.
    wait(&mut proxy.process, name, "the endpoints to see them closed", || {
        Ok(backends.open() <= open_before)
    })?;
    Ok(Measure {
        rss_kib: held_kib,
        idle: Some(Idle { conns: k, before_kib, held_kib }),
        ..Measure::default()
    })
}

/// `k` connections to `to`, at most [`CONNECT_BATCH`] in flight.
async fn open(to: SocketAddr, k: usize) -> Result<Vec<TcpStream>> {
    let until = tokio::time::Instant::now() + DEADLINE;
    let mut conns = Vec::with_capacity(k);
    let mut pending = JoinSet::new();
    let mut started = 0;
    while conns.len() < k {
        while started < k && pending.len() < CONNECT_BATCH {
            pending.spawn(http::connect(to));
            started += 1;
        }
        let next = tokio::time::timeout_at(until, pending.join_next()).await;
        let Ok(Some(joined)) = next else {
            bail!("opened {} of {k} idle connections within {DEADLINE:?}", conns.len());
        };
        conns.push(joined?.with_context(|| format!("idle connection {}", conns.len() + 1))?);
    }
    Ok(conns)
}

/// Polls `done` within [`DEADLINE`]; fails naming `what`, or when the
/// proxy exits.
fn wait(
    process: &mut Process,
    name: &str,
    what: &str,
    mut done: impl FnMut() -> Result<bool>,
) -> Result<()> {
    let until = Instant::now() + DEADLINE;
    loop {
        process.check_running()?;
        if done()? {
            return Ok(());
        }
        if Instant::now() >= until {
            bail!("{name}: still waiting for {what} after {DEADLINE:?}");
        }
        thread::sleep(Duration::from_millis(20));
    }
}
