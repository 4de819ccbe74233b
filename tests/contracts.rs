//! The contracts of DESIGN §2 (command line), §4 (hot swap, signals,
//! sockets) and §5 (metrics and health) that no other test file shows, end
//! to end on the real binary. Each test names the contract point it holds
//! svcproxy to. The points shown elsewhere:
//!
//! - §2 usage errors of `check`, kube-proxy's flags: tests/check_cli.rs;
//!   `check` exit 0/1 and its table: tests/check_valid.rs,
//!   check_invalid.rs, check_partial.rs, check_config.rs; the metrics
//!   port taken: tests/run_faults.rs; `demo`: tests/demo.rs.
//! - §4 swaps under live connections, a frontend never re-bound, memory
//!   bounded across generations: tests/reload.rs; SIGTERM drain, its
//!   timeout, a second SIGTERM, SIGINT, SIGHUP: tests/signals.rs.
//! - §5 labels of every family with series, `promtool`:
//!   tests/metrics_exposition.rs; counter values: metrics_traffic.rs,
//!   metrics_rejects.rs, metrics_churn.rs; `/healthz` and `/livez` 200 and
//!   503 while draining: tests/admin_health.rs; `/debug/routes`:
//!   tests/admin_routes.rs.
//!
//! Black-box: the real binary, real sockets, loopback addresses of each
//! test's own (`support::net::fresh_ip`); every wait has a deadline.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::io::{self, ErrorKind, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use socket2::{Domain, SockAddr, Socket, Type};
use support::admin::{self, Admin, rfc3339, routes};
use support::endpoint::Endpoint;
use support::manifests::{Port, ipv4, pod_at, service, simple_service, write_in_place};
use support::net::{self, addr, eventually, fetch, fresh_ip, refuses};
use support::prom::Exposition;
use support::proxy::{self, Proxy};
use support::tagged::{Conn, Named, PORT, service_of, visit_expecting, wait_reaching};
use support::tools::promtool_complaints;

/// Bound on every wait that is not itself the point of a test.
const WAIT: Duration = Duration::from_secs(10);
/// "At once" for a listener closing on SIGTERM (as tests/signals.rs).
const STOP_ACCEPTING: Duration = Duration::from_millis(500);

/// Every family DESIGN §5 names, with its type.
const DESIGN_FAMILIES: [(&str, &str); 16] = [
    ("svcproxy_connections_total", "counter"),
    ("svcproxy_connections_active", "gauge"),
    ("svcproxy_received_bytes_total", "counter"),
    ("svcproxy_sent_bytes_total", "counter"),
    ("svcproxy_endpoint_connections_total", "counter"),
    ("svcproxy_endpoint_connect_errors_total", "counter"),
    ("svcproxy_rejected_connections_total", "counter"),
    ("svcproxy_http_requests_total", "counter"),
    ("svcproxy_http_request_duration_seconds", "histogram"),
    ("svcproxy_config_reloads_total", "counter"),
    ("svcproxy_config_invalid_objects", "gauge"),
    ("svcproxy_routing_generation", "gauge"),
    ("svcproxy_services", "gauge"),
    ("svcproxy_endpoints", "gauge"),
    ("kubeproxy_sync_proxy_rules_duration_seconds", "histogram"),
    ("kubeproxy_sync_proxy_rules_last_timestamp_seconds", "gauge"),
];

/// The families of the HTTP mode, which README's "Not yet" lists: their
/// values are not checked, only that they are exposed.
fn is_http_family(name: &str) -> bool {
    name.starts_with("svcproxy_http_")
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs_f64()
}

/// A NodePort (30000–32767) derived from a fresh address, so concurrent
/// tests almost never pick the same one (and each binds its own node IP).
fn fresh_node_port() -> u16 {
    let [_, b, c, d] = fresh_ip().octets();
    let n = (u32::from(b) << 16) | (u32::from(c) << 8) | u32::from(d);
    30_000 + (n % 2_768) as u16
}

/// Writes `text` to `path`, making its parent directories.
fn write_file(path: &Path, text: &str) {
    let dir = path.parent().expect("a parent directory");
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    write_in_place(path, text);
}

/// Service `name` at `ip:PORT` and the Pod of `endpoint`, as one JSON
/// `v1 List` (what [`service_of`] writes as YAML).
fn json_service_of(name: &str, ip: Ipv4Addr, endpoint: &Named) -> String {
    let pod_ip = ipv4(endpoint.addr()).to_string();
    let list = json!({
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": { "name": name, "namespace": "default" },
                "spec": {
                    "clusterIP": ip.to_string(),
                    "selector": { "app": name },
                    "ports": [{ "name": "tcp", "protocol": "TCP", "port": PORT, "targetPort": "tcp" }]
                }
            },
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": { "name": endpoint.name, "namespace": "default", "labels": { "app": name } },
                "spec": {
                    "containers": [{
                        "name": "main",
                        "image": "test",
                        "ports": [{ "name": "tcp", "containerPort": endpoint.addr().port() }]
                    }]
                },
                "status": {
                    "phase": "Running",
                    "podIP": pod_ip,
                    "conditions": [{ "type": "Ready", "status": "True" }]
                }
            }
        ]
    });
    serde_json::to_string_pretty(&list).expect("JSON")
}

