//! One measured run of a load test against one proxy: start the workers,
//! let them warm up, then sample the client's counters, the proxy's CPU
//! time and (pinned) its core's busy time at both ends of the window.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use tokio::runtime::Runtime;

use super::args::{Settings, Test};
use super::backend::{BULK_PATH, SMALL_PATH};
use super::client::{self, Counters, Plan};
use super::pin::Pinning;
use super::process::Process;
use super::{procfs, stats};

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

/// Counters, CPU and time at one end of the window.
struct Sample {
    at: Instant,
    done: u64,
    bytes: u64,
    errors: u64,
    cpu_s: f64,
    core: Option<(u64, u64)>,
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
    let pid = proxy.pid();
    let (first, last, mut latencies) = rt.block_on(async {
        let workers = spawn_workers(test, &plan, &counters, s);
        tokio::time::sleep_until(plan.start.into()).await;
        let first = sample(&counters, pid, pin.proxy);
        tokio::time::sleep_until(plan.end.into()).await;
        let last = sample(&counters, pid, pin.proxy);
        let mut latencies = Vec::new();
        for worker in workers {
            latencies.extend(worker.await.context("a client worker panicked")?);
        }
        Ok::<_, anyhow::Error>((first, last, latencies))
    })?;
    latencies.sort_unstable();
    let ticks = procfs::clock_ticks() as f64;
    Ok(Measure {
        secs: last.at.duration_since(first.at).as_secs_f64(),
        done: last.done - first.done,
        bytes: last.bytes - first.bytes,
        errors: last.errors - first.errors,
        proxy_cpu_s: last.cpu_s - first.cpu_s,
        core_cpu_s: first.core.zip(last.core).map(|((b0, _), (b1, _))| (b1 - b0) as f64 / ticks),
        p50_us: stats::percentile(&latencies, 0.50),
        p99_us: stats::percentile(&latencies, 0.99),
        rss_kib: proxy.rss_kib(),
        idle: None,
    })
}

type Worker = tokio::task::JoinHandle<Vec<u32>>;

fn spawn_workers(
    test: Test,
    plan: &Arc<Plan>,
    counters: &Arc<Counters>,
    s: &Settings,
) -> Vec<Worker> {
    let (conns, path, buf) = match test {
        Test::Ka => (s.ka_conns, SMALL_PATH, 4096),
        Test::Lat1 => (1, SMALL_PATH, 4096),
        Test::Bulk1m => (s.bulk_conns, BULK_PATH, 256 * 1024),
        Test::Close => (s.close_conns, SMALL_PATH, 4096),
        Test::Idle => (0, SMALL_PATH, 0),
    };
    (0..conns)
        .map(|_| {
            let (plan, counters) = (plan.clone(), counters.clone());
            tokio::spawn(async move {
                if test == Test::Close {
                    client::one_shot(&plan, path, &counters).await
                } else {
                    client::keep_alive(&plan, path, &counters, buf).await
                }
            })
        })
        .collect()
}

fn sample(counters: &Counters, pid: u32, core: Option<usize>) -> Sample {
    use std::sync::atomic::Ordering::Relaxed;
    Sample {
        at: Instant::now(),
        done: counters.done.load(Relaxed),
        bytes: counters.bytes.load(Relaxed),
        errors: counters.errors.load(Relaxed),
        cpu_s: procfs::tree_cpu_s(pid),
        core: core.and_then(procfs::cpu_jiffies),
    }
}
