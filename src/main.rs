//! The `svcproxy` command line: argument parsing, logging, exit codes
//! (0 ok, 1 invalid input from `check`, 2 usage or startup error).

use std::io::{IsTerminal as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use ipnet::IpNet;
use svcproxy::context::{HttpLimits, Splice, UdpLimits};
use svcproxy::daemon::{self, Config};
use svcproxy::manifest::Judged;
use svcproxy::model::{Model, Options, ServiceCidrs};
use svcproxy::source::Files;
use svcproxy::source::api::Endpoint;
use svcproxy::table::Snapshot;

/// mimalloc rather than glibc's malloc: a Snapshot build is mostly small
/// allocations and frees, where glibc spent a quarter of a cold build
/// (`_int_malloc`, `malloc_consolidate`); with mimalloc the cold build at
/// 10,000 Services takes 45 ms instead of 75 (benches/snapshot.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A per-node userspace service proxy and load balancer for Kubernetes Services.
#[derive(Parser)]
#[command(name = "svcproxy", version, about, term_width = 0)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve every Service: listen on each ClusterIP:port, NodePort and
    /// external IP, forward each connection to a ready endpoint. Services
    /// and endpoints come from --manifests, from the API server
    /// (--kubeconfig, --master), or both (the API server's object wins). No
    /// source flag is required: with none of them, the API server of the
    /// in-cluster configuration is followed (the pod's service account;
    /// outside a pod that is a startup error).
    #[command(
        override_usage = "svcproxy run [--manifests PATH]... [--kubeconfig PATH] [--master URL] [OPTIONS]"
    )]
    Run(Box<RunArgs>),
    /// Validate manifests and print the Services table (exit 1 if any object is invalid).
    Check {
        /// Manifest files or directories (walked for *.yaml, *.yml, *.json).
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// Every unknown field is an error (kubectl's --validate=strict);
        /// without it only a near miss of a known field is.
        #[arg(long)]
        strict: bool,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Start three hello pods on 127.0.1.1-3:8000 and the proxy on config/demo.
    Demo,
}

/// The help heading of the source flags: which one is needed, and what
/// serves when none is given.
const SOURCES: &str =
    "Sources (any, combined; with none: the API server of the in-cluster configuration)";

#[derive(Args)]
struct RunArgs {
    /// A manifest file or directory (repeatable; walked for *.yaml, *.yml, *.json).
    #[arg(long = "manifests", value_name = "PATH", help_heading = SOURCES)]
    manifests: Vec<PathBuf>,
    /// Follow the API server of this kubeconfig (its current context).
    #[arg(long, value_name = "PATH", help_heading = SOURCES)]
    kubeconfig: Option<PathBuf>,
    /// Follow the API server at this URL (overrides the kubeconfig's server).
    #[arg(long, value_name = "URL", help_heading = SOURCES)]
    master: Option<String>,
    /// At most one rebuild per period (kube-proxy's flag); a change after a
    /// quiet period is applied at once.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = humantime::parse_duration)]
    min_sync_period: Duration,
    #[command(flatten)]
    node: NodeArgs,
    /// NodePorts listen on local addresses in these CIDRs [default: all addresses].
    #[arg(long, value_name = "CIDR,...", value_delimiter = ',')]
    nodeport_addresses: Vec<IpNet>,
    /// Where /metrics is served.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:10249")]
    metrics_bind_address: SocketAddr,
    /// Where /healthz and /livez are served.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:10256")]
    healthz_bind_address: SocketAddr,
    /// Bound on each attempt to connect to an endpoint (250ms, 1s, ...).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = humantime::parse_duration)]
    connect_timeout: Duration,
    /// When a TCP direction moves bytes with splice(2) instead of a userspace
    /// copy: auto (once a read fills a 32 KiB buffer), always, never.
    #[arg(long, value_enum, default_value = "auto")]
    splice: SpliceMode,
    /// Once one side of a TCP connection has closed, the connection is reset
    /// when the other sends nothing for this long (kube-proxy's flag; 0: never).
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = humantime::parse_duration)]
    conntrack_tcp_timeout_close_wait: Duration,
    /// On SIGTERM, how long live connections may finish.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    drain_timeout: Duration,
    /// HTTP ports: a request head must arrive whole within this of its first
    /// byte (a connection's first request: of the accept).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    http_header_timeout: Duration,
    /// HTTP ports: a client connection with no request in flight is closed
    /// when its next request does not begin within this.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    http_idle_timeout: Duration,
    /// A UDP flow ends after this much silence both ways (kube-proxy's flag).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    udp_timeout: Duration,
    /// Client connections open at once (HAProxy's maxconn): at the bound,
    /// accepting pauses and new clients wait in the kernel's backlog
    /// [default: half the descriptor limit, a proxied connection holds two].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    max_connections: Option<u64>,
    /// Bound on the UDP flow table (never above half the descriptor limit).
    #[arg(long, value_name = "N", default_value = "10000")]
    udp_max_flows: usize,
    /// HTTP ports: bound on a request head, in bytes (431 beyond).
    #[arg(long, value_name = "BYTES", default_value = "65536")]
    http_max_header_bytes: usize,
    /// HTTP ports: streams a client may have open at once on one HTTP/2 connection.
    #[arg(long, value_name = "N", default_value = "100")]
    http2_max_concurrent_streams: u32,
    /// HTTP ports: log each request as one JSON line on standard output.
    #[arg(long)]
    http_access_log: bool,
    /// Log format; verbosity comes from RUST_LOG.
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
}

