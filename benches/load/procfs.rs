//! What `/proc` says about a process tree and the machine: CPU time
//! (utime + stime, every thread), resident memory, per-CPU busy time, the
//! CPUs this process may use, the CPU model and the kernel.

use std::fs;
use std::process::Command;
use std::sync::OnceLock;

/// A process's CPU time and identity, from `/proc/PID/stat`.
#[derive(Clone, Copy, Debug)]
pub struct Stat {
    pub ppid: u32,
    /// utime + stime of every thread, live or exited, in clock ticks.
    pub ticks: u64,
    /// Start time since boot, in clock ticks: with the pid, identifies the
    /// process across pid reuse.
    pub start: u64,
    pub zombie: bool,
}

/// The machine, for the report's header.
pub struct Machine {
    pub online: usize,
    pub allowed: Vec<usize>,
    pub cpu_model: String,
    pub kernel: String,
    /// `net.ipv4.tcp_congestion_control`: under `bbr` without an `fq`
    /// qdisc TCP paces with a timer per packet, which moves bulk figures.
    pub congestion: String,
}

/// `/proc/PID/stat`; `None` once the process is gone.
pub fn stat(pid: u32) -> Option<Stat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: fields
    // are counted from the last ')'. fields[0] is field 3 (state).
    let fields: Vec<&str> = text.get(text.rfind(')')? + 2..)?.split_whitespace().collect();
    let num = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    Some(Stat {
        ppid: u32::try_from(num(1)?).ok()?,
        ticks: num(11)? + num(12)?,
        start: num(19)?,
        zombie: fields.first() == Some(&"Z"),
    })
}

/// `pid` and every descendant of it, with their start times.
pub fn tree(pid: u32) -> Vec<(u32, u64)> {
    let mut all = Vec::new();
    if let Ok(dir) = fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(p) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            if let Some(s) = stat(p) {
                all.push((p, s));
            }
        }
    }
    let mut out: Vec<(u32, u64)> =
        all.iter().filter(|(p, _)| *p == pid).map(|(p, s)| (*p, s.start)).collect();
    let mut i = 0;
    while i < out.len() {
        let parent = out[i].0;
        out.extend(all.iter().filter(|(_, s)| s.ppid == parent).map(|(p, s)| (*p, s.start)));
        i += 1;
    }
    out
}

/// CPU seconds (user + system, all threads) of `pid` and its descendants
/// (nginx: the master and its workers).
pub fn tree_cpu_s(pid: u32) -> f64 {
    let ticks: u64 = tree(pid).iter().filter_map(|(p, _)| stat(*p)).map(|s| s.ticks).sum();
    ticks as f64 / clock_ticks() as f64
}

/// VmRSS of `pid` and its descendants, in KiB.
pub fn tree_rss_kib(pid: u32) -> u64 {
    tree(pid).iter().filter_map(|(p, _)| rss_kib(*p)).sum()
}

/// VmRSS of one process, in KiB; `None` when gone (or a zombie).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.split_whitespace().next()?.parse().ok()
}

/// True while `pid` is the process that started at `start` and has not exited.
pub fn alive(pid: u32, start: u64) -> bool {
    stat(pid).is_some_and(|s| s.start == start && !s.zombie)
}

/// Busy and total jiffies of one CPU since boot, from `/proc/stat`. Busy
/// is everything but idle and iowait, so it includes the softirq time
/// that loopback traffic costs and that `/proc/PID/stat` charges to nobody.
pub fn cpu_jiffies(cpu: usize) -> Option<(u64, u64)> {
    let text = fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().find(|l| l.split_whitespace().next() == Some(&format!("cpu{cpu}")))?;
    let v: Vec<u64> =
        line.split_whitespace().skip(1).take(8).filter_map(|f| f.parse().ok()).collect();
    let total: u64 = v.iter().sum();
    let idle = v.get(3)? + v.get(4)?;
    Some((total - idle, total))
}

/// Clock ticks per second (USER_HZ) from `getconf`; Linux fixes it at 100
/// on every mainstream architecture, the fallback.
pub fn clock_ticks() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|&t| t > 0)
            .unwrap_or(100)
    })
}

/// The CPUs this process may run on (`Cpus_allowed_list`).
pub fn allowed_cpus() -> Vec<usize> {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let list = status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).unwrap_or("");
    parse_cpu_list(list.trim())
}

/// `0-2,5` → `[0, 1, 2, 5]`; malformed parts are skipped.
pub fn parse_cpu_list(list: &str) -> Vec<usize> {
    let mut cpus = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) {
            cpus.extend(a..=b);
        }
    }
    cpus
}

/// `[0, 1, 2, 5]` → `0,1,2,5` (what taskset reads).
pub fn cpu_list(cpus: &[usize]) -> String {
    cpus.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
}

impl Machine {
    pub fn read() -> Machine {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let online = cpuinfo.lines().filter(|l| l.starts_with("processor")).count();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name")?.split_once(':').map(|(_, m)| m.trim()))
            .unwrap_or("unknown CPU")
            .to_owned();
        let version = fs::read_to_string("/proc/version").unwrap_or_default();
        // "Linux version 6.1.0-... (builder@host) (gcc ...) #1 SMP ...": the first three words.
        let kernel = version.split_whitespace().take(3).collect::<Vec<_>>().join(" ");
        let congestion = fs::read_to_string("/proc/sys/net/ipv4/tcp_congestion_control")
            .map(|c| c.trim().to_owned())
            .unwrap_or_else(|_| "unknown".to_owned());
        Machine { online, allowed: allowed_cpus(), cpu_model, kernel, congestion }
    }
}
