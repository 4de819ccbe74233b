//! `svcproxy run` as a test fixture (the manifests it reads come from
//! `support::manifests`).
//!
//! A [`Proxy`] owns a temporary manifests directory and the child process;
//! the child's stdout and stderr go to a log file in that directory, shown
//! when the test fails (from `Drop`, while the test panics) or on demand.
//! Dropping the guard kills the child: no test leaves a proxy behind.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::OnceCell;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::admin::Admin;
use super::manifests::{slow_first_build, write_file};

/// How long a proxy may take to serve its first frontend.
pub const READY: Duration = Duration::from_secs(10);

/// A running `svcproxy run`; killed when dropped.
pub struct Proxy {
    child: Child,
    dir: TempDir,
    log: PathBuf,
    /// The admin addresses, once read from the log.
    admin: OnceCell<Admin>,
}

// === impl Proxy ===

impl Proxy {
    /// Starts `svcproxy run --manifests DIR` with `manifests` as DIR's only
    /// file, the admin servers on ephemeral ports, and `extra` flags.
    pub fn start(manifests: &str, extra: &[&str]) -> Proxy {
        let dir = tempfile::tempdir().expect("temp dir");
        let (cmd, log) = command(dir.path(), manifests, extra);
        Proxy::spawn(cmd, dir, log)
    }

    /// Starts `svcproxy run --manifests MANIFESTS` on a path the test
    /// prepared (a ConfigMap-style tree, say), logging into `dir`, which
    /// the guard keeps until dropped; the admin servers on ephemeral ports.
    pub fn start_on(dir: TempDir, manifests: &Path, extra: &[&str]) -> Proxy {
        let (cmd, log) = command_on(dir.path(), manifests, extra);
        Proxy::spawn(cmd, dir, log)
    }

