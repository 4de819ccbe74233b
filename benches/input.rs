//! Input cost over sizes: time and peak memory of `svcproxy check` on one
//! large object or list, at sizes N, 2N and 4N, to show both grow with
//! the input and no faster (goals: 2× the input in at most 2.5× the time;
//! peak RSS under 25× the file), and what `svcproxy run` holds once it
//! has loaded the largest valid inputs.
//!
//! Shapes: ports of one Service; endpoints of one EndpointSlice (past
//! 1,000 the API server's bound rejects it, and that error path must be
//! as cheap); addresses of one Endpoints object (past 1.5 MiB rejected by
//! size); minimal Pods in one `kind: List`; one Service's endpoints in
//! slices of 1,000. Each run is the real binary (the bench profile's
//! build) under GNU time, which reports its peak RSS.
//!
//! Run: `cargo bench --bench input`. With `--test` (as CI runs every
//! bench, `cargo bench -- --test`) or without `--bench` (`cargo test
//! --benches`) it is a smoke run: the smallest size of each shape at a
//! tenth of it, checked to exit 0 or 1 without a panic.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench stops on a broken setup

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A shape of input: its name, what N counts, the sizes, and the text.
struct Shape {
    name: &'static str,
    unit: &'static str,
    sizes: [usize; 3],
    text: fn(usize) -> String,
}

const SHAPES: [Shape; 5] = [
    Shape {
        name: "ports of one Service",
        unit: "ports",
        sizes: [16_000, 32_000, 64_000],
        text: ports,
    },
    Shape {
        name: "endpoints of one EndpointSlice",
        unit: "endpoints",
        sizes: [25_000, 50_000, 100_000],
        text: slice,
    },
    Shape {
        name: "addresses of one Endpoints",
        unit: "addresses",
        sizes: [25_000, 50_000, 100_000],
        text: endpoints,
    },
    Shape { name: "Pods in one List", unit: "Pods", sizes: [50_000, 100_000, 200_000], text: pods },
    Shape {
        name: "one Service's endpoints in slices of 1,000",
        unit: "endpoints",
        sizes: [25_000, 50_000, 100_000],
        text: slices,
    },
];

const SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  \
                       clusterIP: 127.96.0.9\n  ports:\n  - name: http\n    port: 80\n";

fn ip(i: usize) -> String {
    format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255)
}

fn ports(n: usize) -> String {
    let mut text = SERVICE.replace("  - name: http\n    port: 80\n", "");
    for i in 1..=n {
        let _ = writeln!(text, "  - {{name: p{i}, port: {i}}}");
    }
    text
}

fn slice_head(name: &str) -> String {
    format!(
        "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {name}\n  \
         labels: {{kubernetes.io/service-name: web}}\naddressType: IPv4\n\
         ports: [{{name: http, port: 8080}}]\nendpoints:\n"
    )
}

fn slice(n: usize) -> String {
    let mut text = format!("{SERVICE}{}", slice_head("web-1"));
    for i in 0..n {
        let _ = writeln!(text, "- addresses: [{}]", ip(i));
    }
    text
}

fn slices(n: usize) -> String {
    let mut text = SERVICE.to_owned();
    for i in 0..n {
        if i % 1000 == 0 {
            text.push_str(&slice_head(&format!("web-{}", i / 1000)));
        }
        let _ = writeln!(text, "- addresses: [{}]", ip(i));
    }
    text
}

fn endpoints(n: usize) -> String {
    let mut text = format!(
        "{SERVICE}---\napiVersion: v1\nkind: Endpoints\nmetadata: {{name: web}}\nsubsets:\n\
         - ports: [{{name: http, port: 8080}}]\n  addresses:\n"
    );
    for i in 0..n {
        let _ = writeln!(text, "  - ip: {}", ip(i));
    }
    text
}

/// As compact as JSON gets: the 12.5 MB List of 200,000 Pods.
fn pods(n: usize) -> String {
    let items: Vec<String> = (0..n)
        .map(|i| format!(r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"p{i}"}}}}"#))
        .collect();
    format!(r#"{{"apiVersion":"v1","kind":"List","items":[{}]}}"#, items.join(","))
}

/// One `check` run: exit code, wall time, peak RSS in KiB.
struct Measured {
    code: Option<i32>,
    took: Duration,
    peak_kib: u64,
}

fn check(file: &Path) -> Measured {
    let report = tempfile::NamedTempFile::new().expect("temp file");
    let started = Instant::now();
    let out = Command::new("time")
        .args(["-f", "%M", "-o"])
        .arg(report.path())
        .arg(env!("CARGO_BIN_EXE_svcproxy"))
        .arg("check")
        .arg(file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("GNU time (Debian's `time` package) runs svcproxy check");
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("panicked"),
        "svcproxy check panicked on {}: {stderr}",
        file.display()
    );
    let text = std::fs::read_to_string(report.path()).unwrap_or_default();
    let peak_kib = text.lines().rev().find_map(|l| l.trim().parse().ok()).expect("GNU time's %M");
    Measured { code: out.status.code(), took, peak_kib }
}

/// A smoke run proves the bench works without timing anything.
fn is_smoke() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--test") || !args.iter().any(|a| a == "--bench")
}

fn main() {
    let smoke = is_smoke();
    let dir = tempfile::tempdir().expect("temp dir");
    println!("| input | N | file MB | exit | time s | ×time for 2×N | peak RSS MiB | RSS / file |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for shape in &SHAPES {
        let sizes: &[usize] = if smoke { &shape.sizes[..1] } else { &shape.sizes };
        let mut last: Option<Duration> = None;
        for &n in sizes {
            let n = if smoke { n / 10 } else { n };
            let file = dir.path().join("input.yaml");
            std::fs::write(&file, (shape.text)(n)).expect("write");
            let bytes = std::fs::metadata(&file).expect("stat").len() as f64;
            let m = check(&file);
            assert!(matches!(m.code, Some(0 | 1)), "{}: exit {:?}", shape.name, m.code);
            let growth = last.map_or(String::new(), |t| {
                format!("{:.2}", m.took.as_secs_f64() / t.as_secs_f64())
            });
            last = Some(m.took);
            let peak = m.peak_kib as f64 * 1024.0;
            println!(
                "| {} | {n} {} | {:.2} | {} | {:.3} | {growth} | {:.1} | {:.1} |",
                shape.name,
                shape.unit,
                bytes / 1e6,
                m.code.unwrap_or(-1),
                m.took.as_secs_f64(),
                peak / f64::from(1 << 20),
                peak / bytes
            );
        }
    }
}
