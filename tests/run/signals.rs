//! Signals (DESIGN §4, issue 4), end to end. SIGTERM stops accepting at
//! once (every kind of frontend closed, `/healthz` 503), lets live
//! connections finish for up to `--drain-timeout`, resets the rest and
//! exits 0; a second SIGTERM, or SIGINT, exits at once, and so do SIGTERM
//! and SIGINT while the first rebuild runs; SIGHUP re-reads every source,
//! of every `--manifests` path.
//!
//! Black-box: the real binary, signalled with kill(1); its admin addresses
//! come from its startup log line.

use std::io::{self, Read};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitStatus;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::manifests::{Port, service, write_in_place};
use crate::support::net::{addr, fresh_ip, fresh_node_port, refuses};
use crate::support::proxy::Proxy;
use crate::support::tagged::{Conn, Named, PORT, service_of, visit_expecting, wait_reaching};

const GENERATION: &str = "svcproxy_routing_generation";
/// SIGTERM must stop new connections within this.
const STOP_ACCEPTING: Duration = Duration::from_millis(500);
/// "At once": how long an exit may take after the signal that asks for it.
const AT_ONCE: Duration = Duration::from_secs(1);
/// Bound on every wait that is not itself the point of a test.
const WAIT: Duration = Duration::from_secs(10);

/// Service `web` at `ip:PORT` served by `endpoint`.
fn web(ip: Ipv4Addr, endpoint: &Named) -> String {
    service_of("web", ip, &[endpoint])
}

/// A proxy serving `web` from the echo `a`, with `extra` flags, and one
/// live connection through it that has made an exchange.
fn serving_a_live_connection(extra: &[&str]) -> (Proxy, SocketAddr, Named, Conn) {
    let ip = fresh_ip();
    let frontend = addr(ip, PORT);
    let a = Named::echo("a");
    let mut proxy = Proxy::start(&web(ip, &a), extra);
    proxy.wait_ready(|| visit_expecting(frontend, "a"));
    let mut live = Conn::open(frontend).expect("open the live connection");
    live.exchange().expect("first exchange");
    (proxy, frontend, a, live)
}

/// Polls until `frontend` refuses connections; how long that took. Panics
/// past `deadline`.
fn wait_refused(frontend: SocketAddr, deadline: Duration) -> Duration {
    let start = Instant::now();
    while !refuses(frontend) {
        assert!(start.elapsed() < deadline, "{frontend} still accepts {deadline:?} after SIGTERM");
        thread::sleep(Duration::from_millis(5));
    }
    start.elapsed()
}

/// Fails unless the proxy exits by itself within `deadline` with status 0;
/// how long after `since` it did.
fn assert_exits_zero(proxy: &mut Proxy, since: Instant, deadline: Duration) -> Duration {
    let status = wait_exit(proxy, deadline);
    assert_eq!(status.code(), Some(0), "svcproxy exited with {status}\n{}", proxy.log());
    since.elapsed()
}

/// The exit status, within `deadline` (panics with the log past it).
fn wait_exit(proxy: &mut Proxy, deadline: Duration) -> ExitStatus {
    proxy
        .wait_exit(deadline)
        .unwrap_or_else(|| panic!("svcproxy still runs {deadline:?} later\n{}", proxy.log()))
}

