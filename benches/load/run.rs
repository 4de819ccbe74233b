//! One measured run of a load test against one proxy: start the workers
//! (or `h2load`), let them warm up, then sample the client's counters, the
//! proxy's CPU time and (pinned) its core's busy time at both ends of the
//! window.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use tokio::runtime::Runtime;

use super::args::{Settings, Test};
use super::backend::{BULK_PATH, SMALL_PATH};
use super::client::{self, Counters, Plan};
use super::pin::Pinning;
use super::process::Process;
use super::proxy::Proxy;
use super::{h2load, procfs, stats};

/// What one run measured; the idle test fills `idle` only.
#[derive(Clone, Debug, Default)]
pub struct Measure {
    /// The window's length, as sampled.
    pub secs: f64,
    /// Responses (keep-alive tests) or connections (close) in the window.
    pub done: u64,
    pub bytes: u64,
    pub errors: u64,
    /// utime + stime of the proxy (all threads, all its processes).
    pub proxy_cpu_s: f64,
    /// Busy time of the proxy's CPU, softirq included (pinned runs only).
    pub core_cpu_s: Option<f64>,
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
    /// The proxy's VmRSS after the run.
    pub rss_kib: u64,
    pub idle: Option<Idle>,
}

/// The idle test's figures.
#[derive(Clone, Copy, Debug)]
pub struct Idle {
    pub conns: usize,
    pub before_kib: u64,
    pub held_kib: u64,
}

/// The proxy's CPU and the time at one end of the window.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub at: Instant,
    /// Wall-clock time, µs since the Unix epoch: what `h2load` logs in.
    pub wall_us: u64,
    cpu_s: f64,
    core: Option<(u64, u64)>,
}

/// What the client counted at one end of the window.
struct Counted {
    done: u64,
    bytes: u64,
    errors: u64,
}

/// What a client did within a window.
pub struct Work {
    pub done: u64,
    pub bytes: u64,
    pub errors: u64,
    /// Latencies in µs, sorted.
    pub latencies: Vec<u32>,
}

/// Runs `test` against `proxy`: this bench's own client, or h2load for h2c.
pub fn test(
    rt: &Runtime,
    test: Test,
    proxy: &Proxy,
    pin: &Pinning,
    s: &Settings,
) -> Result<Measure> {
    match test {
        Test::H2c => h2load::load(proxy, pin, s),
        _ => load(rt, test, proxy.listen, &proxy.process, pin, s),
    }
}

/// Runs `test` against the proxy listening on `target`.
pub fn load(
    rt: &Runtime,
    test: Test,
    target: SocketAddr,
    proxy: &Process,
    pin: &Pinning,
    s: &Settings,
) -> Result<Measure> {
    let now = Instant::now();
    let start = now + s.warmup;
    let plan = Arc::new(Plan { target, start, end: start + s.duration });
    let counters = Arc::new(Counters::default());
    let (pid, core) = (proxy.pid(), pin.proxy);
    let (first, last, mut latencies) = rt.block_on(async {
        let workers = spawn_workers(test, &plan, &counters, s);
        tokio::time::sleep_until(plan.start.into()).await;
        let first = (sample(pid, core), count(&counters));
        tokio::time::sleep_until(plan.end.into()).await;
        let last = (sample(pid, core), count(&counters));
        let mut latencies = Vec::new();
        for worker in workers {
            latencies.extend(worker.await.context("a client worker panicked")?);
        }
        Ok::<_, anyhow::Error>((first, last, latencies))
    })?;
    latencies.sort_unstable();
    let work = Work {
        done: last.1.done - first.1.done,
        bytes: last.1.bytes - first.1.bytes,
        errors: last.1.errors - first.1.errors,
        latencies,
    };
    Ok(measure(&first.0, &last.0, work, proxy))
}

/// The figures of a window from `first` to `last` in which the client
/// did `work`.
pub fn measure(first: &Sample, last: &Sample, work: Work, proxy: &Process) -> Measure {
    let ticks = procfs::clock_ticks() as f64;
    Measure {
        secs: last.at.duration_since(first.at).as_secs_f64(),
        done: work.done,
        bytes: work.bytes,
        errors: work.errors,
        proxy_cpu_s: last.cpu_s - first.cpu_s,
        core_cpu_s: first.core.zip(last.core).map(|((b0, _), (b1, _))| (b1 - b0) as f64 / ticks),
        p50_us: stats::percentile(&work.latencies, 0.50),
        p99_us: stats::percentile(&work.latencies, 0.99),
        rss_kib: proxy.rss_kib(),
        idle: None,
    }
}

type Worker = tokio::task::JoinHandle<Vec<u32>>;

fn spawn_workers(
    test: Test,
    plan: &Arc<Plan>,
    counters: &Arc<Counters>,
    s: &Settings,
) -> Vec<Worker> {
    let (conns, path, buf) = match test {
        Test::Ka | Test::HttpKa => (s.ka_conns, SMALL_PATH, 4096),
        Test::Lat1 => (1, SMALL_PATH, 4096),
        Test::Bulk1m => (s.bulk_conns, BULK_PATH, 256 * 1024),
        Test::Close | Test::HttpClose => (s.close_conns, SMALL_PATH, 4096),
        // Not this client's.
        Test::Idle | Test::HttpIdle | Test::H2c => (0, SMALL_PATH, 0),
    };
    let close = matches!(test, Test::Close | Test::HttpClose);
    (0..conns)
        .map(|_| {
            let (plan, counters) = (plan.clone(), counters.clone());
            tokio::spawn(async move {
                if close {
                    client::one_shot(&plan, path, &counters).await
                } else {
                    client::keep_alive(&plan, path, &counters, buf).await
                }
            })
        })
        .collect()
}

/// The proxy `pid`'s CPU time, and its `core`'s busy time when pinned.
pub fn sample(pid: u32, core: Option<usize>) -> Sample {
    let wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    Sample {
        at: Instant::now(),
        wall_us: u64::try_from(wall.as_micros()).unwrap_or(u64::MAX),
        cpu_s: procfs::tree_cpu_s(pid),
        core: core.and_then(procfs::cpu_jiffies),
    }
}

fn count(counters: &Counters) -> Counted {
    use std::sync::atomic::Ordering::Relaxed;
    Counted {
        done: counters.done.load(Relaxed),
        bytes: counters.bytes.load(Relaxed),
        errors: counters.errors.load(Relaxed),
    }
}
