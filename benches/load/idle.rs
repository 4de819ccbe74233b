//! The idle tests: a fresh proxy, K idle connections through it, then the
//! proxy's resident memory growth per connection. In TCP mode (`idle`)
//! no byte is sent; they are held until the endpoints have accepted all K
//! (and, for svcproxy, `svcproxy_connections_active` counts all K). In
//! HTTP mode (`http-idle`) each connection has sent one keep-alive request
//! and read its answer, and each is checked still open after the memory
//! is read. Targets for svcproxy: ≤ 4 KiB (TCP), ≤ 16 KiB (HTTP).

use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::net::TcpStream;
use tokio::runtime::Runtime;
use tokio::task::JoinSet;

use super::args::Mode;
use super::backend::{Backends, SMALL_PATH};
use super::http;
use super::process::Process;
use super::proxy::{self, Proxy};
use super::run::{Idle, Measure};

/// Connects in flight at once: bursts larger than the listen backlogs
/// would only measure SYN retransmits.
const CONNECT_BATCH: usize = 256;
/// Bound on opening, and on seeing, all K connections.
const DEADLINE: Duration = Duration::from_secs(60);

/// Holds `k` idle connections through `proxy`, in its mode; its RSS
/// growth. The proxy is stopped at the end, and its connections to the
/// endpoints seen closed.
pub fn measure(rt: &Runtime, mut proxy: Proxy, backends: &Backends, k: usize) -> Result<Measure> {
    // Accepted counts only grow: connections closing meanwhile (a stopped
    // proxy's) cannot hide new ones.
    let (accepted_before, open_before) = (backends.accepted(), backends.open());
    let metrics = proxy.metrics.filter(|_| proxy.mode == Mode::Tcp);
    if let Some(metrics) = metrics {
        // A first scrape, so the memory a scrape takes is in both figures.
        proxy::active(rt, metrics)?;
    }
    let before_kib = proxy.process.rss_kib();
    let name = proxy.name();
    let conns = match proxy.mode {
        Mode::Tcp => rt.block_on(open(proxy.listen, k, false))?,
        Mode::Http => rt.block_on(open(proxy.listen, k, true))?,
    };
    if proxy.mode == Mode::Tcp {
        let wanted = accepted_before + u64::try_from(k)?;
        wait(Some(&mut proxy.process), &name, "the endpoints to accept them all", || {
            Ok(backends.accepted() >= wanted)
        })?;
    }
    if let Some(metrics) = metrics {
        wait(Some(&mut proxy.process), &name, "svcproxy_connections_active to count them", || {
            Ok(proxy::active(rt, metrics)? >= k as f64)
        })?;
    }
    let held_kib = proxy.process.rss_kib();
    if proxy.mode == Mode::Http {
        let closed = conns.iter().filter(|c| !is_open(c)).count();
        if closed > 0 {
            bail!("{name}: {closed} of {k} idle connections closed before the memory was read");
        }
    }
    drop(conns);
    drop(proxy);
    // Closed before the next proxy starts, so it begins from the same state.
    wait(None, &name, "the endpoints to see them closed", || Ok(backends.open() <= open_before))?;
    Ok(Measure {
        rss_kib: held_kib,
        idle: Some(Idle { conns: k, before_kib, held_kib }),
        ..Measure::default()
    })
}

/// `k` connections to `to`, at most [`CONNECT_BATCH`] in flight; with
/// `ask`, each has had an answer to one keep-alive request.
async fn open(to: SocketAddr, k: usize, ask: bool) -> Result<Vec<TcpStream>> {
    let until = tokio::time::Instant::now() + DEADLINE;
    let mut conns = Vec::with_capacity(k);
    let mut pending = JoinSet::new();
    let mut started = 0;
    while conns.len() < k {
        while started < k && pending.len() < CONNECT_BATCH {
            pending.spawn(connect(to, ask));
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

/// One connection; with `ask`, after a keep-alive request answered 200.
async fn connect(to: SocketAddr, ask: bool) -> Result<TcpStream> {
    let mut stream = http::connect(to).await?;
    if ask {
        let mut scratch = [0u8; 1024];
        let request = http::request(SMALL_PATH, false);
        let exchange = http::exchange(&mut stream, &request, &mut scratch);
        let head = tokio::time::timeout(http::TIMEOUT, exchange).await.context("no answer")??;
        if head.status != 200 {
            bail!("answered {}", head.status);
        }
    }
    Ok(stream)
}

/// Neither closed nor readable: an idle connection still open (a
/// non-blocking `recv(MSG_PEEK)`, whatever the runtime has seen yet).
fn is_open(stream: &TcpStream) -> bool {
    let mut byte = [MaybeUninit::<u8>::uninit(); 1];
    let peeked = socket2::SockRef::from(stream).peek(&mut byte);
    matches!(peeked, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

/// Polls `done` within [`DEADLINE`]; fails naming `what`, or when the
/// proxy (if still running) exits.
fn wait(
    mut process: Option<&mut Process>,
    name: &str,
    what: &str,
    mut done: impl FnMut() -> Result<bool>,
) -> Result<()> {
    let until = Instant::now() + DEADLINE;
    loop {
        if let Some(process) = process.as_deref_mut() {
            process.check_running()?;
        }
        if done()? {
            return Ok(());
        }
        if Instant::now() >= until {
            bail!("{name}: still waiting for {what} after {DEADLINE:?}");
        }
        thread::sleep(Duration::from_millis(20));
    }
}
