//! The figures the report shows, each read out of one run's [`Measure`]:
//! proxy CPU per unit of work, client-side rates and latencies, memory;
//! the TCP mode's and the HTTP mode's.

use super::args::{Mode, Test};
use super::run::Measure;

/// Which way is better.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Better {
    Lower,
    Higher,
}

/// The runs a figure comes from.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Of {
    Test(Test),
    /// Every load test of a mode (memory after each).
    Load(Mode),
}

/// One figure.
pub struct Metric {
    pub label: &'static str,
    pub of: Of,
    pub decimals: usize,
    pub better: Better,
    pub value: fn(&Measure) -> Option<f64>,
}

const fn metric(
    label: &'static str,
    of: Of,
    decimals: usize,
    better: Better,
    value: fn(&Measure) -> Option<f64>,
) -> Metric {
    Metric { label, of, decimals, better, value }
}

use Better::{Higher, Lower};
use Test::{Bulk1m, Close, H2c, HttpClose, HttpIdle, HttpKa, Idle, Ka, Lat1};

// === impl Of ===

impl Of {
    pub fn matches(self, test: Test) -> bool {
        match self {
            Of::Test(want) => want == test,
            Of::Load(mode) => test.mode() == mode && !test.is_idle(),
        }
    }
}

/// What the proxy spends: its own processes' CPU, its memory.
pub const COST: &[Metric] = &[
    metric("CPU µs/req (ka)", Of::Test(Ka), 2, Lower, cpu_us_per_op),
    metric("CPU µs/conn (close)", Of::Test(Close), 1, Lower, cpu_us_per_op),
    metric("CPU µs/req (lat1)", Of::Test(Lat1), 1, Lower, cpu_us_per_op),
    metric("CPU s/GB (bulk1m)", Of::Test(Bulk1m), 3, Lower, cpu_s_per_gb),
    metric("RSS MiB", Of::Load(Mode::Tcp), 1, Lower, rss_mib),
    metric("idle KiB/conn", Of::Test(Idle), 2, Lower, idle_kib_per_conn),
];

/// What the client sees.
pub const CLIENT: &[Metric] = &[
    metric("ka req/s", Of::Test(Ka), 0, Higher, rate),
    metric("ka p50 µs", Of::Test(Ka), 0, Lower, |m| m.p50_us),
    metric("ka p99 µs", Of::Test(Ka), 0, Lower, |m| m.p99_us),
    metric("close conn/s", Of::Test(Close), 0, Higher, rate),
    metric("close p99 µs", Of::Test(Close), 0, Lower, |m| m.p99_us),
    metric("lat1 p50 µs", Of::Test(Lat1), 0, Lower, |m| m.p50_us),
    metric("lat1 p99 µs", Of::Test(Lat1), 0, Lower, |m| m.p99_us),
    metric("bulk1m Gbit/s", Of::Test(Bulk1m), 2, Higher, gbit_s),
];

/// The proxy's pinned CPU, softirq included (pinned runs only).
pub const CORE: &[Metric] = &[
    metric("core µs/req (ka)", Of::Test(Ka), 2, Lower, core_us_per_op),
    metric("core µs/conn (close)", Of::Test(Close), 1, Lower, core_us_per_op),
    metric("core s/GB (bulk1m)", Of::Test(Bulk1m), 3, Lower, core_s_per_gb),
    metric("core busy (ka)", Of::Test(Ka), 2, Lower, core_busy),
    metric("core busy (close)", Of::Test(Close), 2, Lower, core_busy),
    metric("core busy (bulk1m)", Of::Test(Bulk1m), 2, Lower, core_busy),
];

/// HTTP mode: what the proxy spends.
pub const HTTP_COST: &[Metric] = &[HTTP_KA_CPU, HTTP_CLOSE_CPU, H2C_CPU, HTTP_RSS, HTTP_IDLE_KIB];

/// HTTP mode: what the client sees.
pub const HTTP_CLIENT: &[Metric] = &[
    HTTP_KA_RATE,
    metric("http-ka p50 µs", Of::Test(HttpKa), 0, Lower, |m| m.p50_us),
    HTTP_KA_P99,
    HTTP_CLOSE_RATE,
    HTTP_CLOSE_P99,
    H2C_RATE,
    metric("h2c p50 µs", Of::Test(H2c), 0, Lower, |m| m.p50_us),
    H2C_P99,
];

/// HTTP mode: the proxy's pinned CPU, softirq included (pinned runs only).
pub const HTTP_CORE: &[Metric] = &[
    HTTP_KA_CORE,
    HTTP_CLOSE_CORE,
    H2C_CORE,
    metric("core busy (http-ka)", Of::Test(HttpKa), 2, Lower, core_busy),
    metric("core busy (http-close)", Of::Test(HttpClose), 2, Lower, core_busy),
    metric("core busy (h2c)", Of::Test(H2c), 2, Lower, core_busy),
];

// The HTTP mode's figures by name: `targets` reads some.
pub const HTTP_KA_CPU: Metric =
    metric("CPU µs/req (http-ka)", Of::Test(HttpKa), 2, Lower, cpu_us_per_op);
pub const HTTP_CLOSE_CPU: Metric =
    metric("CPU µs/conn (http-close)", Of::Test(HttpClose), 1, Lower, cpu_us_per_op);
pub const H2C_CPU: Metric = metric("CPU µs/req (h2c)", Of::Test(H2c), 2, Lower, cpu_us_per_op);
const HTTP_KA_CORE: Metric =
    metric("core µs/req (http-ka)", Of::Test(HttpKa), 2, Lower, core_us_per_op);
const HTTP_CLOSE_CORE: Metric =
    metric("core µs/conn (http-close)", Of::Test(HttpClose), 1, Lower, core_us_per_op);
const H2C_CORE: Metric = metric("core µs/req (h2c)", Of::Test(H2c), 2, Lower, core_us_per_op);
pub const HTTP_KA_RATE: Metric = metric("http-ka req/s", Of::Test(HttpKa), 0, Higher, rate);
pub const HTTP_CLOSE_RATE: Metric =
    metric("http-close conn/s", Of::Test(HttpClose), 0, Higher, rate);
pub const H2C_RATE: Metric = metric("h2c req/s", Of::Test(H2c), 0, Higher, rate);
pub const HTTP_KA_P99: Metric = metric("http-ka p99 µs", Of::Test(HttpKa), 0, Lower, |m| m.p99_us);
pub const HTTP_CLOSE_P99: Metric =
    metric("http-close p99 µs", Of::Test(HttpClose), 0, Lower, |m| m.p99_us);
pub const H2C_P99: Metric = metric("h2c p99 µs", Of::Test(H2c), 0, Lower, |m| m.p99_us);
pub const HTTP_RSS: Metric = metric("RSS MiB", Of::Load(Mode::Http), 1, Lower, rss_mib);
pub const HTTP_IDLE_KIB: Metric =
    metric("idle KiB/conn", Of::Test(HttpIdle), 2, Lower, idle_kib_per_conn);

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