/// `count` headless Services in one JSON `kind: List`: cheap to serve (no
/// frontend) but a second or so of parsing in a debug build, so the first
/// Snapshot takes a while to appear.
fn slow_first_build(count: usize) -> String {
    let items: Vec<Value> = (0..count)
        .map(|i| {
            json!({
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": { "name": format!("slow-{i}"), "namespace": "default" },
                "spec": { "clusterIP": "None", "ports": [{ "port": 80 }] }
            })
        })
        .collect();
    json!({ "apiVersion": "v1", "kind": "List", "items": items }).to_string()
}

/// A socket bound to `to` the way another process would try it, with
/// SO_REUSEADDR and SO_REUSEPORT as asked.
fn bind_like_another_process(to: SocketAddr, reuse_addr: bool, reuse_port: bool) -> io::Result<()> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.set_reuse_address(reuse_addr)?;
    socket.set_reuse_port(reuse_port)?;
    socket.bind(&SockAddr::from(to))?;
    socket.listen(1)
}

/// `GET path` with `Connection: close`: the status line, the headers
/// (lower-cased names) and the body.
fn get_with_headers(to: SocketAddr, path: &str) -> (String, BTreeMap<String, String>, String) {
    let mut stream = net::connect(to).unwrap_or_else(|e| panic!("connect {to}: {e}"));
    let request = format!("GET {path} HTTP/1.1\r\nHost: {to}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("send the request");
    let answer = net::text(net::read_to_end(&mut stream).expect("read the answer")).expect("UTF-8");
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    let mut lines = head.lines();
    let status = lines.next().unwrap_or_default().to_owned();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

/// `/metrics` of `proxy`, parsed.
fn scrape(proxy: &mut Proxy) -> Exposition {
    support::metrics::scrape(proxy)
}

/// The `# HELP` lines of an exposition, by family.
fn help_lines(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# HELP "))
        .filter_map(|l| l.split_once(' '))
        .map(|(name, help)| (name.to_owned(), help.to_owned()))
        .collect()
}

/// The families of `families` that are not exposed with a `# HELP` line
/// and a `# TYPE` line of their type, each with what is wrong.
fn missing_families<'a>(
    metrics: &Exposition,
    families: impl Iterator<Item = &'a (&'a str, &'a str)>,
) -> Vec<String> {
    let help = help_lines(&metrics.text);
    let mut wrong = Vec::new();
    for &(name, kind) in families {
        match metrics.types.get(name).map(String::as_str) {
            Some(have) if have == kind => {}
            Some(have) => wrong.push(format!("{name}: # TYPE {have}, DESIGN says {kind}")),
            None => wrong.push(format!("{name}: no # TYPE line")),
        }
        if help.get(name).is_none_or(|h| h.trim().is_empty()) {
            wrong.push(format!("{name}: no # HELP line"));
        }
    }
    wrong
}

// --- §2: the command line ---

/// DESIGN §2: `--manifests PATH` is repeatable, a file or a directory
/// walked recursively for `*.yaml`, `*.yml` and `*.json` (nothing else),
/// and every path is watched.
#[test]
fn every_manifests_path_is_read_recursively_by_extension_and_watched() {
    let (web_ip, api_ip, solo_ip, txt_ip) = (fresh_ip(), fresh_ip(), fresh_ip(), fresh_ip());
    let (web, api, solo, txt) =
        (addr(web_ip, PORT), addr(api_ip, PORT), addr(solo_ip, PORT), addr(txt_ip, PORT));
    let (w, a1, a2, s1, s2, t) = (
        Named::echo("w"),
        Named::echo("a1"),
        Named::echo("a2"),
        Named::echo("s1"),
        Named::echo("s2"),
        Named::echo("t"),
    );
    let root = tempfile::tempdir().expect("temp dir");
    let dir = root.path().join("manifests");
    write_file(&dir.join("nested/deeper/web.yml"), &service_of("web", web_ip, &[&w]));
    let api_file = dir.join("nested/api.json");
    write_file(&api_file, &json_service_of("api", api_ip, &a1));
    // Not a manifest extension: never read.
    write_file(&dir.join("nested/notes.txt"), &service_of("txt", txt_ip, &[&t]));
    // A second --manifests, naming one file in a directory of its own.
    let solo_file = root.path().join("solo").join("solo.yaml");
    write_file(&solo_file, &service_of("solo", solo_ip, &[&s1]));
    let solo_arg = solo_file.to_str().expect("UTF-8 path").to_owned();
    let mut proxy = Proxy::start_on(root, &dir, &["--manifests", &solo_arg]);
    proxy.wait_ready(|| {
        visit_expecting(web, "w")?;
        visit_expecting(api, "a1")?;
        visit_expecting(solo, "s1")
    });
    assert!(refuses(txt), "a Service from a .txt file is served at {txt}\n{}", proxy.log());

    // Both paths are watched.
    write_in_place(&api_file, &json_service_of("api", api_ip, &a2));
    write_in_place(&solo_file, &service_of("solo", solo_ip, &[&s2]));
    wait_reaching(api, "a2", WAIT);
    wait_reaching(solo, "s2", WAIT);
    visit_expecting(web, "w").expect("web after the other files changed");
}

/// DESIGN §4: "SIGHUP re-reads every source": two `--manifests`
/// directories, each holding a symlink to a file elsewhere (a change the
/// watcher does not see); one SIGHUP applies both changes.
#[test]
fn sighup_rereads_every_manifests_path() {
    use std::os::unix::fs::symlink;
    let (web_ip, api_ip) = (fresh_ip(), fresh_ip());
    let (web, api) = (addr(web_ip, PORT), addr(api_ip, PORT));
    let (w1, w2, a1, a2) =
        (Named::echo("w1"), Named::echo("w2"), Named::echo("a1"), Named::echo("a2"));
    let outside = tempfile::tempdir().expect("temp dir");
    let (web_target, api_target) =
        (outside.path().join("web.yaml"), outside.path().join("api.yaml"));
    write_in_place(&web_target, &service_of("web", web_ip, &[&w1]));
    write_in_place(&api_target, &service_of("api", api_ip, &[&a1]));
    let root = tempfile::tempdir().expect("temp dir");
    let (first, second) = (root.path().join("first"), root.path().join("second"));
    for (dir, target) in [(&first, &web_target), (&second, &api_target)] {
        std::fs::create_dir(dir).expect("manifests dir");
        symlink(target, dir.join("services.yaml")).expect("symlink");
    }
    let second_arg = second.to_str().expect("UTF-8 path").to_owned();
    let mut proxy = Proxy::start_on(root, &first, &["--manifests", &second_arg]);
    proxy.wait_ready(|| visit_expecting(web, "w1").and_then(|()| visit_expecting(api, "a1")));

    write_in_place(&web_target, &service_of("web", web_ip, &[&w2]));
    write_in_place(&api_target, &service_of("api", api_ip, &[&a2]));
    proxy.signal("HUP");
    wait_reaching(web, "w2", Duration::from_secs(2));
    wait_reaching(api, "a2", Duration::from_secs(2));
}

/// DESIGN §2: "Durations accept `250ms`, `1s`, `5m`", on every duration
/// flag of `run`.
#[test]
fn every_duration_flag_reads_250ms_1s_and_5m() {
    for form in ["250ms", "1s", "5m"] {
        let ip = fresh_ip();
        let frontend = addr(ip, PORT);
        let e = Named::echo("e");
        let flags = ["--connect-timeout", form, "--drain-timeout", form, "--min-sync-period", form];
        let (mut proxy, ()) = Proxy::serving(&service_of("web", ip, &[&e]), &flags, || {
            visit_expecting(frontend, "e")
        });
        proxy.assert_running();
    }
}

/// DESIGN §2 and §4: `--drain-timeout 250ms` is 250 milliseconds: with a
/// connection that never ends, SIGTERM leads to exit 0 about then.
#[test]
fn a_250ms_drain_timeout_ends_the_drain_after_a_quarter_second() {
    let ip = fresh_ip();
    let frontend = addr(ip, PORT);
    let e = Named::echo("e");
    let (mut proxy, ()) =
        Proxy::serving(&service_of("web", ip, &[&e]), &["--drain-timeout", "250ms"], || {
            visit_expecting(frontend, "e")
        });
    let mut live = Conn::open(frontend).expect("open the live connection");
    live.exchange().expect("first exchange");
    proxy.signal("TERM");
    let term = Instant::now();
    let status = proxy
        .wait_exit(Duration::from_secs(5))
        .unwrap_or_else(|| panic!("still running 5 s after SIGTERM\n{}", proxy.log()));
    let took = term.elapsed();
    assert_eq!(status.code(), Some(0), "exit after the drain: {status}\n{}", proxy.log());
    assert!(took >= Duration::from_millis(200), "exited {took:?} after SIGTERM, before 250ms");
    assert!(took < Duration::from_secs(2), "exited {took:?} after SIGTERM with a 250ms drain");
}

/// DESIGN §2: a malformed duration on any flag is a usage error: exit 2,
/// the flag named on stderr, nothing served.
#[test]
fn a_malformed_duration_is_a_usage_error() {
    for flag in ["--connect-timeout", "--drain-timeout", "--min-sync-period"] {
        for bad in ["5x", "", "ms", "1.5.s"] {
            let out = support::run([
                "run",
                "--manifests",
                "config/demo",
                "--metrics-bind-address",
                "127.0.0.1:0",
                "--healthz-bind-address",
                "127.0.0.1:0",
                flag,
                bad,
            ]);
            out.assert_no_panic();
            assert_eq!(out.code(), Some(2), "{flag} {bad:?}\n{out}");
            assert!(out.stderr.contains(flag), "{flag} {bad:?}: stderr names the flag\n{out}");
        }
    }
}

/// DESIGN §2: a usage error of `run` (an unknown flag, a value of the
/// wrong kind) exits 2 and names what is wrong.
#[test]
fn usage_errors_of_run_exit_2() {
    let cases: [(&[&str], &str); 6] = [
        (&["--no-such-flag"], "--no-such-flag"),
        (&["--log-format", "xml"], "--log-format"),
        (&["--service-cidr", "not-a-cidr"], "--service-cidr"),
        (&["--nodeport-addresses", "127.0.0.0/8,bogus"], "--nodeport-addresses"),
        (&["--metrics-bind-address", "nowhere"], "--metrics-bind-address"),
        (&["--healthz-bind-address", "127.0.0.1"], "--healthz-bind-address"),
    ];
    for (flags, named) in cases {
        let mut args = vec!["run", "--manifests", "config/demo"];
        for admin in ["--metrics-bind-address", "--healthz-bind-address"] {
            if !flags.contains(&admin) {
                args.extend([admin, "127.0.0.1:0"]);
            }
        }
        args.extend(flags);
        let out = support::run(&args);
        out.assert_no_panic();
        assert_eq!(out.code(), Some(2), "{flags:?}\n{out}");
        assert!(out.stderr.contains(named), "{flags:?}: stderr names {named}\n{out}");
    }
}

/// DESIGN §2: "2 usage or startup error": the health port already taken
/// is one, named in the message (the metrics port: tests/run_faults.rs).
#[test]
fn a_taken_healthz_port_exits_2_naming_it() {
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken = squatter.local_addr().expect("address").to_string();
    let yaml = simple_service("idle", fresh_ip(), PORT, true);
    let (status, log) = proxy::run_to_exit(
        &yaml,
        &["--healthz-bind-address", &taken, "--metrics-bind-address", "127.0.0.1:0"],
        WAIT,
    );
    assert_eq!(status.code(), Some(2), "exit status {status}; log:\n{log}");
    assert!(log.contains(&taken), "the message should name {taken}; log:\n{log}");
    assert!(log.contains("--healthz-bind-address"), "the message names the flag; log:\n{log}");
    assert!(!log.contains("panicked"), "log:\n{log}");
}

/// DESIGN §2: `--log-format json` writes every log line as one JSON
/// object (level, message and fields), the startup line included.
#[test]
fn log_format_json_writes_one_json_object_per_line() {
    let ip = fresh_ip();
    let frontend = addr(ip, PORT);
    let e = Named::echo("e");
    let mut proxy = Proxy::start(&service_of("web", ip, &[&e]), &["--log-format", "json"]);
    let lines = |proxy: &Proxy| -> Vec<String> {
        // The first line is the guard's own header, not the proxy's.
        proxy.log().lines().skip(1).filter(|l| !l.trim().is_empty()).map(String::from).collect()
    };
    let healthz = eventually("the admin endpoints line, as JSON", WAIT, || {
        let found = lines(&proxy).iter().find_map(|l| {
            let v: Value = serde_json::from_str(l).ok()?;
            (v["fields"]["message"] == "admin endpoints").then(|| v["fields"]["healthz"].clone())
        });
        found.ok_or("not logged yet")
    });
    let healthz: SocketAddr = healthz
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("healthz field {healthz}"));
    proxy.wait_ready(|| visit_expecting(frontend, "e"));
    assert_eq!(admin::http(healthz, "/healthz").0, 200);
    let lines = lines(&proxy);
    assert!(lines.len() >= 2, "{}", proxy.log());
    for line in &lines {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}\n{}", proxy.log()));
        assert!(v["level"].is_string(), "no level: {line}");
        assert!(v["fields"]["message"].is_string(), "no message: {line}");
    }
}

