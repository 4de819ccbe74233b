//! The `process_*` families every Prometheus client exports (names, types
//! and help as the Go and Rust clients write them), read from `/proc/self`
//! at scrape time: descriptors open and their limit, memory, CPU time,
//! threads, start time.
//!
//! Ours rather than the prometheus crate's `process` feature: that one
//! pulls procfs with a second, older rustix into the tree, and counts CPU
//! time in whole seconds, too coarse for `rate()` over a scrape interval.
//! A file that cannot be read or parsed leaves its families out.

use std::fmt::Write as _;

use super::traffic::header;

/// The fields of `/proc/self/stat` the families use.
#[derive(Debug, Default, PartialEq, Eq)]
struct Stat {
    /// User and system time, in clock ticks.
    utime: u64,
    stime: u64,
    threads: u64,
    /// Since boot, in clock ticks.
    starttime: u64,
    /// Virtual memory, in bytes.
    vsize: u64,
    /// Resident set, in pages.
    rss: u64,
}

/// Appends every family that can be read now.
pub(super) fn render(out: &mut String) {
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        let open = fds.count();
        family(out, "process_open_fds", "gauge", "Number of open file descriptors.", open);
    }
    if let Ok((soft, _)) = rlimit::getrlimit(rlimit::Resource::NOFILE) {
        let help = "Maximum number of open file descriptors.";
        family(out, "process_max_fds", "gauge", help, soft);
    }
    let Some(stat) = std::fs::read_to_string("/proc/self/stat").ok().and_then(|s| parse_stat(&s))
    else {
        return;
    };
    let ticks = rustix::param::clock_ticks_per_second().max(1) as f64;
    let cpu = (stat.utime + stat.stime) as f64 / ticks;
    let help = "Total user and system CPU time spent in seconds.";
    family(out, "process_cpu_seconds_total", "counter", help, cpu);
    let help = "Virtual memory size in bytes.";
    family(out, "process_virtual_memory_bytes", "gauge", help, stat.vsize);
    let rss = stat.rss.saturating_mul(rustix::param::page_size() as u64);
    family(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", rss);
    let help = "Number of OS threads in the process.";
    family(out, "process_threads", "gauge", help, stat.threads);
    if let Some(boot) = std::fs::read_to_string("/proc/stat").ok().and_then(|s| boot_time(&s)) {
        let start = boot as f64 + stat.starttime as f64 / ticks;
        let help = "Start time of the process since unix epoch in seconds.";
        family(out, "process_start_time_seconds", "gauge", help, start);
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    header(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

/// The fields of a `/proc/<pid>/stat` line; the command name, which may
/// hold spaces and parentheses, ends at the last `)`.
fn parse_stat(text: &str) -> Option<Stat> {
    let (_, rest) = text.rsplit_once(')')?;
    // Fields from the third (state) on: proc(5) numbers them from 1.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(Stat {
        utime: field(14)?,
        stime: field(15)?,
        threads: field(20)?,
        starttime: field(22)?,
        vsize: field(23)?,
        rss: field(24)?,
    })
}

/// Boot time, in seconds since the epoch: `/proc/stat`'s `btime` line.
fn boot_time(text: &str) -> Option<u64> {
    text.lines().find_map(|l| l.strip_prefix("btime ")).and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::{Stat, boot_time, parse_stat};

    #[test]
    fn a_stat_line_with_spaces_and_parentheses_in_the_command_parses() {
        let line = "4242 (svc (proxy) x) S 1 4242 4242 0 -1 4194560 900 0 0 0 \
                    150 30 0 0 20 0 5 0 123456 104857600 2048 18446744073709551615";
        let stat = parse_stat(line).unwrap();
        let want = Stat {
            utime: 150,
            stime: 30,
            threads: 5,
            starttime: 123456,
            vsize: 104857600,
            rss: 2048,
        };
        assert_eq!(stat, want);
    }

    #[test]
    fn a_truncated_stat_line_is_none() {
        assert_eq!(parse_stat("4242 (svcproxy) S 1 4242"), None);
        assert_eq!(parse_stat("no parenthesis"), None);
    }

    #[test]
    fn boot_time_is_read_from_its_line() {
        assert_eq!(boot_time("cpu  1 2 3\nbtime 1700000000\nprocesses 9\n"), Some(1_700_000_000));
        assert_eq!(boot_time("cpu  1 2 3\n"), None);
    }
}
