//! CPU placement, as the shared bench does it: the proxy alone on the last
//! CPU this process may use, the bench (client and endpoints) on the
//! others, so the proxy's core does nothing but proxy. Needs `taskset`
//! and at least two CPUs; otherwise everything runs unpinned and the
//! report says so.

use std::io;
use std::process::{Command, Stdio};

use super::procfs;

/// Where things run.
#[derive(Clone, Debug)]
pub struct Pinning {
    /// The proxy's CPU; `None` when unpinned.
    pub proxy: Option<usize>,
    /// The CPUs of the client and the endpoints (this process).
    pub others: Vec<usize>,
    /// One line for the report.
    pub note: String,
}

// === impl Pinning ===

impl Pinning {
    /// Pins this process to the CPUs other than the proxy's, when it can.
    /// Call it before any thread starts: threads inherit the mask.
    pub fn apply(wanted: bool) -> Pinning {
        let allowed = procfs::allowed_cpus();
        let unpinned = |why: &str| Pinning {
            proxy: None,
            others: allowed.clone(),
            note: format!(
                "unpinned ({why}); proxy, client and endpoints share CPUs {}",
                list(&allowed)
            ),
        };
        if !wanted {
            return unpinned("--no-pin or smoke run");
        }
        if allowed.len() < 2 {
            return unpinned("fewer than 2 CPUs allowed");
        }
        let (proxy, others) = (allowed[allowed.len() - 1], allowed[..allowed.len() - 1].to_vec());
        match taskset_self(&others) {
            Ok(()) if procfs::allowed_cpus() == others => Pinning {
                proxy: Some(proxy),
                note: format!(
                    "proxy pinned to CPU {proxy} (taskset); client and endpoints on CPU {}",
                    list(&others)
                ),
                others,
            },
            Ok(()) => unpinned("taskset did not change the CPU mask"),
            Err(e) => unpinned(&format!("taskset: {e}")),
        }
    }

    /// `program` started through `taskset -c CPU` when pinned.
    pub fn command(&self, program: &str) -> Command {
        match self.proxy {
            Some(cpu) => {
                let mut cmd = Command::new("taskset");
                cmd.arg("-c").arg(cpu.to_string()).arg(program);
                cmd
            }
            None => Command::new(program),
        }
    }

    /// Worker threads each of the client and the endpoints get.
    pub fn bench_threads(&self) -> usize {
        (self.others.len() / 2).max(1)
    }

    /// Threads (or worker processes) each proxy gets: one on its pinned
    /// CPU, else one per CPU, as svcproxy does by itself.
    pub fn proxy_threads(&self) -> usize {
        if self.proxy.is_some() { 1 } else { self.others.len().max(1) }
    }
}

/// `taskset -a -p -c CPUS PID` on this process (every thread).
fn taskset_self(cpus: &[usize]) -> io::Result<()> {
    let status = Command::new("taskset")
        .args(["-a", "-p", "-c", &procfs::cpu_list(cpus), &std::process::id().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    if status.success() { Ok(()) } else { Err(io::Error::other(format!("exited {status}"))) }
}

fn list(cpus: &[usize]) -> String {
    procfs::cpu_list(cpus)
}
