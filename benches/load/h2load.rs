//! The h2c test's client: `h2load` (nghttp2; `scripts/deps` installs it)
//! against one proxy's h2c address, a few connections with many streams
//! each, on the bench's CPUs (it inherits the bench's CPU mask). Its
//! measuring phase is started before the bench's window and ends after
//! it; the window counts the requests its per-request log says ended
//! inside it, and their latencies (request start → response end).

use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::args::Settings;
use super::backend::{SMALL_BODY, SMALL_PATH};
use super::pin::Pinning;
use super::process::Process;
use super::proxy::Proxy;
use super::run::{self, Measure, Sample, Work};

/// The program.
pub const PROGRAM: &str = "h2load";

/// Runs h2load against `proxy`'s h2c address: the window's figures.
pub fn load(proxy: &Proxy, pin: &Pinning, s: &Settings) -> Result<Measure> {
    let target = proxy.h2c.with_context(|| format!("{} has no h2c address", proxy.name()))?;
    let log = proxy.dir.join("h2load.tsv");
    let _ = fs::remove_file(&log);
    let start = Instant::now() + s.warmup;
    let end = start + s.duration;
    let mut client =
        Process::spawn(PROGRAM, command(target, &log, s), &proxy.dir.join("h2load.out"))?;
    let (pid, core) = (proxy.process.pid(), pin.proxy);
    sleep_until(start);
    let first = run::sample(pid, core);
    sleep_until(end);
    let last = run::sample(pid, core);
    // h2load stops on its own a tail after the window.
    client.wait_exit(s.duration + s.warmup + Duration::from_secs(10))?;
    let summary = client.log_text();
    let mut work = window(&fs::read_to_string(&log).context("h2load's log")?, &first, &last);
    work.errors += failed(&summary)?;
    Ok(run::measure(&first, &last, work, &proxy.process))
}

/// `h2load -c C -m M -t 1`, its measuring phase from half the warm-up to
/// a tail after the window, logging every request to `log`.
fn command(target: SocketAddr, log: &Path, s: &Settings) -> Command {
    let half = s.warmup / 2;
    let tail = (s.duration / 10).max(Duration::from_millis(100));
    let ms = |d: Duration| format!("{}ms", d.as_millis().max(1));
    let mut cmd = Command::new(PROGRAM);
    cmd.arg("-c")
        .arg(s.h2c_conns.to_string())
        .arg("-m")
        .arg(s.h2c_streams.to_string())
        .arg("-t")
        .arg("1")
        .arg("--warm-up-time")
        .arg(ms(half))
        .arg("-D")
        .arg(ms(s.warmup - half + s.duration + tail))
        .arg("--log-file")
        .arg(log)
        .arg(format!("http://{target}{SMALL_PATH}"));
    cmd
}

/// The requests of h2load's log (`start µs \t status \t µs to the
/// response's end`) that ended between `first` and `last`: 200s counted
/// with their latency, other statuses as errors. Status 0 marks a stream
/// h2load's warm-up began: its status was not recorded.
fn window(log: &str, first: &Sample, last: &Sample) -> Work {
    let mut work = Work { done: 0, bytes: 0, errors: 0, latencies: Vec::new() };
    for line in log.lines() {
        let mut fields = line.split('\t').map(|f| f.trim().parse::<u64>().ok());
        let (Some(Some(start)), Some(Some(status)), Some(Some(took))) =
            (fields.next(), fields.next(), fields.next())
        else {
            work.errors += 1;
            continue;
        };
        if !(first.wall_us..=last.wall_us).contains(&(start + took)) {
            continue;
        }
        match status {
            200 => {
                work.done += 1;
                work.bytes += SMALL_BODY.len() as u64;
                work.latencies.push(u32::try_from(took).unwrap_or(u32::MAX));
            }
            0 => {}
            _ => work.errors += 1,
        }
    }
    work.latencies.sort_unstable();
    work
}

/// Failed (errored included) and timed-out requests from h2load's
/// summary line `requests: N total, N started, N done, N succeeded, N
/// failed, N errored, N timeout`.
fn failed(summary: &str) -> Result<u64> {
    let Some(line) = summary.lines().find(|l| l.starts_with("requests:")) else {
        bail!("h2load printed no summary:\n{summary}");
    };
    let mut sum = 0;
    for part in line.trim_start_matches("requests:").split(',') {
        let mut words = part.split_whitespace();
        let (Some(n), Some(what)) = (words.next(), words.next()) else { continue };
        if matches!(what, "failed" | "timeout") {
            sum += n.parse::<u64>().with_context(|| format!("h2load: {line}"))?;
        }
    }
    Ok(sum)
}

/// Sleeps until `at` (the window's ends: a measurement, not a wait for
/// readiness).
fn sleep_until(at: Instant) {
    std::thread::sleep(at.saturating_duration_since(Instant::now()));
}
