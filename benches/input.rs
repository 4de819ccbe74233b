//! Input cost over sizes: time and peak memory of `svcproxy check` on one
//! large object or list, at sizes N, 2N and 4N, to show both grow with
//! the input and no faster (goals: 2× the input in at most 2.5× the time;
//! peak RSS under 25× the file, net of what `check` takes on a file of the
//! same shape with 10 items: the process, the runtime and the pages of
//! code that shape runs, a fixed cost that is no part of the load), and
//! what `svcproxy run` holds once it has loaded the largest valid inputs.
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
use std::process::{Child, Command, Stdio};
use std::thread;
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

/// `svcproxy run` on `dir`, killed when dropped.
struct Run(Child);

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `VmRSS`/`VmHWM` figure of `pid`, in KiB.
fn vm(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let line = status.lines().find_map(|l| l.strip_prefix(field)).unwrap_or_default();
    line.split_whitespace().next().and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// Starts `svcproxy run` on `dir` and waits for its first routing table;
/// then its peak RSS, and its RSS once it has settled (no longer falling
/// for half a second: freed memory goes back to the system lazily).
fn run(dir: &Path) -> (u64, u64) {
    let log = dir.join("run.log");
    let mut run = Run(Command::new(env!("CARGO_BIN_EXE_svcproxy"))
        .args(["run", "--metrics-bind-address", "127.0.0.1:0"])
        .args(["--healthz-bind-address", "127.0.0.1:0", "--manifests"])
        .arg(dir.join("manifests"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("svcproxy run"));
    let until = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&log).unwrap_or_default().contains("routing table published") {
        assert!(Instant::now() < until, "no routing table within 60 s");
        assert!(run.0.try_wait().expect("wait").is_none(), "svcproxy run exited");
        thread::sleep(Duration::from_millis(20));
    }
    let pid = run.0.id();
    let (mut low, mut since) = (vm(pid, "VmRSS:"), Instant::now());
    while since.elapsed() < Duration::from_millis(500) && until > Instant::now() {
        thread::sleep(Duration::from_millis(50));
        let now = vm(pid, "VmRSS:");
        if now + 1024 < low {
            (low, since) = (now, Instant::now());
        }
    }
    (vm(pid, "VmHWM:"), low.min(vm(pid, "VmRSS:")))
}

/// The `run` figures on the largest valid input of two shapes.
fn run_table(dir: &Path, smoke: bool) {
    println!("\n| `svcproxy run` on | file MB | peak RSS MiB | RSS once loaded MiB |");
    println!("|---|---:|---:|---:|");
    for (shape, n) in [(&SHAPES[3], 200_000), (&SHAPES[4], 100_000)] {
        let n = if smoke { n / 100 } else { n };
        let manifests = dir.join("manifests");
        let _ = std::fs::remove_dir_all(&manifests);
        std::fs::create_dir_all(&manifests).expect("mkdir");
        let text = (shape.text)(n);
        std::fs::write(manifests.join("input.yaml"), &text).expect("write");
        let (peak, held) = run(dir);
        let mib = |kib: u64| kib as f64 / 1024.0;
        let size = text.len() as f64 / 1e6;
        println!(
            "| {}, {n} {} | {size:.2} | {:.1} | {:.1} |",
            shape.name,
            shape.unit,
            mib(peak),
            mib(held)
        );
    }
}

/// A smoke run proves the bench works without timing anything.
fn is_smoke() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--test") || !args.iter().any(|a| a == "--bench")
}

fn main() {
    let smoke = is_smoke();
    let dir = tempfile::tempdir().expect("temp dir");
    // The process's own RSS (code, runtime, allocator) is no part of the
    // load: the last column is what the load adds, per byte of file.
    let empty = dir.path().join("empty.yaml");
    std::fs::write(&empty, "").expect("write");
    let base = check(&empty).peak_kib as f64 * 1024.0;
    println!("`check` on an empty file: {:.1} MiB peak RSS\n", base / f64::from(1 << 20));
    println!(
        "| input | N | file MB | exit | time s | ×time for 2×N | peak RSS MiB | RSS / file | \
         (RSS − empty) / file | (RSS − 10 items) / file |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for shape in &SHAPES {
        let sizes: &[usize] = if smoke { &shape.sizes[..1] } else { &shape.sizes };
        let small = dir.path().join("small.yaml");
        std::fs::write(&small, (shape.text)(10)).expect("write");
        let fixed = check(&small).peak_kib as f64 * 1024.0;
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
                "| {} | {n} {} | {:.2} | {} | {:.3} | {growth} | {:.1} | {:.1} | {:.1} | {:.1} |",
                shape.name,
                shape.unit,
                bytes / 1e6,
                m.code.unwrap_or(-1),
                m.took.as_secs_f64(),
                peak / f64::from(1 << 20),
                peak / bytes,
                (peak - base) / bytes,
                (peak - fixed) / bytes
            );
        }
    }
    run_table(dir.path(), smoke);
}
