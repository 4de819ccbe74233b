//! The benchmark's flow: pin, raise the descriptor limit, start the
//! endpoints and every available proxy, check them, then measure
//! interleaved (rep → test → implementation, the order rotated each rep,
//! so the machine's noise hits all alike); last the idle test, each run on
//! a fresh proxy. A peer that is missing or fails is skipped with a note;
//! svcproxy failing fails the run.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use tokio::runtime::Runtime;

use super::args::{Impl, Settings, Test};
use super::backend::Backends;
use super::pin::Pinning;
use super::procfs::Machine;
use super::proxy::{Env, Proxy};
use super::run::{self, Measure};
use super::{idle, limits, peers, process};

/// Everything the report needs.
pub struct Results {
    pub settings: Settings,
    pub pin: Pinning,
    pub machine: Machine,
    pub started: SystemTime,
    pub elapsed: Duration,
    /// The implementations that ran, with their versions.
    pub versions: Vec<(Impl, String)>,
    pub runs: BTreeMap<(Impl, Test), Vec<Measure>>,
    pub notes: Vec<String>,
    /// What makes the run fail: svcproxy's faults (in the smoke: any).
    pub failures: Vec<String>,
}

// === impl Results ===

impl Results {
    /// Records a fault of `kind`: a failure for svcproxy, a note for a peer.
    fn fault(&mut self, kind: Impl, what: String) {
        eprintln!("load: {what}");
        if kind == Impl::Svcproxy || self.settings.smoke {
            self.failures.push(what);
        } else {
            self.notes.push(what);
        }
    }

    fn push(&mut self, kind: Impl, test: Test, m: Measure) {
        self.runs.entry((kind, test)).or_default().push(m);
    }
}

/// Runs the whole benchmark (or the smoke) as `s` says.
pub fn run(s: Settings) -> Result<Results> {
    let (started, clock) = (SystemTime::now(), Instant::now());
    let machine = Machine::read();
    // Before any thread starts: every thread inherits the CPU mask.
    let pin = Pinning::apply(s.pin);
    let (s, nofile, notes) = fit(s);
    let client = runtime("load-client", pin.bench_threads())?;
    let backends = Backends::start(runtime("load-backend", pin.bench_threads())?)?;
    let workdir = tempfile::Builder::new().prefix("svcproxy-load-").tempdir()?;
    process::stop_all_on_signal(&client, workdir.path().to_owned())?;
    let env = Env {
        rt: &client,
        pin: &pin,
        endpoints: &backends.addrs,
        workdir: workdir.path(),
        services: s.services,
        svcproxy_args: &s.svcproxy_args,
        // Above the idle test's connections, within the descriptor budget.
        maxconn: s.idle.max(1024) + 128,
        nofile,
    };
    let mut res = Results {
        settings: s.clone(),
        pin: pin.clone(),
        machine,
        started,
        elapsed: Duration::ZERO,
        versions: Vec::new(),
        runs: BTreeMap::new(),
        notes,
        failures: Vec::new(),
    };
    let kinds = available(&s, &mut res);
    res.versions = kinds.iter().map(|&k| (k, version(k))).collect();
    let load: Vec<Test> = s.tests.iter().copied().filter(|&t| t != Test::Idle).collect();
    if !load.is_empty() {
        let proxies = start_all(&env, &kinds, &mut res);
        if !s.smoke {
            warm_up(&env, &proxies, &s);
        }
        rotate_load(&env, proxies, &load, &mut res);
    }
    if s.tests.contains(&Test::Idle) {
        rotate_idle(&env, &backends, &kinds, &mut res);
    }
    res.elapsed = clock.elapsed();
    Ok(res)
}

/// `s` cut to the descriptor budget; the soft limit, and notes on what
/// was cut.
fn fit(mut s: Settings) -> (Settings, u64, Vec<String>) {
    let idle = if s.tests.contains(&Test::Idle) { s.idle } else { 0 };
    let budget = limits::budget(s.services, idle);
    (s.services, s.idle) = (budget.services, budget.idle);
    let mut notes = budget.notes;
    if s.idle == 0 && s.tests.contains(&Test::Idle) {
        s.tests.retain(|&t| t != Test::Idle);
        notes.push("idle skipped: no descriptors left for its connections".to_owned());
    }
    (s, budget.nofile, notes)
}

fn runtime(name: &str, threads: usize) -> Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name(name)
        .enable_all()
        .build()
        .with_context(|| format!("{name} runtime"))
}

/// The requested implementations that can run here; notes for the others.
fn available(s: &Settings, res: &mut Results) -> Vec<Impl> {
    let mut kinds = Vec::new();
    for &kind in &s.impls {
        let missing = match kind {
            Impl::Svcproxy => None,
            Impl::Haproxy => {
                peers::which("haproxy").is_none().then(|| "haproxy is not on PATH".to_owned())
            }
            Impl::Nginx if peers::which("nginx").is_none() => {
                Some("nginx is not on PATH".to_owned())
            }
            Impl::Nginx => peers::nginx_stream().err().map(|e| format!("nginx: {e}")),
        };
        match missing {
            Some(why) => res.notes.push(format!("{} skipped: {why}", kind.name())),
            None => kinds.push(kind),
        }
    }
    kinds
}

