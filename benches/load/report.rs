//! The Markdown report: a header (when, where, how), then for each mode
//! (TCP, HTTP) per implementation the median of the runs with their
//! range, and svcproxy against the best peer; the HTTP mode's targets.

use std::fmt::Write as _;

use super::args::{Impl, Settings, Test};
use super::bench::Results;
use super::metric::{self, Better, Metric};
use super::stats::Spread;
use super::targets;

/// The whole report.
pub fn render(r: &Results) -> String {
    let mut out = header(r);
    let pinned = r.pin.proxy.is_some();
    let tcp: [(&str, &[Metric]); 3] = [
        ("Proxy cost (lower is better)", metric::COST),
        ("Client view", metric::CLIENT),
        ("Proxy core, softirq included (pinned)", if pinned { metric::CORE } else { &[] }),
    ];
    section(&mut out, r, "TCP mode (L4)", &tcp);
    let http: [(&str, &[Metric]); 3] = [
        ("Proxy cost (lower is better)", metric::HTTP_COST),
        ("Client view", metric::HTTP_CLIENT),
        ("Proxy core, softirq included (pinned)", if pinned { metric::HTTP_CORE } else { &[] }),
    ];
    if section(&mut out, r, "HTTP mode", &http) {
        targets::render(&mut out, r);
    }
    if !r.failures.is_empty() {
        out.push_str("\n**Failures**\n\n");
        for f in &r.failures {
            let _ = writeln!(out, "- {}", f.replace('\n', " "));
        }
    }
    out
}

/// A mode's tables, then svcproxy ÷ the best peer on the first two
/// (cost and client); false when no figure of the mode was measured.
fn section(out: &mut String, r: &Results, title: &str, tables: &[(&str, &[Metric])]) -> bool {
    let kinds: Vec<Impl> = r.versions.iter().map(|(k, _)| *k).collect();
    let mut body = String::new();
    for (name, metrics) in tables {
        table(&mut body, r, &kinds, name, metrics);
    }
    if body.is_empty() {
        return false;
    }
    let _ = write!(out, "\n### {title}\n{body}");
    ratios(out, r, tables.iter().take(2).flat_map(|(_, m)| m.iter()));
    true
}

fn header(r: &Results) -> String {
    let s = &r.settings;
    let m = &r.machine;
    let mut out = String::from("## svcproxy load benchmark\n\n");
    let date = humantime::format_rfc3339_seconds(r.started);
    let allowed = super::procfs::cpu_list(&m.allowed);
    let _ = writeln!(out, "- date: {date}, took {:.0} s", r.elapsed.as_secs_f64());
    let _ = writeln!(
        out,
        "- machine: {} CPUs ({allowed} allowed), {}; {}; TCP congestion control {}",
        m.online, m.cpu_model, m.kernel, m.congestion
    );
    let _ = writeln!(out, "- command: `{}`", s.command);
    let _ = writeln!(out, "- placement: {}", r.pin.note);
    let _ = writeln!(
        out,
        "- runs: {} × {:.1} s measured after {:.2} s warm-up; rep → test → implementation, \
         order rotated each rep; cells: median (min–max)",
        s.reps,
        s.duration.as_secs_f64(),
        s.warmup.as_secs_f64()
    );
    let _ = writeln!(out, "- tests: {}", tests(s));
    let versions: Vec<String> = r.versions.iter().map(|(_, v)| v.clone()).collect();
    let _ = writeln!(out, "- implementations: {}", versions.join("; "));
    if s.services > 0 {
        let _ = writeln!(
            out,
            "- svcproxy serves {} extra Services (2 ports, 3 endpoints each: {} more listeners)",
            s.services,
            2 * s.services
        );
    }
    out.push_str(
        "- CPU: utime + stime of the proxy's processes over the window ÷ work done; core: busy \
         time of the proxy's CPU (softirq included, and anything else that ran there)\n",
    );
    for note in &r.notes {
        let _ = writeln!(out, "- note: {}", note.replace('\n', " "));
    }
    out
}