/// DESIGN §2: the defaults of `run`'s flags, as `--help` states them
/// (binding the default admin ports would collide with `svcproxy demo`
/// and with any kube-proxy on the machine).
#[test]
fn run_help_states_the_design_defaults() {
    let out = support::run(["run", "--help"]);
    out.assert_no_panic();
    assert_eq!(out.code(), Some(0), "{out}");
    let defaults: BTreeMap<String, String> = out
        .stdout
        .lines()
        .filter_map(|l| {
            let flag = l.trim_start().strip_prefix("--")?.split_whitespace().next()?;
            let value = l.rsplit_once("[default: ")?.1.split(']').next()?;
            Some((format!("--{flag}"), value.to_owned()))
        })
        .collect();
    for (flag, want) in [
        ("--service-cidr", "10.96.0.0/12"),
        ("--metrics-bind-address", "127.0.0.1:10249"),
        ("--healthz-bind-address", "0.0.0.0:10256"),
        ("--connect-timeout", "1s"),
        ("--drain-timeout", "30s"),
        ("--min-sync-period", "1s"),
        ("--log-format", "text"),
    ] {
        assert_eq!(defaults.get(flag).map(String::as_str), Some(want), "{flag}\n{out}");
    }
}

/// DESIGN §2: `--nodeport-addresses CIDR,..`: a NodePort listens on the
/// local addresses of every CIDR of the list, and on no other.
#[test]
fn nodeport_addresses_take_a_comma_separated_list() {
    let (cluster_ip, node_a, node_b, other) = (fresh_ip(), fresh_ip(), fresh_ip(), fresh_ip());
    let node_port = fresh_node_port();
    let e = Named::echo("e");
    let ports = [Port::tcp(PORT).with_node_port(node_port)];
    let yaml = service("np", cluster_ip, Some("np"), &ports, "  type: NodePort\n") + &e.pod("np");
    let flag = format!("{node_a}/32,{node_b}/32");
    let (a, b) = (addr(node_a, node_port), addr(node_b, node_port));
    let (_proxy, ()) = Proxy::serving(&yaml, &["--nodeport-addresses", &flag], || {
        visit_expecting(a, "e").and_then(|()| visit_expecting(b, "e"))
    });
    assert!(refuses(addr(other, node_port)), "NodePort {node_port} open on {other}, not in {flag}");
}