/// Settings that change what the model computes.
#[derive(Args)]
struct NodeArgs {
    /// Pools for Services without spec.clusterIP, one CIDR per IP family
    /// (the first is the default family).
    #[arg(long, value_name = "CIDR[,CIDR]", default_value = "10.96.0.0/12")]
    service_cidr: ServiceCidrs,
    /// This node's name: trafficPolicy Local, topology hints (its Node's zone), /healthz while the Node leaves [default: the hostname].
    #[arg(long, value_name = "NAME")]
    node_name: Option<String>,
    /// Serve only Services labelled service.kubernetes.io/service-proxy-name=NAME.
    #[arg(long, value_name = "NAME")]
    service_proxy_name: Option<String>,
    /// Also treat ports named http, http-*, http2, grpc, grpc-* as HTTP (appProtocol decides otherwise).
    #[arg(long)]
    http_by_port_name: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum SpliceMode {
    Auto,
    Always,
    Never,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { paths, strict, node } => {
            init_logging(LogFormat::Text, "warn");
            check(&paths, strict, &node)
        }
        Command::Run(args) => {
            // kube-rs logs each failed request of a watcher that is
            // retrying; the API source logs each change of state instead.
            init_logging(
                args.log_format,
                "info,kube_client::client::builder=off,kube_runtime::watcher=error",
            );
            exit(serve(args.config(), false))
        }
        Command::Demo => {
            // Quiet but for the ready and stopped lines.
            init_logging(LogFormat::Text, "warn,svcproxy::daemon::status=info");
            exit(demo())
        }
    }
}

