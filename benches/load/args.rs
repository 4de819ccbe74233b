//! The load benchmark's command line, and the settings one invocation
//! runs with (the full benchmark under `cargo bench`, a bounded smoke
//! otherwise).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// One kind of measurement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, ValueEnum)]
pub enum Test {
    /// Keep-alive requests on 64 connections.
    #[value(name = "ka")]
    Ka,
    /// A new connection per request, 32 at a time.
    #[value(name = "close")]
    Close,
    /// One keep-alive connection: latency.
    #[value(name = "lat1")]
    Lat1,
    /// 1 MiB responses on 4 keep-alive connections.
    #[value(name = "bulk1m")]
    Bulk1m,
    /// Resident memory per idle proxied connection.
    #[value(name = "idle")]
    Idle,
    /// `ka` through every proxy in HTTP mode.
    #[value(name = "http-ka")]
    HttpKa,
    /// `close` through every proxy in HTTP mode.
    #[value(name = "http-close")]
    HttpClose,
    /// h2c with many streams per connection (`h2load`), HTTP mode.
    #[value(name = "h2c")]
    H2c,
    /// Resident memory per idle HTTP keep-alive connection (one request
    /// answered), HTTP mode.
    #[value(name = "http-idle")]
    HttpIdle,
}

/// How a proxy forwards: bytes (L4), or requests (HTTP mode: per-request
/// balancing over pooled HTTP/1.1 connections to the endpoints).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mode {
    Tcp,
    Http,
}

/// A proxy under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, ValueEnum)]
pub enum Impl {
    #[value(name = "svcproxy")]
    Svcproxy,
    #[value(name = "haproxy")]
    Haproxy,
    #[value(name = "nginx")]
    Nginx,
}

/// svcproxy against HAProxy and nginx on loopback, in TCP mode (HAProxy
/// `mode tcp`, nginx `stream`) and in HTTP mode (HAProxy `mode http`,
/// nginx `http` with an upstream keep-alive pool).
///
/// Run with `cargo bench --bench load [-- OPTIONS]`. Without `--bench`
/// (as `cargo test --bench load` runs it), or with `--test` (`cargo bench
/// -- --test`), a short smoke of svcproxy alone checks that every test works.
#[derive(Parser, Debug)]
#[command(name = "load")]
pub struct Args {
    /// Measured time per run, after a warm-up: seconds (`3`, `0.5`) or `500ms`.
    #[arg(long, default_value = "3", value_parser = parse_duration)]
    pub duration: Duration,
    /// Runs of each test per implementation; the tables show the median.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub reps: u32,
    /// Tests to run, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "ka,close,lat1,bulk1m,idle,http-ka,http-close,h2c,http-idle"
    )]
    pub tests: Vec<Test>,
    /// Implementations to compare, comma-separated; a peer not installed
    /// is skipped with a note.
    #[arg(long = "impl", value_delimiter = ',', default_value = "svcproxy,haproxy,nginx")]
    pub impls: Vec<Impl>,
    /// Extra Services (2 ports, 3 endpoints each) in svcproxy's manifests
    /// (TCP mode), on their own loopback addresses: the per-connection
    /// cost at scale.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=200_000))]
    pub services: u32,
    /// Idle connections the `idle` and `http-idle` tests hold open (one
    /// source address: bounded by the ephemeral port range).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=25_000))]
    pub idle: u32,
    /// Run unpinned even where taskset could pin the proxy to its own CPU.
    #[arg(long)]
    pub no_pin: bool,
    /// An extra argument for `svcproxy run`, repeatable: A/B runs of a
    /// flag (`--svcproxy-arg=--splice=never`).
    #[arg(long = "svcproxy-arg", allow_hyphen_values = true)]
    pub svcproxy_args: Vec<String>,
    /// Where the Markdown report is written [TARGET_DIR/load-bench.md].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Passed by `cargo bench`: run the full benchmark, not the smoke.
    #[arg(long, hide = true)]
    pub bench: bool,
    /// Criterion's smoke flag (`cargo bench -- --test`, as CI runs every
    /// bench): the smoke even under `cargo bench`.
    #[arg(long, hide = true)]
    pub test: bool,
    // What `cargo test` may pass to a test binary: accepted and ignored.
    #[arg(long, hide = true)]
    nocapture: bool,
    #[arg(long, short = 'q', hide = true)]
    quiet: bool,
    #[arg(long, hide = true)]
    test_threads: Option<String>,
    #[arg(hide = true)]
    filter: Vec<String>,
}

