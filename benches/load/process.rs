//! A child process the bench started (a proxy under test), its log file,
//! and the guarantee that it dies with the bench: dropping the guard
//! (normal exit, error or panic) kills the child and every descendant it
//! had (nginx's workers), by pid and start time, never by name.
//!
//! SIGINT, SIGTERM or SIGHUP to the bench (where no destructor runs) kills
//! every child still registered, removes the work directory and exits 130.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use parking_lot::Mutex;
use tokio::runtime::Runtime;
use tokio::signal::unix::{SignalKind, signal};

use super::procfs;

/// The pid of every child not yet dropped, for the signal handler.
static CHILDREN: Mutex<Vec<u32>> = parking_lot::const_mutex(Vec::new());

/// A running child; killed with its descendants when dropped.
pub struct Process {
    name: String,
    child: Child,
    log: PathBuf,
}

// === impl Process ===

impl Process {
    /// Starts `cmd` with stdout and stderr going to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Result<Process> {
        let out = File::create(log).with_context(|| format!("{}", log.display()))?;
        let err = out.try_clone()?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = cmd.spawn().with_context(|| format!("cannot start {name}: {cmd:?}"))?;
        CHILDREN.lock().push(child.id());
        Ok(Process { name: name.to_owned(), child, log: log.to_owned() })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// An error carrying the log's tail once the process has exited.
    pub fn check_running(&mut self) -> Result<()> {
        if let Ok(Some(status)) = self.child.try_wait() {
            bail!("{} exited ({status}); log tail:\n{}", self.name, self.log_tail(15));
        }
        Ok(())
    }

    /// Retries `probe` until it succeeds, within `deadline`; fails with
    /// the last error and the log's tail if the deadline passes or the
    /// process exits.
    pub fn wait_ready<T>(
        &mut self,
        deadline: Duration,
        mut probe: impl FnMut() -> Result<T>,
    ) -> Result<T> {
        let until = Instant::now() + deadline;
        loop {
            self.check_running()?;
            match probe() {
                Ok(value) => return Ok(value),
                Err(e) if Instant::now() >= until => {
                    bail!(
                        "{} not ready after {deadline:?}: {e:#}\n{}",
                        self.name,
                        self.log_tail(15)
                    )
                }
                Err(_) => thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// Waits for the process to exit on its own within `deadline`; fails
    /// with the log's tail if it does not, or exits with a failure.
    pub fn wait_exit(&mut self, deadline: Duration) -> Result<()> {
        let until = Instant::now() + deadline;
        loop {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    bail!("{} exited ({status}); log tail:\n{}", self.name, self.log_tail(15));
                }
                return Ok(());
            }
            if Instant::now() >= until {
                bail!("{} still running after {deadline:?}:\n{}", self.name, self.log_tail(15));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// VmRSS of the process and its descendants, in KiB.
    pub fn rss_kib(&self) -> u64 {
        procfs::tree_rss_kib(self.pid())
    }

    /// The log file's text (terminal colour codes removed).
    pub fn log_text(&self) -> String {
        strip_ansi(&fs::read_to_string(&self.log).unwrap_or_default())
    }

    /// The last `n` lines of the log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let pid = self.child.id();
        kill_tree(pid, &mut self.child);
        CHILDREN.lock().retain(|&p| p != pid);
    }
}

/// Kills `pid` (our child) and every descendant it has now. Descendants
/// are found first, while the parent still links them: once it dies they
/// are re-parented and could no longer be told apart.
fn kill_tree(pid: u32, child: &mut Child) {
    let family = procfs::tree(pid);
    let _ = child.kill();
    let _ = child.wait();
    kill_left(&family, pid);
}

/// SIGKILL to each of `family` but `except` that is still the process it was.
fn kill_left(family: &[(u32, u64)], except: u32) {
    let left: Vec<String> = family
        .iter()
        .filter(|(p, start)| *p != except && procfs::alive(*p, *start))
        .map(|(p, _)| p.to_string())
        .collect();
    if !left.is_empty() {
        let _ = Command::new("kill").arg("-KILL").args(&left).stderr(Stdio::null()).status();
    }
}

/// On SIGINT, SIGTERM or SIGHUP: kills every registered child with its
/// descendants, removes `workdir`, exits 130.
pub fn stop_all_on_signal(rt: &Runtime, workdir: PathBuf) -> Result<()> {
    let _enter = rt.enter();
    let mut signals = Vec::new();
    for kind in [SignalKind::interrupt(), SignalKind::terminate(), SignalKind::hangup()] {
        signals.push(signal(kind).context("install a signal handler")?);
    }
    rt.spawn(async move {
        let [int, term, hup] = &mut signals[..] else { return };
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
            _ = hup.recv() => {}
        }
        eprintln!("load: interrupted: stopping every proxy");
        for pid in CHILDREN.lock().drain(..) {
            // Not our Child handle (main owns it): by pid, its start checked.
            let family = procfs::tree(pid);
            kill_left(&family, 0);
        }
        let _ = fs::remove_dir_all(&workdir);
        std::process::exit(130);
    });
    Ok(())
}

/// `text` without terminal colour codes (`ESC [ ... letter`).
fn strip_ansi(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
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
