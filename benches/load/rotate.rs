//! The measuring order: rep → test → implementation, the order rotated by
//! one each rep, so the machine's noise hits all alike. Each test runs on
//! the proxies of its mode; each idle run on a fresh proxy.

use std::time::Duration;

use super::args::{Impl, Settings, Test};
use super::backend::Backends;
use super::bench::Results;
use super::idle;
use super::proxy::{Env, Proxy};
use super::run::{self, Measure};

/// A short run of each proxy's heaviest tests, not recorded: page cache,
/// allocator pools, lazily grown buffers and connection pools settle
/// before the first measured run.
pub fn warm_up(env: &Env<'_>, proxies: &[Proxy], s: &Settings) {
    let short = Settings { duration: s.duration.min(Duration::from_millis(500)), ..s.clone() };
    let tests = [Test::Ka, Test::Bulk1m, Test::HttpKa, Test::H2c];
    for proxy in proxies {
        for &test in tests.iter().filter(|t| t.mode() == proxy.mode && s.tests.contains(t)) {
            if test != Test::H2c || proxy.h2c.is_some() {
                let _ = run::test(env.rt, test, proxy, env.pin, &short);
            }
        }
    }
}

/// Every load test on the proxies of its mode; a proxy that fails is
/// stopped and left out of the rest.
pub fn load(env: &Env<'_>, proxies: Vec<Proxy>, tests: &[Test], res: &mut Results) {
    let mut slots: Vec<Option<Proxy>> = proxies.into_iter().map(Some).collect();
    for rep in 0..res.settings.reps {
        for &test in tests {
            let mine: Vec<usize> = (0..slots.len())
                .filter(|&i| slots[i].as_ref().is_some_and(|p| runs(p, test)))
                .collect();
            for i in 0..mine.len() {
                let at = mine[(i + rep as usize) % mine.len()];
                let Some(proxy) = slots[at].as_mut() else { continue };
                let s = &res.settings;
                let measured = run::test(env.rt, test, proxy, env.pin, s)
                    .and_then(|m| proxy.process.check_running().map(|()| m));
                let kind = proxy.kind;
                match measured {
                    Ok(m) => record(res, kind, test, rep, m),
                    Err(e) => {
                        res.fault(kind, format!("{} {}: {e:#}", proxy.name(), test.name()));
                        slots[at] = None;
                    }
                }
            }
        }
    }
}

/// Whether `test` runs on `proxy`: its mode, and an h2c address for h2c.
fn runs(proxy: &Proxy, test: Test) -> bool {
    proxy.mode == test.mode() && (test != Test::H2c || proxy.h2c.is_some())
}

/// Logs one run and keeps it; errors inside the window are a fault.
fn record(res: &mut Results, kind: Impl, test: Test, rep: u32, m: Measure) {
    let rate = m.done as f64 / m.secs.max(1e-9);
    let cpu = m.proxy_cpu_s * 1e6 / (m.done.max(1) as f64);
    eprintln!(
        "load: rep {}/{} {:<10} {:<8} {rate:>9.0}/s  p99 {:>6.0} µs  proxy {cpu:>6.1} µs/op  errors {}",
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

/// The idle `test`: each rep, each implementation (rotated) on a fresh
/// proxy in the test's mode.
pub fn idle(env: &Env<'_>, backends: &Backends, test: Test, kinds: &[Impl], res: &mut Results) {
    let (reps, k) = (res.settings.reps, res.settings.idle);
    for rep in 0..reps {
        for i in 0..kinds.len() {
            let kind = kinds[(i + rep as usize) % kinds.len()];
            let measured = Proxy::start(kind, test.mode(), env)
                .and_then(|proxy| idle::measure(env.rt, proxy, backends, k));
            match measured {
                Ok(m) => {
                    if let Some(idle) = m.idle {
                        let growth =
                            idle.held_kib.saturating_sub(idle.before_kib) as f64 / k as f64;
                        eprintln!(
                            "load: rep {}/{reps} {:<10} {:<8} {k} connections: RSS {} → {} KiB, {growth:.2} KiB/conn",
                            rep + 1,
                            test.name(),
                            kind.name(),
                            idle.before_kib,
                            idle.held_kib
                        );
                    }
                    res.push(kind, test, m);
                }
                Err(e) => res.fault(kind, format!("{} {}: {e:#}", kind.name(), test.name())),
            }
        }
    }
}