/// What one invocation runs.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The bounded smoke run, not the benchmark.
    pub smoke: bool,
    pub duration: Duration,
    pub warmup: Duration,
    pub reps: u32,
    pub tests: Vec<Test>,
    pub impls: Vec<Impl>,
    pub services: u32,
    pub svcproxy_args: Vec<String>,
    pub idle: usize,
    pub pin: bool,
    pub out: PathBuf,
    /// How the user ran it, for the report.
    pub command: String,
    pub ka_conns: usize,
    pub close_conns: usize,
    pub bulk_conns: usize,
    /// h2c: connections, and streams in flight on each.
    pub h2c_conns: usize,
    pub h2c_streams: usize,
}

// === impl Settings ===

impl Settings {
    pub fn new(args: Args) -> Settings {
        let shown: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
        let mut tests = args.tests.clone();
        tests.sort();
        tests.dedup();
        let mut impls = args.impls.clone();
        impls.sort();
        impls.dedup();
        let base = Settings {
            smoke: !args.bench || args.test,
            duration: args.duration,
            warmup: (args.duration / 5).clamp(Duration::from_millis(50), Duration::from_secs(1)),
            reps: args.reps,
            tests,
            impls,
            services: args.services,
            svcproxy_args: args.svcproxy_args,
            idle: args.idle as usize,
            pin: !args.no_pin,
            out: args.out.unwrap_or_else(|| target_dir().join("load-bench.md")),
            command: format!("cargo bench --bench load{}", extra(&shown)),
            ka_conns: 64,
            close_conns: 32,
            bulk_conns: 4,
            h2c_conns: 4,
            h2c_streams: 100,
        };
        if base.smoke { base.into_smoke() } else { base }
    }

    /// Every test for a moment, svcproxy alone, unpinned: proves the
    /// bench works in well under 30 s.
    fn into_smoke(self) -> Settings {
        Settings {
            duration: Duration::from_millis(200),
            warmup: Duration::from_millis(50),
            reps: 1,
            impls: vec![Impl::Svcproxy],
            idle: self.idle.min(200),
            pin: false,
            command: "cargo test --bench load (smoke)".to_owned(),
            ..self
        }
    }
}

fn extra(shown: &[String]) -> String {
    if shown.is_empty() { String::new() } else { format!(" -- {}", shown.join(" ")) }
}

/// `CARGO_TARGET_DIR` if set, else the crate's `target/`.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// Seconds as a number (`3`, `0.5`), or a humantime duration (`500ms`).
fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration = match text.parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs > 0.0 => Duration::from_secs_f64(secs),
        Ok(_) => return Err("must be positive".to_owned()),
        Err(_) => humantime::parse_duration(text).map_err(|e| e.to_string())?,
    };
    if duration > Duration::from_secs(600) || duration < Duration::from_millis(10) {
        return Err("must be between 10ms and 600s".to_owned());
    }
    Ok(duration)
}

impl Impl {
    pub fn name(self) -> &'static str {
        match self {
            Impl::Svcproxy => "svcproxy",
            Impl::Haproxy => "haproxy",
            Impl::Nginx => "nginx",
        }
    }
}

impl Test {
    pub fn name(self) -> &'static str {
        match self {
            Test::Ka => "ka",
            Test::Close => "close",
            Test::Lat1 => "lat1",
            Test::Bulk1m => "bulk1m",
            Test::Idle => "idle",
            Test::HttpKa => "http-ka",
            Test::HttpClose => "http-close",
            Test::H2c => "h2c",
            Test::HttpIdle => "http-idle",
        }
    }

    /// The mode the proxies run in for this test.
    pub fn mode(self) -> Mode {
        match self {
            Test::Ka | Test::Close | Test::Lat1 | Test::Bulk1m | Test::Idle => Mode::Tcp,
            Test::HttpKa | Test::HttpClose | Test::H2c | Test::HttpIdle => Mode::Http,
        }
    }

    /// An idle-memory test (a fresh proxy each run), not a load test.
    pub fn is_idle(self) -> bool {
        matches!(self, Test::Idle | Test::HttpIdle)
    }
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Tcp => "tcp",
            Mode::Http => "http",
        }
    }
}
