//! The `svcproxy` command line: argument parsing, logging, exit codes.

use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use ipnet::IpNet;
use svcproxy::manifest;
use svcproxy::model::{Model, Options};
use svcproxy::table::Snapshot;

/// A per-node userspace service proxy and load balancer for Kubernetes Services.
#[derive(Parser)]
#[command(name = "svcproxy", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate manifests and print the Services table (exit 1 if any object is invalid).
    Check {
        /// Manifest files or directories (walked for *.yaml, *.yml, *.json).
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
        #[command(flatten)]
        node: NodeArgs,
    },
}

/// Settings that change what the model computes.
#[derive(Args)]
struct NodeArgs {
    /// Pool for Services without spec.clusterIP.
    #[arg(long, value_name = "CIDR", default_value = "10.96.0.0/12")]
    service_cidr: IpNet,
    /// This node's name, for trafficPolicy Local [default: the hostname].
    #[arg(long, value_name = "NAME")]
    node_name: Option<String>,
    /// Serve only Services labelled service.kubernetes.io/service-proxy-name=NAME.
    #[arg(long, value_name = "NAME")]
    service_proxy_name: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match cli.command {
        Command::Check { paths, node } => check(&paths, &node),
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Exit 0 when every object is valid, 1 when any is not (valid ones are
/// still listed).
fn check(paths: &[PathBuf], node: &NodeArgs) -> ExitCode {
    let loaded = manifest::load(paths);
    let model = Model::build(&loaded.objects, &node.options());
    let mut errors: Vec<String> = loaded
        .errors
        .into_iter()
        .flat_map(manifest::Error::flatten)
        .map(|e| e.to_string())
        .collect();
    errors.extend(model.errors.iter().map(ToString::to_string));
    let wildcard = [IpAddr::V4(Ipv4Addr::UNSPECIFIED)];
    let snapshot = Snapshot::build(model, 1, &wildcard, &node.node_name());
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(svcproxy::check::render(&snapshot).as_bytes());
    let mut stderr = std::io::stderr().lock();
    for error in &errors {
        let _ = writeln!(stderr, "{error}");
    }
    for note in svcproxy::check::notes(&snapshot) {
        let _ = writeln!(stderr, "note: {note}");
    }
    if errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

impl NodeArgs {
    fn options(&self) -> Options {
        Options {
            service_cidr: self.service_cidr,
            node_name: self.node_name(),
            service_proxy_name: self.service_proxy_name.clone(),
        }
    }

    fn node_name(&self) -> String {
        self.node_name.clone().unwrap_or_else(hostname)
    }
}

/// The kernel's hostname, as kube-proxy defaults `--hostname-override`.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_lowercase())
        .unwrap_or_default()
}