/// What each selected test does.
fn tests(s: &Settings) -> String {
    let describe = |t: &Test| match t {
        Test::Ka => format!("ka: {} keep-alive connections, 3-byte responses", s.ka_conns),
        Test::Close => format!("close: {} at a time, one request per connection", s.close_conns),
        Test::Lat1 => "lat1: 1 keep-alive connection".to_owned(),
        Test::Bulk1m => format!("bulk1m: {} connections, 1 MiB responses", s.bulk_conns),
        Test::Idle => format!("idle: {} idle connections, a fresh proxy each run", s.idle),
        Test::HttpKa => format!("http-ka: ka in HTTP mode ({} connections)", s.ka_conns),
        Test::HttpClose => format!("http-close: close in HTTP mode ({} at a time)", s.close_conns),
        Test::H2c => format!(
            "h2c: h2load, {} connections × {} streams, HTTP mode",
            s.h2c_conns, s.h2c_streams
        ),
        Test::HttpIdle => format!(
            "http-idle: {} idle HTTP keep-alive connections (one request answered each), \
             a fresh proxy each run",
            s.idle
        ),
    };
    s.tests.iter().map(describe).collect::<Vec<_>>().join("; ")
}

/// The runs of `kind` behind `metric`, reduced to a spread.
pub fn spread(r: &Results, kind: Impl, metric: &Metric) -> Option<Spread> {
    let values = r
        .runs
        .iter()
        .filter(|((k, t), _)| *k == kind && metric.of.matches(*t))
        .flat_map(|(_, runs)| runs.iter().filter_map(metric.value))
        .collect();
    Spread::of(values)
}

fn table(out: &mut String, r: &Results, kinds: &[Impl], title: &str, metrics: &[Metric]) {
    let shown: Vec<&Metric> =
        metrics.iter().filter(|m| kinds.iter().any(|&k| spread(r, k, m).is_some())).collect();
    if shown.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n**{title}**\n");
    let heads: Vec<&str> = shown.iter().map(|m| m.label).collect();
    let _ = writeln!(out, "| impl | {} |", heads.join(" | "));
    let _ = writeln!(out, "|---|{}", "---:|".repeat(shown.len()));
    for &kind in kinds {
        let cells: Vec<String> =
            shown.iter().map(|m| cell(spread(r, kind, m), m.decimals)).collect();
        let _ = writeln!(out, "| {} | {} |", kind.name(), cells.join(" | "));
    }
}

/// `median (min–max)`, or the median alone for one run or no spread.
fn cell(spread: Option<Spread>, decimals: usize) -> String {
    let Some(s) = spread else { return "–".to_owned() };
    let median = number(s.median, decimals);
    if s.runs < 2 || number(s.min, decimals) == number(s.max, decimals) {
        return median;
    }
    format!("{median} ({}–{})", number(s.min, decimals), number(s.max, decimals))
}

/// svcproxy ÷ the best peer, figure by figure.
fn ratios<'a>(out: &mut String, r: &Results, metrics: impl Iterator<Item = &'a Metric>) {
    let mut rows = Vec::new();
    for m in metrics {
        let Some(ours) = spread(r, Impl::Svcproxy, m) else { continue };
        let Some((peer, theirs)) = best_peer(r, m) else { continue };
        if theirs == 0.0 {
            continue;
        }
        rows.push(format!(
            "| {} | {} | {} {} | {:.2}× |",
            m.label,
            number(ours.median, m.decimals),
            peer.name(),
            number(theirs, m.decimals),
            ours.median / theirs
        ));
    }
    if rows.is_empty() {
        return;
    }
    out.push_str(
        "\n**svcproxy ÷ best peer** (medians; cost and latency: < 1 is better; rates: > 1 is better)\n\n",
    );
    out.push_str("| figure | svcproxy | best peer | ratio |\n|---|---:|---:|---:|\n");
    for row in rows {
        let _ = writeln!(out, "{row}");
    }
}

/// The peer with the best median of `m`, and that median.
pub fn best_peer(r: &Results, m: &Metric) -> Option<(Impl, f64)> {
    r.versions
        .iter()
        .map(|(k, _)| *k)
        .filter(|&k| k != Impl::Svcproxy)
        .filter_map(|k| Some((k, spread(r, k, m)?.median)))
        .reduce(|a, b| if better(m.better, b.1, a.1) { b } else { a })
}

fn better(way: Better, a: f64, b: f64) -> bool {
    match way {
        Better::Lower => a < b,
        Better::Higher => a > b,
    }
}

/// `value` with `decimals` places and thousands separated by commas.
pub fn number(value: f64, decimals: usize) -> String {
    let text = format!("{value:.decimals$}");
    let (int, frac) = text.split_once('.').map_or((text.as_str(), None), |(i, f)| (i, Some(f)));
    let (sign, digits) = int.strip_prefix('-').map_or(("", int), |d| ("-", d));
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    match frac {
        Some(f) => format!("{sign}{grouped}.{f}"),
        None => format!("{sign}{grouped}"),
    }
}
