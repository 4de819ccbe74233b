//! Load benchmark: svcproxy against HAProxy and nginx on loopback, in TCP
//! mode (HAProxy `mode tcp`, nginx `stream {}`) and in HTTP mode (HAProxy
//! `mode http`, nginx `http {}` as a reverse proxy; svcproxy on an
//! `appProtocol: http` port), all in front of the same three HTTP/1.1
//! endpoints, measured from the proxy's side: CPU per request, per
//! connection and per GB, tail latency, memory, and memory per idle
//! connection. The methodology is the shared bench's (`../shared/bench/`),
//! self-contained in Rust: the endpoints and the load client run in this
//! process (h2c's client is `h2load`), the proxies are child processes.
//!
//! Run: `cargo bench --bench load [-- --duration 3 --reps 3
//! --tests ka,close,lat1,bulk1m,idle,http-ka,http-close,h2c,http-idle
//! --impl svcproxy,haproxy,nginx --services 0 --idle 10000 --no-pin]`.
//! The Markdown report goes to stdout and to `target/load-bench.md`.
//! Without `--bench` (what `cargo test --bench load` passes) a bounded
//! smoke runs svcproxy alone and exits non-zero if any test fails.
//!
//! Layout (`load/`): `args` the command line; `bench` the flow and
//! `rotate` the measuring order; `proxy` starting a proxy, `launch` its
//! command in each mode, with `svcproxy`, `peers` and `peers_http` their
//! configurations and `process` the guard that kills them; `backend` the
//! endpoints; `client`, `http`, `h2load` and `run` the load and one
//! measured window; `idle` the idle tests; `limits` the descriptor
//! budget; `procfs`, `pin` and `stats` measuring; `metric`, `report` and
//! `targets` the tables.

#[path = "load/args.rs"]
mod args;
#[path = "load/backend.rs"]
mod backend;
#[path = "load/bench.rs"]
mod bench;
#[path = "load/client.rs"]
mod client;
#[path = "load/h2load.rs"]
mod h2load;
#[path = "load/http.rs"]
mod http;
#[path = "load/idle.rs"]
mod idle;
#[path = "load/launch.rs"]
mod launch;
#[path = "load/limits.rs"]
mod limits;
#[path = "load/metric.rs"]
mod metric;
#[path = "load/peers.rs"]
mod peers;
#[path = "load/peers_http.rs"]
mod peers_http;
#[path = "load/pin.rs"]
mod pin;
#[path = "load/process.rs"]
mod process;
#[path = "load/procfs.rs"]
mod procfs;
#[path = "load/proxy.rs"]
mod proxy;
#[path = "load/report.rs"]
mod report;
#[path = "load/rotate.rs"]
mod rotate;
#[path = "load/run.rs"]
mod run;
#[path = "load/stats.rs"]
mod stats;
#[path = "load/svcproxy.rs"]
mod svcproxy;
#[path = "load/targets.rs"]
mod targets;

use std::process::ExitCode;

use clap::Parser;

use args::{Args, Settings};

fn main() -> ExitCode {
    let settings = Settings::new(Args::parse());
    let results = match bench::run(settings) {
        Ok(results) => results,
        Err(e) => {
            eprintln!("load: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let text = report::render(&results);
    println!("{text}");
    if !results.settings.smoke {
        let out = &results.settings.out;
        match std::fs::write(out, &text) {
            Ok(()) => eprintln!("load: report written to {}", out.display()),
            Err(e) => eprintln!("load: cannot write {}: {e}", out.display()),
        }
    }
    if results.failures.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