    /// Starts `svcproxy run ARGS` with no manifests of its own (the API
    /// server as a source, say), the admin servers on ephemeral ports,
    /// logging into a temporary directory the guard keeps.
    pub fn start_args(args: &[&str]) -> Proxy {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut cmd, log) = logging(dir.path());
        cmd.arg("run").args(args);
        Proxy::spawn(cmd, dir, log)
    }

    /// Starts the proxy on [`slow_first_build`]'s 10,000 headless
    /// Services, one JSON file: its first Snapshot takes a second or so,
    /// time to probe or signal a proxy that has published nothing yet.
    pub fn start_with_a_slow_first_build() -> Proxy {
        let root = tempfile::tempdir().expect("temp dir");
        let dir = root.path().join("manifests");
        write_file(&dir.join("slow.json"), &slow_first_build(10_000));
        Proxy::start_on(root, &dir, &[])
    }

    fn spawn(mut cmd: Command, dir: TempDir, log: PathBuf) -> Proxy {
        cmd.args([
            "--metrics-bind-address",
            "127.0.0.1:0",
            "--healthz-bind-address",
            "127.0.0.1:0",
        ]);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        Proxy { child, dir, log, admin: OnceCell::new() }
    }

    /// Starts the proxy and waits until `probe` succeeds (see [`Self::wait_ready`]).
    pub fn serving<T>(
        manifests: &str,
        extra: &[&str],
        probe: impl FnMut() -> io::Result<T>,
    ) -> (Proxy, T) {
        let mut proxy = Proxy::start(manifests, extra);
        let value = proxy.wait_ready(probe);
        (proxy, value)
    }

    /// Retries `probe` (a full exchange through a frontend) until it
    /// succeeds, within [`READY`]; panics with the proxy's log if the
    /// deadline passes or the proxy exits.
    pub fn wait_ready<T>(&mut self, mut probe: impl FnMut() -> io::Result<T>) -> T {
        let until = Instant::now() + READY;
        loop {
            self.assert_running();
            match probe() {
                Ok(value) => return value,
                Err(e) if Instant::now() >= until => {
                    panic!("proxy not serving after {READY:?}: {e}\n{}", self.log())
                }
                Err(_) => thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// Panics, with the log, if the proxy has exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("svcproxy run exited ({status})\n{}", self.log());
        }
    }

    /// Everything the proxy wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        let text = read_log(&self.log);
        format!("--- svcproxy run log ({}):\n{text}", self.log.display())
    }

    /// The manifests directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The file [`Proxy::start`] wrote: `DIR/manifests/services.yaml`.
    pub fn manifest(&self) -> PathBuf {
        self.dir.path().join("manifests").join("services.yaml")
    }

    /// The process id of the proxy.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (`HUP`, `TERM`, `INT`) to the proxy with kill(1).
    /// Panics if the proxy was already reaped (its pid may be reused).
    pub fn signal(&mut self, signal: &str) {
        self.assert_running();
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .stdin(Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("cannot run kill -{signal}: {e}"));
        assert!(status.success(), "kill -{signal} {} failed: {status}\n{}", self.pid(), self.log());
    }

    /// Waits up to `deadline` for the proxy to exit; `None` if it still
    /// runs then (the guard kills it when dropped).
    pub fn wait_exit(&mut self, deadline: Duration) -> Option<ExitStatus> {
        let until = Instant::now() + deadline;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return Some(status);
            }
            if Instant::now() >= until {
                return None;
            }
            thread::sleep(Duration::from_millis(2));
        }
    }

    /// True while the proxy has not exited.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().expect("wait").is_none()
    }

    /// The admin addresses, from the startup log line (waiting for it up
    /// to [`READY`]).
    pub fn admin(&mut self) -> Admin {
        if let Some(admin) = self.admin.get() {
            return *admin;
        }
        let until = Instant::now() + READY;
        let admin = loop {
            if let Some(admin) = Admin::from_log(&read_log(&self.log)) {
                break admin;
            }
            self.assert_running();
            assert!(
                Instant::now() < until,
                "no admin endpoints line after {READY:?}\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(10));
        };
        *self.admin.get_or_init(|| admin)
    }

    /// The value of one series on `/metrics`; panics with the log if it
    /// cannot be read.
    pub fn metric(&mut self, series: &str) -> f64 {
        let admin = self.admin();
        admin.sample(series).unwrap_or_else(|e| panic!("{e}\n{}", self.log()))
    }

    /// True when some WARN line of the log names every one of `parts`.
    pub fn warned(&self, parts: &[&str]) -> bool {
        let log = read_log(&self.log);
        log.lines().any(|l| l.contains("WARN") && parts.iter().all(|p| l.contains(p)))
    }

    /// Fails, with the log, unless some WARN line names every one of `parts`.
    pub fn assert_warned(&self, parts: &[&str]) {
        assert!(self.warned(parts), "no WARN line names all of {parts:?}\n{}", self.log());
    }

    /// Sends SIGHUP, one at a time, until `svcproxy_routing_generation`
    /// reaches `target` (each re-read waited for, so none coalesce).
    pub fn hup_to_generation(&mut self, target: u64) {
        const GENERATION: &str = "svcproxy_routing_generation";
        let mut generation = self.metric(GENERATION);
        while generation < target as f64 {
            self.signal("HUP");
            generation = self.wait_metric(GENERATION, Duration::from_secs(5), |v| v > generation);
        }
    }

    /// The proxy's resident memory (VmRSS), in KiB.
    pub fn rss_kib(&self) -> u64 {
        let path = format!("/proc/{}/status", self.pid());
        let status = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no VmRSS in {path}"))
    }

    /// Polls `series` until `done(value)` holds, within `deadline`; the
    /// value then. Panics with the last value and the log past the deadline.
    pub fn wait_metric(
        &mut self,
        series: &str,
        deadline: Duration,
        done: impl Fn(f64) -> bool,
    ) -> f64 {
        let until = Instant::now() + deadline;
        loop {
            let value = self.metric(series);
            if done(value) {
                return value;
            }
            assert!(
                Instant::now() < until,
                "{series} is still {value} after {deadline:?}\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(2));
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // Our own child, by its handle.
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!("{}", self.log());
        }
    }
}

/// `svcproxy run --manifests DIR/manifests extra...`, its output going to
/// a log file in `dir` (returned); DIR/manifests holds `manifests`.
pub fn command(dir: &Path, manifests: &str, extra: &[&str]) -> (Command, PathBuf) {
    let manifests_dir = dir.join("manifests");
    std::fs::create_dir_all(&manifests_dir).expect("manifests dir");
    std::fs::write(manifests_dir.join("services.yaml"), manifests).expect("write manifests");
    command_on(dir, &manifests_dir, extra)
}

/// `svcproxy run --manifests MANIFESTS extra...`, its output going to a log
/// file in `dir` (returned).
pub fn command_on(dir: &Path, manifests_dir: &Path, extra: &[&str]) -> (Command, PathBuf) {
    let (mut cmd, log) = logging(dir);
    cmd.arg("run").arg("--manifests").arg(manifests_dir).args(extra);
    (cmd, log)
}

/// `svcproxy` with no argument yet, its output going to a log file in
/// `dir` (returned).
fn logging(dir: &Path) -> (Command, PathBuf) {
    let log = dir.join("svcproxy.log");
    let out = File::create(&log).expect("log file");
    let err = out.try_clone().expect("log file");
    let mut cmd = super::command();
    if let Ok(level) = std::env::var("SVCPROXY_TEST_RUST_LOG") {
        cmd.env("RUST_LOG", level);
    }
    cmd.stdout(Stdio::from(out)).stderr(Stdio::from(err));
    (cmd, log)
}

/// Runs `svcproxy run` with exactly `args` after `--manifests DIR`, to its
/// exit within `deadline`; its status and log. Kills it and fails past the
/// deadline.
pub fn run_to_exit(manifests: &str, args: &[&str], deadline: Duration) -> (ExitStatus, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut cmd, log) = command(dir.path(), manifests, args);
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let until = Instant::now() + deadline;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() >= until {
            let _ = child.kill();
            let _ = child.wait();
            let text = read_log(&log);
            panic!("svcproxy run still running after {deadline:?}; log:\n{text}");
        }
        thread::sleep(Duration::from_millis(10));
    };
    (status, read_log(&log))
}

/// The log file's text without terminal colour codes (`ESC [ ... letter`),
/// which a log written to a file may still carry.
fn read_log(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // Skip the parameters up to the final letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}