#[test]
fn sigterm_stops_accepting_and_exits_zero_once_the_live_connection_closes() {
    let (mut proxy, frontend, _a, mut live) =
        serving_a_live_connection(&["--drain-timeout", "30s"]);
    let admin = proxy.admin();
    assert_eq!(admin.healthz().expect("/healthz").0, 200, "healthy before SIGTERM");

    proxy.signal("TERM");
    let term = Instant::now();
    let refused_after = wait_refused(frontend, STOP_ACCEPTING);
    // The listeners close and /healthz turns 503 one after the other, not
    // atomically: both within the bound.
    loop {
        let (status, body) = admin.healthz().expect("/healthz while draining");
        if status == 503 {
            break;
        }
        assert!(
            term.elapsed() < STOP_ACCEPTING,
            "/healthz still answers {status} {:?} after SIGTERM: {body}",
            term.elapsed()
        );
        eprintln!(
            "drain: refused, yet /healthz answered {status} {:?} after SIGTERM",
            term.elapsed()
        );
        thread::sleep(Duration::from_millis(1));
    }

    // The drain lasts as long as the live connection: it keeps echoing.
    for i in 0..10 {
        live.exchange().unwrap_or_else(|e| panic!("exchange {i} while draining: {e}"));
        thread::sleep(Duration::from_millis(100));
    }
    assert!(proxy.running(), "svcproxy exited while a connection was live\n{}", proxy.log());
    live.finish().expect("the live connection ends cleanly");
    let closed = Instant::now();
    assert_exits_zero(&mut proxy, closed, Duration::from_secs(5));
    let exited = closed.elapsed();
    assert!(
        exited < Duration::from_secs(2),
        "exit came {exited:?} after the last connection closed"
    );
    eprintln!(
        "drain: refused {refused_after:?} after SIGTERM; exited {exited:?} after the last \
         connection closed ({:?} after SIGTERM)",
        term.elapsed()
    );
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

#[test]
fn the_drain_timeout_ends_a_connection_that_never_closes() {
    let (mut proxy, frontend, _a, mut live) = serving_a_live_connection(&["--drain-timeout", "1s"]);
    proxy.signal("TERM");
    let term = Instant::now();
    wait_refused(frontend, STOP_ACCEPTING);
    live.exchange().expect("the live connection still echoes while draining");
    let took = assert_exits_zero(&mut proxy, term, Duration::from_secs(5));
    assert!(
        took >= Duration::from_millis(900),
        "exited {took:?} after SIGTERM, before the 1s drain timeout"
    );
    assert!(took < Duration::from_secs(3), "exited {took:?} after SIGTERM with a 1s drain timeout");
    // The client learns its connection was cut, not silence and not a clean
    // EOF that would pass a truncated stream for a whole one.
    let stream = live.stream();
    stream.set_read_timeout(Some(Duration::from_secs(2))).expect("read timeout");
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
        Ok(0) => panic!("after the drain timeout the client saw a clean EOF, not a reset"),
        Ok(n) => panic!("{n} unexpected bytes after the drain"),
        Err(e) => panic!("after the drain the client expected a reset, got {e}"),
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

#[test]
fn a_second_sigterm_during_the_drain_exits_at_once() {
    let (mut proxy, frontend, _a, mut live) =
        serving_a_live_connection(&["--drain-timeout", "30s"]);
    proxy.signal("TERM");
    wait_refused(frontend, STOP_ACCEPTING);
    live.exchange().expect("draining, the live connection still echoes");
    proxy.signal("TERM");
    let second = Instant::now();
    let status = wait_exit(&mut proxy, AT_ONCE * 3);
    let took = second.elapsed();
    assert!(status.code().is_some(), "killed by the second SIGTERM instead of exiting: {status}");
    assert!(took < AT_ONCE, "exited {took:?} after the second SIGTERM");
}

#[test]
fn sigint_exits_at_once_despite_a_live_connection() {
    let (mut proxy, _frontend, _a, _live) = serving_a_live_connection(&["--drain-timeout", "30s"]);
    proxy.signal("INT");
    let int = Instant::now();
    let status = wait_exit(&mut proxy, AT_ONCE * 3);
    let took = int.elapsed();
    assert!(status.code().is_some(), "killed by SIGINT instead of exiting: {status}");
    assert!(took < AT_ONCE, "exited {took:?} after SIGINT");
}

#[test]
fn sigint_during_the_drain_exits_at_once() {
    let (mut proxy, frontend, _a, _live) = serving_a_live_connection(&["--drain-timeout", "30s"]);
    proxy.signal("TERM");
    wait_refused(frontend, STOP_ACCEPTING);
    proxy.signal("INT");
    let int = Instant::now();
    let status = wait_exit(&mut proxy, AT_ONCE * 3);
    let took = int.elapsed();
    assert!(status.code().is_some(), "killed by SIGINT instead of exiting: {status}");
    assert!(took < AT_ONCE, "exited {took:?} after SIGINT during the drain");
}

/// Sends `signal` while the first rebuild runs (10,000 Services, a second
/// or more) and expects the exit code `code` within a second: nothing is
/// served yet, so neither signal has anything to wait for.
fn signal_during_a_slow_first_build(signal: &str, code: i32) {
    let mut proxy = Proxy::start_with_a_slow_first_build();
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

#[test]
fn sighup_publishes_a_new_generation() {
    let (mut proxy, _frontend, _a, mut live) = serving_a_live_connection(&[]);
    let before = proxy.metric(GENERATION);
    proxy.signal("HUP");
    proxy.wait_metric(GENERATION, Duration::from_secs(2), |v| v > before);
    live.exchange().expect("the live connection after SIGHUP");
    assert!(proxy.log().contains("SIGHUP"), "SIGHUP is logged\n{}", proxy.log());
}

#[test]
fn sighup_rereads_a_source_the_watcher_cannot_see() {
    use std::os::unix::fs::symlink;
    // The manifests directory holds a symlink to a file elsewhere: writing
    // that file changes nothing in the watched directory; SIGHUP re-reads.
    let ip = fresh_ip();
    let frontend = addr(ip, PORT);
    let (a, b) = (Named::echo("a"), Named::echo("b"));
    let outside = tempfile::tempdir().expect("temp dir");
    let target = outside.path().join("web.yaml");
    write_in_place(&target, &web(ip, &a));
    let root = tempfile::tempdir().expect("temp dir");
    let manifests = root.path().join("manifests");
    std::fs::create_dir(&manifests).expect("manifests dir");
    symlink(&target, manifests.join("services.yaml")).expect("symlink");
    let mut proxy = Proxy::start_on(root, &manifests, &[]);
    proxy.wait_ready(|| visit_expecting(frontend, "a"));

    write_in_place(&target, &web(ip, &b));
    proxy.signal("HUP");
    let hup = Instant::now();
    let until = hup + Duration::from_secs(1);
    while visit_expecting(frontend, "b").is_err() {
        assert!(Instant::now() < until, "SIGHUP's re-read not in effect after 1s\n{}", proxy.log());
        thread::sleep(Duration::from_millis(5));
    }
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

#[test]
fn healthz_reports_its_times_once_serving() {
    let (mut proxy, _frontend, _a, _live) = serving_a_live_connection(&[]);
    let (status, body) = proxy.admin().healthz().expect("/healthz");
    assert_eq!(status, 200, "/healthz answered {status}: {body}");
    let json: serde_json::Value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("/healthz body {body:?}: {e}"));
    for field in ["lastUpdated", "currentTime"] {
        let time = json[field].as_str().unwrap_or_else(|| panic!("no {field} in {body}"));
        humantime::parse_rfc3339(time).unwrap_or_else(|e| panic!("{field} {time:?}: {e}"));
    }
}

/// The one log line that holds `part`, from a proxy's whole log.
fn log_line(proxy: &Proxy, part: &str) -> String {
    let log = proxy.log();
    let mut lines = log.lines().filter(|l| l.contains(part));
    let line = lines.next().unwrap_or_else(|| panic!("no line with {part:?}\n{log}"));
    assert!(lines.next().is_none(), "more than one line with {part:?}\n{log}");
    line.to_owned()
}

/// The daemon says when it is ready (what it serves, where its admin
/// endpoints are) and when it has stopped: a live connection that never
/// ends is reset at a 250ms drain timeout, and the stopped line counts it.
#[test]
fn the_log_says_when_it_is_ready_and_that_the_drain_timeout_reset_a_connection() {
    let (mut proxy, _frontend, _a, _live) =
        serving_a_live_connection(&["--drain-timeout", "250ms"]);
    let admin = proxy.admin();
    proxy.signal("TERM");
    assert_exits_zero(&mut proxy, Instant::now(), Duration::from_secs(5));
    let ready = log_line(&proxy, "ready: serving");
    assert!(
        ready.contains("ready: serving 1 Service on 1 frontend (1 TCP, 0 UDP, 0 HTTP)"),
        "{ready}"
    );
    assert!(ready.contains(&format!("healthz=http://{}/healthz", admin.healthz)), "{ready}");
    assert!(ready.contains(&format!("metrics=http://{}/metrics", admin.metrics)), "{ready}");
    let stopped = log_line(&proxy, "stopped:");
    // The readiness probe's connection may still be ending when SIGTERM
    // comes: it is drained, not reset.
    let one_of = |n: u32| stopped.contains(&format!("drained={n} reset=1 cut=0"));
    assert!(one_of(0) || one_of(1), "{stopped}");
    assert!(stopped.contains("1 reset at the drain timeout"), "{stopped}");
}

/// A live connection that ends during the drain is counted as drained.
#[test]
fn the_stopped_line_counts_a_connection_that_ended_during_the_drain() {
    let (mut proxy, frontend, _a, live) = serving_a_live_connection(&["--drain-timeout", "30s"]);
    proxy.signal("TERM");
    wait_refused(frontend, STOP_ACCEPTING);
    live.finish().expect("the live connection ends cleanly");
    assert_exits_zero(&mut proxy, Instant::now(), WAIT);
    let stopped = log_line(&proxy, "stopped:");
    // The readiness probe's connection may still be ending when SIGTERM
    // comes: it is drained too.
    let drained = stopped
        .split_once("drained=")
        .and_then(|(_, rest)| rest.split_whitespace().next()?.parse::<u32>().ok());
    assert!(matches!(drained, Some(1 | 2)), "{stopped}");
    assert!(stopped.contains("reset=0 cut=0"), "{stopped}");
    assert!(stopped.contains("0 reset at the drain timeout"), "{stopped}");
}