/// The kernel's hostname, as svcproxy (and kube-proxy) default the node
/// name to it.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("/proc/sys/kernel/hostname")
        .trim()
        .to_lowercase()
}

/// DESIGN §2: `--node-name` defaults to the hostname: with
/// `internalTrafficPolicy: Local` and no `--node-name`, the ClusterIP
/// reaches only the endpoint whose `nodeName` is this host's name.
#[test]
fn node_name_defaults_to_the_hostname() {
    let ip = fresh_ip();
    let frontend = addr(ip, PORT);
    let (local, remote) =
        (Endpoint::name(fresh_ip(), "local"), Endpoint::name(fresh_ip(), "remote"));
    let node = hostname();
    assert!(!node.is_empty() && node != "elsewhere", "hostname {node:?}");
    let mut yaml = service("itp", ip, None, &[Port::tcp(PORT)], "  internalTrafficPolicy: Local\n");
    for (i, (endpoint, node)) in
        [(&local, node.as_str()), (&remote, "elsewhere")].into_iter().enumerate()
    {
        yaml.push_str(&format!(
            "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: itp-{i}\n\
             \x20 namespace: default\n  labels:\n    kubernetes.io/service-name: itp\n\
             addressType: IPv4\nports:\n  - name: tcp\n    protocol: TCP\n    port: {}\n\
             endpoints:\n  - addresses:\n      - {}\n    nodeName: {node}\n",
            endpoint.port(),
            ipv4(endpoint.addr),
        ));
    }
    let (_proxy, first) = Proxy::serving(&yaml, &[], || fetch(frontend));
    assert_eq!(first, "local");
    for i in 0..6 {
        assert_eq!(fetch(frontend).unwrap_or_else(|e| panic!("client {i}: {e}")), "local");
    }
}

