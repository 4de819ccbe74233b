//! The HTTP mode's targets, read from one run: svcproxy's CPU per request
//! at most 0.8× the best peer's, its requests/s at least the best peer's,
//! its p99 at most the best peer's, and at most 16 KiB per idle HTTP
//! connection. Each row says met or missed, with the figure.

use std::fmt::Write as _;

use super::args::Impl;
use super::bench::Results;
use super::metric::{
    Better, H2C_CPU, H2C_P99, H2C_RATE, HTTP_CLOSE_CPU, HTTP_CLOSE_P99, HTTP_CLOSE_RATE,
    HTTP_IDLE_KIB, HTTP_KA_CPU, HTTP_KA_P99, HTTP_KA_RATE, Metric,
};
use super::report::{best_peer, number, spread};

/// One target. CPU is read as the proxy's own (utime + stime on its
/// pinned core): the core's busy time also counts whatever else the
/// machine ran there.
struct Target {
    what: &'static str,
    figure: &'static Metric,
    bound: Bound,
}

enum Bound {
    /// svcproxy ÷ the best peer: at most this for a cost or a latency, at
    /// least this for a rate.
    Ratio(f64),
    /// svcproxy's own figure, at most.
    Max(f64),
}

const CPU: &str = "CPU per request ≤ 0.8×";
const RATE: &str = "requests/s ≥ 1.0×";
const P99: &str = "p99 ≤ 1.0×";

const TARGETS: &[Target] = &[
    Target { what: CPU, figure: &HTTP_KA_CPU, bound: Bound::Ratio(0.8) },
    Target { what: CPU, figure: &HTTP_CLOSE_CPU, bound: Bound::Ratio(0.8) },
    Target { what: CPU, figure: &H2C_CPU, bound: Bound::Ratio(0.8) },
    Target { what: RATE, figure: &HTTP_KA_RATE, bound: Bound::Ratio(1.0) },
    Target { what: RATE, figure: &HTTP_CLOSE_RATE, bound: Bound::Ratio(1.0) },
    Target { what: RATE, figure: &H2C_RATE, bound: Bound::Ratio(1.0) },
    Target { what: P99, figure: &HTTP_KA_P99, bound: Bound::Ratio(1.0) },
    Target { what: P99, figure: &HTTP_CLOSE_P99, bound: Bound::Ratio(1.0) },
    Target { what: P99, figure: &H2C_P99, bound: Bound::Ratio(1.0) },
    Target {
        what: "≤ 16 KiB per idle connection",
        figure: &HTTP_IDLE_KIB,
        bound: Bound::Max(16.0),
    },
];

/// The targets table, for the targets svcproxy has a figure for.
pub fn render(out: &mut String, r: &Results) {
    let rows: Vec<String> = TARGETS.iter().filter_map(|t| row(r, t)).collect();
    if rows.is_empty() {
        return;
    }
    out.push_str("\n**Targets** (svcproxy against the best peer of this run)\n\n");
    out.push_str("| target | figure | svcproxy | best peer | ratio | |\n");
    out.push_str("|---|---|---:|---:|---:|---|\n");
    for row in rows {
        let _ = writeln!(out, "{row}");
    }
}

fn row(r: &Results, t: &Target) -> Option<String> {
    let m = t.figure;
    let ours = spread(r, Impl::Svcproxy, m)?.median;
    let best = best_peer(r, m).filter(|(_, theirs)| *theirs != 0.0);
    let ratio = best.map(|(_, theirs)| ours / theirs);
    let met = match t.bound {
        Bound::Max(max) => Some(ours <= max),
        Bound::Ratio(bound) => ratio.map(|x| match m.better {
            Better::Lower => x <= bound,
            Better::Higher => x >= bound,
        }),
    };
    let peer =
        best.map_or("–".to_owned(), |(k, v)| format!("{} {}", k.name(), number(v, m.decimals)));
    let ratio = ratio.map_or("–".to_owned(), |x| format!("{x:.2}×"));
    let status = match met {
        Some(true) => "met",
        Some(false) => "**missed**",
        None => "no peer",
    };
    let ours = number(ours, m.decimals);
    Some(format!("| {} | {} | {ours} | {peer} | {ratio} | {status} |", t.what, m.label))
}
