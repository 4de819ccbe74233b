//! The benchmark's flow: pin, raise the descriptor limit, start the
//! endpoints and every available proxy in each mode the tests need (TCP,
//! HTTP), check them, then measure interleaved (`rotate`); last the idle
//! tests, each run on a fresh proxy. A peer that is missing or fails is
//! skipped with a note; svcproxy failing fails the run.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use tokio::runtime::Runtime;

use super::args::{Impl, Mode, Settings, Test};
use super::backend::Backends;
use super::pin::Pinning;
use super::procfs::Machine;
use super::proxy::{Env, Proxy};
use super::run::Measure;
use super::{h2load, launch, limits, peers, process, rotate};

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
    pub fn fault(&mut self, kind: Impl, what: String) {
        eprintln!("load: {what}");
        if kind == Impl::Svcproxy || self.settings.smoke {
            self.failures.push(what);
        } else {
            self.notes.push(what);
        }
    }

    pub fn push(&mut self, kind: Impl, test: Test, m: Measure) {
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
    let pairs = prepare(&mut res);
    measure(&env, &backends, &pairs, &mut res);
    res.elapsed = clock.elapsed();
    Ok(res)
}

/// The (implementation, mode) pairs that can run, the tests that can;
/// the versions noted.
fn prepare(res: &mut Results) -> Vec<(Impl, Mode)> {
    if res.settings.tests.contains(&Test::H2c) && !h2load_found(res) {
        res.settings.tests.retain(|&t| t != Test::H2c);
    }
    let pairs = available(&res.settings.clone(), res);
    let mut kinds: Vec<Impl> = pairs.iter().map(|&(k, _)| k).collect();
    kinds.dedup();
    res.versions = kinds.iter().map(|&k| (k, version(k))).collect();
    pairs
}

/// The load tests on proxies started once, then the idle tests.
fn measure(env: &Env<'_>, backends: &Backends, pairs: &[(Impl, Mode)], res: &mut Results) {
    let s = res.settings.clone();
    let load: Vec<Test> = s.tests.iter().copied().filter(|t| !t.is_idle()).collect();
    if !load.is_empty() {
        let wanted: Vec<(Impl, Mode)> =
            pairs.iter().copied().filter(|(_, m)| load.iter().any(|t| t.mode() == *m)).collect();
        let proxies = start_all(env, &wanted, res);
        if !s.smoke {
            rotate::warm_up(env, &proxies, &s);
        }
        rotate::load(env, proxies, &load, res);
    }
    for test in s.tests.iter().copied().filter(|t| t.is_idle()) {
        let kinds: Vec<Impl> =
            pairs.iter().filter(|(_, m)| *m == test.mode()).map(|&(k, _)| k).collect();
        rotate::idle(env, backends, test, &kinds, res);
    }
}

/// `s` cut to the descriptor budget; the soft limit, and notes on what
/// was cut.
fn fit(mut s: Settings) -> (Settings, u64, Vec<String>) {
    let idle = if s.tests.iter().any(|t| t.is_idle()) { s.idle } else { 0 };
    let budget = limits::budget(s.services, idle);
    (s.services, s.idle) = (budget.services, budget.idle);
    let mut notes = budget.notes;
    if s.idle == 0 && s.tests.iter().any(|t| t.is_idle()) {
        s.tests.retain(|t| !t.is_idle());
        notes.push("idle tests skipped: no descriptors left for their connections".to_owned());
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

/// The requested implementations that can run here, in each mode the
/// tests need; notes for the others.
fn available(s: &Settings, res: &mut Results) -> Vec<(Impl, Mode)> {
    let mut modes: Vec<Mode> = s.tests.iter().map(|t| t.mode()).collect();
    modes.sort();
    modes.dedup();
    let mut pairs = Vec::new();
    for &kind in &s.impls {
        for &mode in &modes {
            match launch::missing(kind, mode) {
                Some(why) => {
                    res.notes.push(format!("{} ({}) skipped: {why}", kind.name(), mode.name()))
                }
                None => pairs.push((kind, mode)),
            }
        }
    }
    pairs
}

/// Whether h2load is on PATH; a fault when not (a failure in the smoke,
/// which CI runs with it installed).
fn h2load_found(res: &mut Results) -> bool {
    let found = peers::which(h2load::PROGRAM).is_some();
    if !found {
        let what = "h2c skipped: h2load is not on PATH (Debian: nghttp2-client)".to_owned();
        if res.settings.smoke { res.failures.push(what) } else { res.notes.push(what) }
    }
    found
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
fn start_all(env: &Env<'_>, wanted: &[(Impl, Mode)], res: &mut Results) -> Vec<Proxy> {
    let mut proxies = Vec::new();
    for &(kind, mode) in wanted {
        let started = Proxy::start(kind, mode, env).and_then(|p| Ok((p.check(env.rt)?, p)));
        match started {
            Ok((seen, proxy)) => {
                let mut distinct = seen.clone();
                distinct.sort_unstable();
                distinct.dedup();
                if distinct.len() < env.endpoints.len() {
                    res.notes.push(format!(
                        "{} sent 6 new connections to endpoints {seen:?}: not all three",
                        proxy.name()
                    ));
                }
                if mode == Mode::Http && proxy.h2c.is_none() {
                    res.notes.push(format!("{}: no HTTP/2, no h2c test", proxy.name()));
                }
                eprintln!(
                    "load: {} serving on {} (endpoints {seen:?})",
                    proxy.name(),
                    proxy.listen
                );
                proxies.push(proxy);
            }
            Err(e) => {
                res.fault(kind, format!("{} ({}) could not start: {e:#}", kind.name(), mode.name()))
            }
        }
    }
    proxies
}
