//! The figures the report shows, each read out of one run's [`Measure`]:
//! proxy CPU per unit of work, client-side rates and latencies, memory.

use super::args::Test;
use super::run::Measure;

/// Which way is better.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Better {
    Lower,
    Higher,
}

/// One figure.
pub struct Metric {
    pub label: &'static str,
    /// The test it comes from; `None`: every load test (memory after each).
    pub test: Option<Test>,
    pub decimals: usize,
    pub better: Better,
    pub value: fn(&Measure) -> Option<f64>,
}

const fn metric(
    label: &'static str,
    test: Option<Test>,
    decimals: usize,
    better: Better,
    value: fn(&Measure) -> Option<f64>,
) -> Metric {
    Metric { label, test, decimals, better, value }
}

use Better::{Higher, Lower};

/// What the proxy spends: its own processes' CPU, its memory.
pub const COST: &[Metric] = &[
    metric("CPU µs/req (ka)", Some(Test::Ka), 2, Lower, cpu_us_per_op),
    metric("CPU µs/conn (close)", Some(Test::Close), 1, Lower, cpu_us_per_op),
    metric("CPU µs/req (lat1)", Some(Test::Lat1), 1, Lower, cpu_us_per_op),
    metric("CPU s/GB (bulk1m)", Some(Test::Bulk1m), 3, Lower, cpu_s_per_gb),
    metric("RSS MiB", None, 1, Lower, rss_mib),
    metric("idle KiB/conn", Some(Test::Idle), 2, Lower, idle_kib_per_conn),
];

/// What the client sees.
pub const CLIENT: &[Metric] = &[
    metric("ka req/s", Some(Test::Ka), 0, Higher, rate),
    metric("ka p50 µs", Some(Test::Ka), 0, Lower, |m| m.p50_us),
    metric("ka p99 µs", Some(Test::Ka), 0, Lower, |m| m.p99_us),
    metric("close conn/s", Some(Test::Close), 0, Higher, rate),
    metric("close p99 µs", Some(Test::Close), 0, Lower, |m| m.p99_us),
    metric("lat1 p50 µs", Some(Test::Lat1), 0, Lower, |m| m.p50_us),
    metric("lat1 p99 µs", Some(Test::Lat1), 0, Lower, |m| m.p99_us),
    metric("bulk1m Gbit/s", Some(Test::Bulk1m), 2, Higher, gbit_s),
];

/// The proxy's pinned CPU, softirq included (pinned runs only).
pub const CORE: &[Metric] = &[
    metric("core µs/req (ka)", Some(Test::Ka), 2, Lower, core_us_per_op),
    metric("core µs/conn (close)", Some(Test::Close), 1, Lower, core_us_per_op),
    metric("core s/GB (bulk1m)", Some(Test::Bulk1m), 3, Lower, core_s_per_gb),
    metric("core busy (ka)", Some(Test::Ka), 2, Lower, core_busy),
    metric("core busy (close)", Some(Test::Close), 2, Lower, core_busy),
    metric("core busy (bulk1m)", Some(Test::Bulk1m), 2, Lower, core_busy),
];

fn per_op(total: f64, m: &Measure) -> Option<f64> {
    (m.done > 0).then(|| total / m.done as f64)
}

fn per_gb(total: f64, m: &Measure) -> Option<f64> {
    (m.bytes > 0).then(|| total / (m.bytes as f64 / 1e9))
}

fn cpu_us_per_op(m: &Measure) -> Option<f64> {
    per_op(m.proxy_cpu_s * 1e6, m)
}

fn cpu_s_per_gb(m: &Measure) -> Option<f64> {
    per_gb(m.proxy_cpu_s, m)
}

fn core_us_per_op(m: &Measure) -> Option<f64> {
    per_op(m.core_cpu_s? * 1e6, m)
}

fn core_s_per_gb(m: &Measure) -> Option<f64> {
    per_gb(m.core_cpu_s?, m)
}

fn core_busy(m: &Measure) -> Option<f64> {
    (m.secs > 0.0).then_some(m.core_cpu_s? / m.secs)
}

fn rate(m: &Measure) -> Option<f64> {
    (m.secs > 0.0).then(|| m.done as f64 / m.secs)
}

fn gbit_s(m: &Measure) -> Option<f64> {
    (m.secs > 0.0).then(|| m.bytes as f64 * 8.0 / m.secs / 1e9)
}

fn rss_mib(m: &Measure) -> Option<f64> {
    (m.idle.is_none() && m.rss_kib > 0).then(|| m.rss_kib as f64 / 1024.0)
}

/// (RSS holding K idle connections − RSS before) / K.
pub fn idle_kib_per_conn(m: &Measure) -> Option<f64> {
    let idle = m.idle?;
    (idle.conns > 0).then(|| (idle.held_kib as f64 - idle.before_kib as f64) / idle.conns as f64)
}
