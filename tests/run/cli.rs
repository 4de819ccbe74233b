//! `svcproxy run`'s command line (DESIGN §2), end to end: a usage error
//! (an unknown flag, a malformed value or duration, kube-proxy's API-server
//! flags) exits 2 naming the flag; `--help` states the defaults; every
//! duration flag reads `250ms`, `1s` and `5m`; `--manifests` is repeatable,
//! read recursively and watched; `--nodeport-addresses` takes a list;
//! `--node-name` defaults to the hostname; `--log-format json` and
//! `RUST_LOG` shape the log.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support;
use crate::support::admin;
use crate::support::endpoint::Endpoint;
use crate::support::manifests::{Port, ipv4, service, write_file, write_in_place};
use crate::support::net::{addr, eventually, fetch, fresh_ip, fresh_node_port, refuses};
use crate::support::proxy::{self, Proxy};
use crate::support::tagged::{Named, PORT, service_of, visit_expecting, wait_reaching};

/// Bound on every wait that is not itself the point of a test.
const WAIT: Duration = Duration::from_secs(10);

/// DESIGN §2: a usage error of `run` (an unknown flag, a value of the
/// wrong kind) exits 2 and names what is wrong.
#[test]
fn usage_errors_of_run_exit_2() {
    let cases: [(&[&str], &str); 9] = [
        (&["--no-such-flag"], "--no-such-flag"),
        (&["--log-format", "xml"], "--log-format"),
        (&["--service-cidr", "not-a-cidr"], "--service-cidr"),
        (&["--nodeport-addresses", "127.0.0.0/8,bogus"], "--nodeport-addresses"),
        (&["--metrics-bind-address", "nowhere"], "--metrics-bind-address"),
        (&["--healthz-bind-address", "127.0.0.1"], "--healthz-bind-address"),
        (&["--max-connections", "0"], "--max-connections"),
        (&["--max-connections", "many"], "--max-connections"),
        (&["--conntrack-tcp-timeout-close-wait", "1x"], "--conntrack-tcp-timeout-close-wait"),
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

/// An API-server source that cannot work is a startup error (exit 2) that
/// names it: a kubeconfig that does not exist, a `--master` that is no URL,
/// and no source flag at all outside a pod (no in-cluster configuration).
#[test]
fn an_api_server_source_that_cannot_work_is_a_startup_error() {
    let admin = ["--metrics-bind-address", "127.0.0.1:0", "--healthz-bind-address", "127.0.0.1:0"];
    for (flags, named) in [
        (&["--kubeconfig", "/nonexistent/kubeconfig"][..], "/nonexistent/kubeconfig"),
        (&["--master", "http://[::1"][..], "--master"),
        (&[][..], "in-cluster"),
    ] {
        let mut cmd = support::command();
        cmd.arg("run").args(flags).args(admin).env_remove("KUBERNETES_SERVICE_HOST");
        let out = support::run_command(cmd, support::DEADLINE);
        out.assert_no_panic();
        assert_eq!(out.code(), Some(2), "{flags:?}\n{out}");
        assert!(out.stderr.contains(named), "{flags:?}: names {named}\n{out}");
    }
}

/// `--min-sync-period` is read as a duration even without the admin
/// flags (every duration flag, every malformed form:
/// `a_malformed_duration_is_a_usage_error`).
#[test]
fn run_checks_min_sync_period_as_a_duration() {
    let out = support::run(["run", "--manifests", "config/demo", "--min-sync-period", "2x"]);
    out.assert_no_panic();
    assert_eq!(out.code(), Some(2), "{out}");
    assert!(out.stderr.contains("--min-sync-period"), "{out}");
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
        ("--conntrack-tcp-timeout-close-wait", "1h"),
    ] {
        assert_eq!(defaults.get(flag).map(String::as_str), Some(want), "{flag}\n{out}");
    }
}

/// `run --help` says which source is used and that none is required:
/// the usage line names the source flags, their heading says what serves
/// without them (the in-cluster configuration).
#[test]
fn run_help_says_which_source_is_used_by_default() {
    let out = support::run(["run", "--help"]);
    out.assert_no_panic();
    assert_eq!(out.code(), Some(0), "{out}");
    assert!(
        out.stdout.contains(
            "Usage: svcproxy run [--manifests PATH]... [--kubeconfig PATH] [--master URL] [OPTIONS]"
        ),
        "{out}"
    );
    let heading = out
        .stdout
        .lines()
        .find(|l| l.starts_with("Sources"))
        .unwrap_or_else(|| panic!("no Sources heading\n{out}"));
    assert!(heading.contains("with none: the API server of the in-cluster configuration"), "{out}");
    let after: Vec<&str> = out.stdout.split(heading).nth(1).unwrap_or_default().lines().collect();
    for flag in ["--manifests <PATH>", "--kubeconfig <PATH>", "--master <URL>"] {
        assert!(after.iter().take(4).any(|l| l.trim_start().starts_with(flag)), "{flag}\n{out}");
    }
    assert!(out.stdout.contains("No source flag is required"), "{out}");
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