/// A `svcproxy run` started with `RUST_LOG` set; killed when dropped.
struct WithRustLog {
    child: std::process::Child,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl WithRustLog {
    fn start(level: &str, yaml: &str) -> WithRustLog {
        let dir = tempfile::tempdir().expect("temp dir");
        let admin =
            ["--metrics-bind-address", "127.0.0.1:0", "--healthz-bind-address", "127.0.0.1:0"];
        let (mut cmd, log) = proxy::command(dir.path(), yaml, &admin);
        cmd.env("RUST_LOG", level);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        WithRustLog { child, log, _dir: dir }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for WithRustLog {
    fn drop(&mut self) {
        // Our own child, by its handle.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// DESIGN §2: "verbosity via RUST_LOG": `warn` leaves out the INFO lines
/// (the startup line among them), `debug` adds DEBUG lines.
#[test]
fn rust_log_sets_the_verbosity() {
    for (level, wanted, unwanted) in
        [("warn", None, Some(" INFO ")), ("debug", Some(" DEBUG "), None)]
    {
        let ip = fresh_ip();
        let frontend = addr(ip, PORT);
        let e = Named::echo("e");
        let mut proxy = WithRustLog::start(level, &service_of("web", ip, &[&e]));
        eventually(&format!("serving with RUST_LOG={level}"), WAIT, || {
            if let Ok(Some(status)) = proxy.child.try_wait() {
                panic!("exited ({status})\n{}", proxy.log());
            }
            visit_expecting(frontend, "e")
        });
        if let Some(wanted) = wanted {
            eventually(&format!("a{wanted}line with RUST_LOG={level}"), WAIT, || {
                if proxy.log().contains(wanted) { Ok(()) } else { Err(proxy.log()) }
            });
        }
        if let Some(unwanted) = unwanted {
            let log = proxy.log();
            assert!(!log.contains(unwanted), "RUST_LOG={level} logged{unwanted}lines:\n{log}");
        }
    }
}

// --- §4: sockets and signals ---

/// DESIGN §4: listeners set SO_REUSEADDR, so a restart does not wait for
/// TIME_WAIT: the first proxy's closed connections leave TIME_WAIT
/// sockets on the frontend (a bind without SO_REUSEADDR fails there), yet
/// a second proxy binds it at once.
#[test]
fn a_restarted_proxy_binds_its_frontend_over_time_wait_at_once() {
    let ip = fresh_ip();
    let frontend = addr(ip, PORT);
    // The endpoint closes first, so the proxy closes its client side first
    // and that socket, on the frontend address, ends in TIME_WAIT.
    let e = Endpoint::name(fresh_ip(), "tw-1");
    let yaml = simple_service("tw", ip, PORT, true) + &pod_at("tw-1", "tw", e.addr);
    let (mut first, _) = Proxy::serving(&yaml, &[], || fetch(frontend));
    for i in 0..3 {
        assert_eq!(fetch(frontend).unwrap_or_else(|err| panic!("client {i}: {err}")), "tw-1");
    }
    first.signal("TERM");
    let status = first
        .wait_exit(WAIT)
        .unwrap_or_else(|| panic!("first proxy still running\n{}", first.log()));
    assert_eq!(status.code(), Some(0), "{}", first.log());
    match bind_like_another_process(frontend, false, false) {
        Err(err) if err.kind() == ErrorKind::AddrInUse => {}
        other => panic!(
            "no TIME_WAIT left on {frontend} (a plain bind gave {other:?}): the test cannot \
             show SO_REUSEADDR"
        ),
    }

    let start = Instant::now();
    let (second, _) = Proxy::serving(&yaml, &[], || fetch(frontend));
    let took = start.elapsed();
    assert!(
        !second.warned(&["cannot bind frontend"]),
        "the restart could not bind at first ({took:?})\n{}",
        second.log()
    );
}

/// DESIGN §4: never SO_REUSEPORT: while the proxy serves a frontend, no
/// other socket can bind it, even one that sets SO_REUSEPORT itself.
#[test]
fn no_other_socket_can_share_a_frontend_through_so_reuseport() {
    let ip = fresh_ip();
    let frontend = addr(ip, PORT);
    let e = Named::echo("e");
    let (mut proxy, ()) =
        Proxy::serving(&service_of("web", ip, &[&e]), &[], || visit_expecting(frontend, "e"));
    for (reuse_addr, reuse_port) in [(true, true), (false, true)] {
        match bind_like_another_process(frontend, reuse_addr, reuse_port) {
            Err(err) if err.kind() == ErrorKind::AddrInUse => {}
            other => panic!(
                "binding {frontend} with SO_REUSEADDR={reuse_addr} SO_REUSEPORT={reuse_port} \
                 beside the proxy gave {other:?}\n{}",
                proxy.log()
            ),
        }
    }
    visit_expecting(frontend, "e").expect("the proxy still serves its frontend");
    proxy.assert_running();
}

/// DESIGN §4: "On SIGTERM: stop accepting at once (close every
/// listener)": ClusterIP, externalIP, LoadBalancer ingress and NodePort
/// all refuse within half a second while a live connection keeps the
/// drain going, and that connection still works.
#[test]
fn sigterm_closes_every_kind_of_frontend_at_once() {
    let (cluster_ip, external_ip, ingress_ip, node_ip) =
        (fresh_ip(), fresh_ip(), fresh_ip(), fresh_ip());
    let node_port = fresh_node_port();
    let e = Named::echo("e");
    let spec = format!(
        "  type: LoadBalancer\n  externalIPs:\n    - {external_ip}\nstatus:\n  loadBalancer:\n    \
         ingress:\n      - ip: {ingress_ip}\n"
    );
    let yaml =
        service("lb", cluster_ip, Some("lb"), &[Port::tcp(PORT).with_node_port(node_port)], &spec)
            + &e.pod("lb");
    let frontends = [
        addr(cluster_ip, PORT),
        addr(external_ip, PORT),
        addr(ingress_ip, PORT),
        addr(node_ip, node_port),
    ];
    let flag = format!("{node_ip}/32");
    let (mut proxy, ()) =
        Proxy::serving(&yaml, &["--nodeport-addresses", &flag, "--drain-timeout", "30s"], || {
            frontends.iter().try_for_each(|f| visit_expecting(*f, "e"))
        });
    let mut live = Conn::open(frontends[0]).expect("open the live connection");
    live.exchange().expect("first exchange");

    proxy.signal("TERM");
    let term = Instant::now();
    for frontend in frontends {
        while !refuses(frontend) {
            assert!(
                term.elapsed() < STOP_ACCEPTING,
                "{frontend} still accepts {:?} after SIGTERM\n{}",
                term.elapsed(),
                proxy.log()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    assert!(proxy.running(), "exited while a connection was live\n{}", proxy.log());
    live.exchange().expect("the live connection while draining");
    live.finish().expect("the live connection ends cleanly");
    let status = proxy
        .wait_exit(WAIT)
        .unwrap_or_else(|| panic!("still running after the last connection\n{}", proxy.log()));
    assert_eq!(status.code(), Some(0), "{}", proxy.log());
}

/// Sends `signal` while the first rebuild runs (10,000 Services, a second
/// or more) and expects the exit code `code` within a second: nothing is
/// served yet, so neither signal has anything to wait for.
fn signal_during_a_slow_first_build(signal: &str, code: i32) {
    let root = tempfile::tempdir().expect("temp dir");
    let dir = root.path().join("manifests");
    write_file(&dir.join("slow.json"), &slow_first_build(10_000));
    let mut proxy = Proxy::start_on(root, &dir, &[]);
    let admin = proxy.admin();
    // Read before the signal: 0 means the build is still running.
    let generation = admin.sample("svcproxy_routing_generation").unwrap_or(-1.0);
    proxy.signal(signal);
    let sent = Instant::now();
    let status = proxy
        .wait_exit(WAIT)
        .unwrap_or_else(|| panic!("still running {WAIT:?} after SIG{signal}\n{}", proxy.log()));
    let took = sent.elapsed();
    assert_eq!(status.code(), Some(code), "{status}\n{}", proxy.log());
    assert_eq!(generation, 0.0, "the first build ended before SIG{signal}: nothing shown");
    assert!(took < Duration::from_secs(1), "exited {took:?} after SIG{signal}\n{}", proxy.log());
}

/// DESIGN §4: "SIGINT exits at once", also while a rebuild runs.
#[test]
fn sigint_during_a_slow_first_build_exits_at_once() {
    signal_during_a_slow_first_build("INT", 0);
}

/// DESIGN §4 on SIGTERM, also while the first rebuild runs: nothing to
/// drain, so it exits 0 at once, without waiting for the rebuild.
#[test]
fn sigterm_during_a_slow_first_build_exits_cleanly_at_once() {
    signal_during_a_slow_first_build("TERM", 0);
}

// --- §5: metrics and health ---

/// DESIGN §5: every family of the table that has no series yet (no
/// Service, no traffic) is still on `/metrics` with `# HELP` and its
/// `# TYPE`, served as Prometheus text. (The HTTP families: next test.)
#[test]
fn every_design_family_is_exposed_with_help_and_type_before_any_traffic() {
    let mut proxy = Proxy::start("", &[]);
    proxy.wait_metric("svcproxy_routing_generation", WAIT, |g| g >= 1.0);
    let admin = proxy.admin();
    let (status, headers, _) = get_with_headers(admin.metrics, "/metrics");
    assert!(status.contains(" 200 "), "{status}");
    let content_type = headers.get("content-type").map(String::as_str).unwrap_or_default();
    assert!(content_type.starts_with("text/plain"), "Content-Type {content_type:?}");
    let metrics = scrape(&mut proxy);
    let wrong = missing_families(
        &metrics,
        DESIGN_FAMILIES.iter().filter(|(name, _)| !is_http_family(name)),
    );
    assert!(wrong.is_empty(), "{wrong:#?}\n{}", metrics.text);
    let complaints = promtool_complaints(&metrics.text);
    assert!(complaints.is_empty(), "promtool: {complaints}\n{}", metrics.text);
}

/// DESIGN §5 names `svcproxy_http_requests_total` (counter) and
/// `svcproxy_http_request_duration_seconds` (histogram); the text format
/// allows a family with no sample, and svcproxy writes its other
/// families that way, so they should be exposed before the HTTP mode
/// gives them values.
#[test]
fn the_http_families_are_exposed_with_help_and_type() {
    let ip = fresh_ip();
    let frontend = addr(ip, PORT);
    let e = Named::echo("e");
    let (mut proxy, ()) =
        Proxy::serving(&service_of("web", ip, &[&e]), &[], || visit_expecting(frontend, "e"));
    let metrics = scrape(&mut proxy);
    let wrong =
        missing_families(&metrics, DESIGN_FAMILIES.iter().filter(|(name, _)| is_http_family(name)));
    assert!(wrong.is_empty(), "{wrong:#?}\n{}", metrics.text);
}

/// DESIGN §5: "Counters end in `_total`, times in `_seconds`, sizes in
/// `_bytes`": every family on `/metrics` after traffic, and every sample
/// belongs to a family with a `# TYPE`.
#[test]
fn counters_end_in_total_times_in_seconds_and_sizes_in_bytes() {
    let ip = fresh_ip();
    let frontend = addr(ip, PORT);
    let e = Named::echo("e");
    let (mut proxy, ()) =
        Proxy::serving(&service_of("web", ip, &[&e]), &[], || visit_expecting(frontend, "e"));
    let metrics = support::metrics::settle(&mut proxy, "the visit to be counted", |m| {
        m.select("svcproxy_sent_bytes_total", &[]).any(|s| s.value > 0.0)
    });
    let mut wrong = Vec::new();
    for (name, kind) in &metrics.types {
        let total = name.ends_with("_total");
        if (kind == "counter") != total {
            wrong.push(format!("{name} is a {kind}: only counters end in _total"));
        }
        if kind == "histogram" && !name.ends_with("_seconds") {
            wrong.push(format!("{name}: a histogram of times ends in _seconds"));
        }
        if (name.contains("duration") || name.contains("timestamp")) && !name.ends_with("_seconds")
        {
            wrong.push(format!("{name}: a time ends in _seconds"));
        }
        if name.contains("bytes") && !name.ends_with("_bytes") && !name.ends_with("_bytes_total") {
            wrong.push(format!("{name}: a size ends in _bytes"));
        }
    }
    for sample in &metrics.samples {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .filter_map(|s| sample.name.strip_suffix(s))
            .find(|f| metrics.types.get(*f).is_some_and(|k| k == "histogram"))
            .unwrap_or(&sample.name);
        if !metrics.types.contains_key(family) {
            wrong.push(format!("{sample}: no # TYPE for its family"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}\n{}", metrics.text);
}

/// DESIGN §5: `/healthz` and `/livez` answer 503 before the first
/// Snapshot (a manifest set that takes a while to build), with a JSON body
/// whose `currentTime` is RFC 3339; then 200 once it is published.
#[test]
fn healthz_and_livez_answer_503_before_the_first_snapshot() {
    let root = tempfile::tempdir().expect("temp dir");
    let dir = root.path().join("manifests");
    write_file(&dir.join("slow.json"), &slow_first_build(10_000));
    let mut proxy = Proxy::start_on(root, &dir, &[]);
    let admin = proxy.admin();
    let generation = |admin: &Admin| admin.sample("svcproxy_routing_generation").unwrap_or(-1.0);
    let until = Instant::now() + Duration::from_secs(30);
    let mut before_first = 0;
    loop {
        proxy.assert_running();
        let answers: Vec<(&str, u16, String)> = ["/healthz", "/livez"]
            .into_iter()
            .map(|path| {
                let (status, body) = admin::http(admin.healthz, path);
                (path, status, body)
            })
            .collect();
        // Read after the answers: 0 here means no Snapshot was published
        // when they were given.
        let published = generation(&admin);
        if published == 0.0 {
            for (path, status, body) in &answers {
                assert_eq!(*status, 503, "{path} before the first Snapshot: {body}");
                let json: Value = serde_json::from_str(body)
                    .unwrap_or_else(|e| panic!("{path} body is not JSON ({e}): {body}"));
                let now = json["currentTime"].as_str().and_then(rfc3339);
                assert!(now.is_some_and(|t| (t - unix_now()).abs() < 5.0), "{path}: {body}");
                assert!(json["lastUpdated"].is_string(), "{path}: {body}");
            }
            before_first += 1;
        } else if published >= 1.0 && answers.iter().all(|(_, status, _)| *status == 200) {
            break;
        }
        assert!(Instant::now() < until, "no 200 after 30 s: {answers:?}\n{}", proxy.log());
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        before_first > 0,
        "the first Snapshot was published before the first probe: nothing was shown\n{}",
        proxy.log()
    );
}

/// DESIGN §5: the health body is kube-proxy's `{"lastUpdated": RFC3339,
/// "currentTime": RFC3339}`; before the first Snapshot kube-proxy writes
/// its zero time, svcproxy an empty string.
#[test]
fn the_health_body_has_an_rfc3339_last_updated_even_before_the_first_snapshot() {
    let root = tempfile::tempdir().expect("temp dir");
    let dir = root.path().join("manifests");
    write_file(&dir.join("slow.json"), &slow_first_build(10_000));
    let mut proxy = Proxy::start_on(root, &dir, &[]);
    let admin = proxy.admin();
    let (status, body) = admin::http(admin.healthz, "/healthz");
    let generation = admin.sample("svcproxy_routing_generation").expect("generation");
    assert_eq!(generation, 0.0, "published before the probe: nothing shown\n{}", proxy.log());
    assert_eq!(status, 503, "{body}");
    let json: Value = serde_json::from_str(&body).expect("a JSON body");
    let last = json["lastUpdated"].as_str().unwrap_or_default();
    assert!(rfc3339(last).is_some(), "lastUpdated {last:?} is not RFC 3339: {body}");
}

/// DESIGN §5: `/debug/routes` is the current Snapshot: after a change its
/// generation is the new one (as `/metrics` says) and the frontend lists
/// the new endpoints.
#[test]
fn debug_routes_follows_each_published_snapshot() {
    let ip = fresh_ip();
    let frontend = addr(ip, PORT);
    let (a, b) = (Named::echo("a"), Named::echo("b"));
    let (mut proxy, ()) =
        Proxy::serving(&service_of("web", ip, &[&a]), &[], || visit_expecting(frontend, "a"));
    let admin = proxy.admin();
    let key = format!("{frontend}/TCP");
    let endpoints_of = |dump: &Value| -> Vec<String> {
        let entry = dump["frontends"]
            .as_array()
            .and_then(|f| f.iter().find(|f| f["frontend"] == key.as_str()))
            .unwrap_or_else(|| panic!("no frontend {key}: {dump:#}"));
        entry["endpoints"]
            .as_array()
            .unwrap_or_else(|| panic!("no endpoints: {entry:#}"))
            .iter()
            .map(|e| e["address"].as_str().expect("address").to_owned())
            .collect()
    };
    let before = routes(&admin);
    let first = before["generation"].as_f64().expect("a generation number");
    assert_eq!(endpoints_of(&before), [a.addr().to_string()], "{before:#}");

    write_in_place(&proxy.manifest(), &service_of("web", ip, &[&b]));
    let after = eventually("/debug/routes to show the new endpoint", WAIT, || {
        let dump = routes(&admin);
        if endpoints_of(&dump) == [b.addr().to_string()] { Ok(dump) } else { Err("not yet") }
    });
    let generation = after["generation"].as_f64().expect("a generation number");
    assert!(generation > first, "generation {generation} after {first}: {after:#}");
    assert_eq!(proxy.metric("svcproxy_routing_generation"), generation, "{after:#}");
}

/// DESIGN §5: each publish counts: `svcproxy_config_reloads_total
/// {result="success"}`, the generation and the rebuild histogram's count
/// move together; `kubeproxy_sync_proxy_rules_last_timestamp_seconds` is
/// the Unix time of the publish, and `/healthz`'s `lastUpdated` follows.
#[test]
fn each_publish_is_counted_and_timestamped() {
    const SUCCESS: &str = "svcproxy_config_reloads_total{result=\"success\"}";
    const GENERATION: &str = "svcproxy_routing_generation";
    const SYNCS: &str = "kubeproxy_sync_proxy_rules_duration_seconds_count";
    const LAST: &str = "kubeproxy_sync_proxy_rules_last_timestamp_seconds";
    let ip = fresh_ip();
    let frontend = addr(ip, PORT);
    let e = Named::echo("e");
    let (mut proxy, ()) =
        Proxy::serving(&service_of("web", ip, &[&e]), &[], || visit_expecting(frontend, "e"));
    let read = |proxy: &mut Proxy| -> [f64; 4] {
        let text = proxy.admin().metrics().expect("/metrics");
        [SUCCESS, GENERATION, SYNCS, LAST].map(|series| {
            admin::sample(&text, series).unwrap_or_else(|| panic!("no {series}\n{text}"))
        })
    };
    let [success, generation, syncs, last] = read(&mut proxy);
    assert!(generation >= 1.0 && success >= 1.0 && syncs >= 1.0, "{}", proxy.log());
    assert!((last - unix_now()).abs() < 60.0, "last sync at {last}, now {}", unix_now());

    let hup = unix_now();
    proxy.signal("HUP");
    proxy.wait_metric(GENERATION, WAIT, |g| g > generation);
    let [success2, generation2, syncs2, last2] = read(&mut proxy);
    let published = generation2 - generation;
    assert_eq!(success2 - success, published, "successes per publish\n{}", proxy.log());
    assert_eq!(syncs2 - syncs, published, "rebuild durations per publish\n{}", proxy.log());
    assert!(last2 >= hup - 1.0 && last2 <= unix_now() + 1.0, "last sync {last2}, SIGHUP at {hup}");
    let (status, headers, body) = get_with_headers(proxy.admin().healthz, "/healthz");
    assert!(status.contains(" 200 "), "{status}: {body}");
    let content_type = headers.get("content-type").map(String::as_str).unwrap_or_default();
    assert!(content_type.starts_with("application/json"), "Content-Type {content_type:?}");
    let json: Value = serde_json::from_str(&body).expect("a JSON body");
    let updated = json["lastUpdated"].as_str().and_then(rfc3339).expect("lastUpdated");
    // Second precision.
    assert!(updated >= hup.floor() - 1.0, "lastUpdated {updated} before the SIGHUP at {hup}");
}
