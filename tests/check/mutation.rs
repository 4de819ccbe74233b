//! Mutation test: a few thousand deterministic mutations of the valid
//! fixtures (byte flips, truncations, duplicated, deleted and swapped
//! lines, huge numbers, deep nesting, YAML aliases, NUL, BOM, CRLF, tabs,
//! very long names, thousands of ports or addresses) through `svcproxy
//! check`, and a few hundred through a running `svcproxy run` as rewrites
//! of its manifest files. Every `check` exits 0 or 1 without a panic,
//! within a time and a memory bound; `run` never panics, keeps answering
//! `/healthz` and stays within a memory bound.
//!
//! The seed is fixed: a failure names the mutation and is reproduced by
//! running the test again. `check` takes many mutated files per run (one
//! file's fault never hides another's), so the whole test stays well
//! under a minute in a debug build.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::proxy::Proxy;
use crate::support::{self, Output, check, check_with_peak_rss};

mod mutate;

use mutate::{MUTATIONS, Rng};

const SEED: u64 = 0x5eed_1612_2026;
/// `check` runs, and mutated files in each: 2,400 mutations.
const CHECK_RUNS: usize = 20;
const FILES_PER_RUN: usize = 120;
/// Rewrites of `run`'s manifests, and files rewritten each round.
const RUN_ROUNDS: usize = 40;
const FILES_PER_ROUND: usize = 6;
/// One `check` run of [`FILES_PER_RUN`] files, debug build included.
const CHECK_RUN_BUDGET: Duration = Duration::from_secs(10);
/// Peak RSS of one `check` run, and the resident memory `run` may hold.
const CHECK_PEAK_KIB: u64 = 512 * 1024;
const RUN_RSS_KIB: u64 = 256 * 1024;

/// The valid fixtures: (file name, text).
fn fixtures() -> Vec<(String, String)> {
    let files = support::manifest_files(&support::root().join("tests/fixtures/valid"));
    assert!(files.len() >= 10, "expected the valid fixtures, found {files:?}");
    files
        .iter()
        .map(|f| {
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            (name, fs::read_to_string(f).expect("read fixture"))
        })
        .collect()
}

/// Writes one mutated fixture per file into `dir`; (path, mutation).
fn write_batch(
    dir: &Path,
    rng: &mut Rng,
    fixtures: &[(String, String)],
) -> Vec<(PathBuf, &'static str)> {
    (0..FILES_PER_RUN)
        .map(|i| {
            let (name, text) = &fixtures[rng.below(fixtures.len())];
            let (mutation, apply) = MUTATIONS[rng.below(MUTATIONS.len())];
            let path = dir.join(format!("m{i:03}-{mutation}-{name}"));
            fs::write(&path, apply(rng, text, fixtures)).expect("write mutation");
            (path, mutation)
        })
        .collect()
}

/// Fails unless `out` is an orderly end: exit 0 or 1, no panic.
fn orderly(out: &Output) -> bool {
    matches!(out.code(), Some(0 | 1)) && !out.stderr.contains("panicked")
}

/// After a failed run: `check` each file alone, and fail naming the first
/// one that fails by itself.
fn blame(batch: &[(PathBuf, &'static str)], out: &Output) -> ! {
    for (path, mutation) in batch {
        let alone = check([path]);
        if !orderly(&alone) || alone.elapsed > CHECK_RUN_BUDGET {
            panic!("mutation {mutation} ({}) breaks check:\n{alone}", path.display());
        }
    }
    panic!("a batch of mutations breaks check, no file alone does:\n{out}");
}

#[test]
fn thousands_of_mutated_manifests_never_break_check() {
    let fixtures = fixtures();
    let mut rng = Rng::new(SEED);
    for run in 0..CHECK_RUNS {
        let dir = tempfile::tempdir().expect("tempdir");
        let batch = write_batch(dir.path(), &mut rng, &fixtures);
        let (out, peak_kib) = check_with_peak_rss([dir.path()]);
        if !orderly(&out) || out.elapsed > CHECK_RUN_BUDGET {
            blame(&batch, &out);
        }
        assert!(peak_kib < CHECK_PEAK_KIB, "run {run}: peak RSS {peak_kib} KiB\n{out}");
    }
}

/// Rebuilds logged so far, published or failed (read from the log, not
/// scraped: a scrape per poll would measure the admin server).
fn reloads(proxy: &Proxy) -> usize {
    let log = proxy.log();
    log.matches("routing table published").count() + log.matches("rebuild failed").count()
}

#[test]
fn hundreds_of_mutated_rewrites_never_break_run() {
    let fixtures = fixtures();
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("manifests");
    fs::create_dir(&dir).expect("mkdir");
    for (name, text) in &fixtures {
        fs::write(dir.join(name), text).expect("write fixture");
    }
    let flags = ["--min-sync-period", "0s", "--service-cidr", "127.96.0.0/16"];
    let flags = [&flags[..], &["--nodeport-addresses", "127.0.0.1/32"]].concat();
    let mut proxy = Proxy::start_on(root, &dir, &flags);
    let mut seen = wait_reload(&mut proxy, 0);
    let mut rng = Rng::new(SEED ^ 0x00ff);
    for round in 0..RUN_ROUNDS {
        for _ in 0..FILES_PER_ROUND {
            let (name, text) = &fixtures[rng.below(fixtures.len())];
            let (_, apply) = MUTATIONS[rng.below(MUTATIONS.len())];
            rewrite(&dir.join(name), &apply(&mut rng, text, &fixtures), round % 2 == 0);
        }
        let before = seen;
        seen = wait_reload(&mut proxy, before);
        if round % 10 == 9 {
            assert_healthy(&mut proxy);
        }
    }
    for (name, text) in &fixtures {
        fs::write(dir.join(name), text).expect("restore fixture");
    }
    wait_reload(&mut proxy, seen);
    assert_healthy(&mut proxy);
    let log = proxy.log();
    assert!(!log.contains("panicked") && !log.contains("rebuild failed"), "{log}");
}

const READY: Duration = Duration::from_secs(10);

/// Rewrites `path` in place, or as editors do: a hidden file renamed over it.
fn rewrite(path: &Path, bytes: &[u8], by_rename: bool) {
    if by_rename {
        let tmp = path.with_file_name(".rewrite.tmp");
        fs::write(&tmp, bytes).expect("write");
        fs::rename(&tmp, path).expect("rename");
    } else {
        fs::write(path, bytes).expect("write");
    }
}

/// Waits until a reload after the `before`-th has been logged.
fn wait_reload(proxy: &mut Proxy, before: usize) -> usize {
    let until = std::time::Instant::now() + READY;
    loop {
        proxy.assert_running();
        let now = reloads(proxy);
        if now > before {
            return now;
        }
        assert!(std::time::Instant::now() < until, "no reload after {READY:?}\n{}", proxy.log());
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `/healthz` answers 200 and the proxy holds less than [`RUN_RSS_KIB`].
fn assert_healthy(proxy: &mut Proxy) {
    let admin = proxy.admin();
    let (status, body) = admin.healthz().unwrap_or_else(|e| panic!("{e}\n{}", proxy.log()));
    assert_eq!(status, 200, "{body}\n{}", proxy.log());
    let rss = proxy.rss_kib();
    assert!(rss < RUN_RSS_KIB, "svcproxy run holds {rss} KiB\n{}", proxy.log());
}