fn init_logging(format: LogFormat, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let ansi = std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn exit(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("svcproxy: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs the daemon on a runtime with one worker per CPU this process may
/// use (`available_parallelism` honours the affinity mask and cgroup quota).
/// On one CPU the runtime is single-threaded: no work stealing, no
/// cross-thread wake-ups, no atomics on the task queue.
fn serve(config: Config, demo: bool) -> anyhow::Result<()> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut builder = if workers == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(workers);
        builder
    };
    // 8 MiB, as the main thread that runs `check`: rebuilds run on these
    // threads and the YAML parser recurses once per nesting level up to
    // its 100-level budget, which overflows tokio's default 2 MiB in a
    // debug build (a thread only touches the stack it uses).
    builder.thread_stack_size(8 << 20);
    let runtime = builder.enable_all().build().context("cannot start the runtime")?;
    let result = runtime.block_on(async {
        let (ready, started) = tokio::sync::oneshot::channel();
        if demo {
            svcproxy::demo::start_pods().await.context("cannot start the demo pods")?;
            let (healthz, metrics) = (config.healthz_addr, config.metrics_addr);
            tokio::spawn(async move {
                if started.await.is_ok() {
                    print!(
                        "{}",
                        svcproxy::demo::instructions(&healthz.to_string(), &metrics.to_string())
                    );
                    let _ = std::io::stdout().flush();
                }
            });
        }
        daemon::run(config, Some(ready)).await.map_err(anyhow::Error::from)
    });
    // Live connections are drained by now; a rebuild cut short by a signal
    // may still run on the blocking pool: the exit does not wait for it.
    runtime.shutdown_background();
    result
}

fn demo() -> anyhow::Result<()> {
    let manifests = svcproxy::demo::manifests().context("cannot write the demo manifests")?;
    let config = Config {
        manifests: vec![manifests],
        api: None,
        options: NodeArgs::defaults().options(),
        // Loopback only: the demo is never reachable from another host.
        nodeport_cidrs: vec!["127.0.0.0/8".parse()?],
        metrics_addr: SocketAddr::from(([127, 0, 0, 1], 10249)),
        healthz_addr: SocketAddr::from(([127, 0, 0, 1], 10256)),
        connect_timeout: Duration::from_secs(1),
        splice: Splice::Auto,
        drain_timeout: Duration::from_secs(1),
        udp: UdpLimits::default(),
        min_sync_period: Duration::from_secs(1),
        http: HttpLimits::default(),
        access_log: false,
        max_connections: None,
        close_wait: Some(Duration::from_secs(3600)),
    };
    serve(config, true)
}

/// Exit 0 when every object is valid, 1 when any is not (valid ones are
/// still listed).
fn check(paths: &[PathBuf], strict: bool, node: &NodeArgs) -> ExitCode {
    // Read as `run` reads them.
    let (files, errors) = Files::new(paths.to_vec()).read();
    // Nothing could be read: the errors say it all, an empty table adds nothing.
    let listed = paths.iter().any(|p| !errors.iter().any(|e| e.missing() == Some(p.as_path())));
    let unknown = Judged::of(files.objects(), strict);
    let model = Model::check(files.objects().filter(|o| unknown.accepts(o)), &node.options());
    let mut errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
    errors.extend(unknown.errors);
    errors.extend(model.errors.iter().map(ToString::to_string));
    // The model holds all the table needs: the decoded objects go before
    // the table is built (a large file's objects are most of its peak).
    drop(files);
    let wildcard = [IpAddr::V4(Ipv4Addr::UNSPECIFIED), IpAddr::V6(Ipv6Addr::UNSPECIFIED)];
    let snapshot = Snapshot::build(model, &Snapshot::default(), &wildcard, &node.node_name(), None);
    let mut stdout = std::io::stdout().lock();
    if listed {
        let _ = stdout.write_all(svcproxy::render::table(&snapshot).as_bytes());
    }
    let mut stderr = std::io::stderr().lock();
    for error in &errors {
        let _ = writeln!(stderr, "{error}");
    }
    for warning in &unknown.warnings {
        let _ = writeln!(stderr, "warning: {warning}");
    }
    for note in svcproxy::render::notes(&snapshot) {
        let _ = writeln!(stderr, "note: {note}");
    }
    if errors.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

impl RunArgs {
    fn config(&self) -> Config {
        Config {
            manifests: self.manifests.clone(),
            api: Endpoint::choose(
                self.kubeconfig.as_deref(),
                self.master.as_deref(),
                !self.manifests.is_empty(),
            ),
            options: self.node.options(),
            nodeport_cidrs: self.nodeport_addresses.clone(),
            metrics_addr: self.metrics_bind_address,
            healthz_addr: self.healthz_bind_address,
            connect_timeout: self.connect_timeout,
            splice: match self.splice {
                SpliceMode::Auto => Splice::Auto,
                SpliceMode::Always => Splice::Always,
                SpliceMode::Never => Splice::Never,
            },
            drain_timeout: self.drain_timeout,
            udp: UdpLimits { timeout: self.udp_timeout, max_flows: self.udp_max_flows },
            min_sync_period: self.min_sync_period,
            http: HttpLimits {
                header_timeout: self.http_header_timeout,
                idle_timeout: self.http_idle_timeout,
                max_header_bytes: self.http_max_header_bytes,
                max_streams: self.http2_max_concurrent_streams,
            },
            access_log: self.http_access_log,
            max_connections: self.max_connections,
            close_wait: Some(self.conntrack_tcp_timeout_close_wait)
                .filter(|timeout| !timeout.is_zero()),
        }
    }
}

impl NodeArgs {
    fn defaults() -> Self {
        Self {
            service_cidr: Options::DEFAULT_SERVICE_CIDR,
            node_name: None,
            service_proxy_name: None,
            http_by_port_name: false,
        }
    }

    fn options(&self) -> Options {
        Options {
            service_cidr: self.service_cidr,
            node_name: self.node_name(),
            service_proxy_name: self.service_proxy_name.clone(),
            http_by_port_name: self.http_by_port_name,
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