fn version(kind: Impl) -> String {
    match kind {
        Impl::Svcproxy => {
            let dir = env!("CARGO_MANIFEST_DIR");
            let rev = peers::version("git", &["-C", dir, "describe", "--always", "--dirty"]);
            format!("svcproxy {rev}")
        }
        Impl::Haproxy => {
            // "HAProxy version 2.6.12-1 2023/03/14 - https://haproxy.org/"
            let line = peers::version("haproxy", &["-v"]);
            line.split_whitespace()
                .filter(|w| *w != "version")
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
        }
        Impl::Nginx => peers::version("nginx", &["-v"]).replace("nginx version: ", ""),
    }
}

/// Starts and checks every proxy; one that fails is left out.
fn start_all(env: &Env<'_>, kinds: &[Impl], res: &mut Results) -> Vec<Proxy> {
    let mut proxies = Vec::new();
    for &kind in kinds {
        let started = Proxy::start(kind, env).and_then(|p| Ok((p.check(env.rt)?, p)));
        match started {
            Ok((seen, proxy)) => {
                let mut distinct = seen.clone();
                distinct.sort_unstable();
                distinct.dedup();
                if distinct.len() < env.endpoints.len() {
                    res.notes.push(format!(
                        "{} sent 6 new connections to endpoints {seen:?}: not all three",
                        kind.name()
                    ));
                }
                eprintln!("load: {} serving on {} (endpoints {seen:?})", kind.name(), proxy.listen);
                proxies.push(proxy);
            }
            Err(e) => res.fault(kind, format!("{} could not start: {e:#}", kind.name())),
        }
    }
    proxies
}

/// A short keep-alive and bulk run on each proxy, not recorded: page
/// cache, allocator pools and lazily grown buffers settle before the
/// first measured run.
fn warm_up(env: &Env<'_>, proxies: &[Proxy], s: &Settings) {
    let short = Settings { duration: s.duration.min(Duration::from_millis(500)), ..s.clone() };
    for proxy in proxies {
        for test in [Test::Ka, Test::Bulk1m] {
            let _ = run::load(env.rt, test, proxy.listen, &proxy.process, env.pin, &short);
        }
    }
}

/// rep → test → implementation, the order rotated by one each rep; a
/// proxy that fails is stopped and left out of the rest.
fn rotate_load(env: &Env<'_>, proxies: Vec<Proxy>, tests: &[Test], res: &mut Results) {
    let mut slots: Vec<Option<Proxy>> = proxies.into_iter().map(Some).collect();
    let n = slots.len();
    for rep in 0..res.settings.reps {
        for &test in tests {
            for i in 0..n {
                let at = (i + rep as usize) % n;
                let Some(proxy) = slots[at].as_mut() else { continue };
                let kind = proxy.kind;
                let s = &res.settings;
                let measured = run::load(env.rt, test, proxy.listen, &proxy.process, env.pin, s)
                    .and_then(|m| proxy.process.check_running().map(|()| m));
                match measured {
                    Ok(m) => record(res, kind, test, rep, m),
                    Err(e) => {
                        res.fault(kind, format!("{} {}: {e:#}", kind.name(), test.name()));
                        slots[at] = None;
                    }
                }
            }
        }
    }
}

/// Logs one run and keeps it; errors inside the window are a fault.
fn record(res: &mut Results, kind: Impl, test: Test, rep: u32, m: Measure) {
    let rate = m.done as f64 / m.secs.max(1e-9);
    let cpu = m.proxy_cpu_s * 1e6 / (m.done.max(1) as f64);
    eprintln!(
        "load: rep {}/{} {:<6} {:<8} {rate:>9.0}/s  p99 {:>6.0} µs  proxy {cpu:>6.1} µs/op  errors {}",
        rep + 1,
        res.settings.reps,
        test.name(),
        kind.name(),
        m.p99_us.unwrap_or(f64::NAN),
        m.errors
    );
    if m.errors > 0 || m.done == 0 {
        let what = format!(
            "{} {} rep {}: {} errors, {} done",
            kind.name(),
            test.name(),
            rep + 1,
            m.errors,
            m.done
        );
        res.fault(kind, what);
    }
    res.push(kind, test, m);
}

/// Each rep, each implementation (rotated) on a fresh proxy.
fn rotate_idle(env: &Env<'_>, backends: &Backends, kinds: &[Impl], res: &mut Results) {
    let (reps, k) = (res.settings.reps, res.settings.idle);
    for rep in 0..reps {
        for i in 0..kinds.len() {
            let kind = kinds[(i + rep as usize) % kinds.len()];
            let measured = Proxy::start(kind, env)
                .and_then(|mut proxy| idle::measure(env.rt, &mut proxy, backends, k));
            match measured {
                Ok(m) => {
                    if let Some(idle) = m.idle {
                        let growth =
                            idle.held_kib.saturating_sub(idle.before_kib) as f64 / k as f64;
                        eprintln!(
                            "load: rep {}/{reps} idle   {:<8} {k} connections: RSS {} → {} KiB, {growth:.2} KiB/conn",
                            rep + 1,
                            kind.name(),
                            idle.before_kib,
                            idle.held_kib
                        );
                    }
                    res.push(kind, Test::Idle, m);
                }
                Err(e) => res.fault(kind, format!("{} idle: {e:#}", kind.name())),
            }
        }
    }
}
