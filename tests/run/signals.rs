//! Signals (DESIGN §4, issue 4), end to end. SIGTERM stops accepting at
//! once (listeners closed, `/healthz` 503), lets live connections finish
//! for up to `--drain-timeout`, resets the rest and exits 0; a second
//! SIGTERM, or SIGINT, exits at once; SIGHUP re-reads every source.
//!
//! Black-box: the real binary, signalled with kill(1); its admin addresses
//! come from its startup log line.

use std::io::{self, Read};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitStatus;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::manifests::write_in_place;
use crate::support::net::{addr, fresh_ip, refuses};
use crate::support::proxy::Proxy;
use crate::support::tagged::{Conn, Named, PORT, service_of, visit_expecting};

const GENERATION: &str = "svcproxy_routing_generation";
/// SIGTERM must stop new connections within this.
const STOP_ACCEPTING: Duration = Duration::from_millis(500);
/// "At once": how long an exit may take after the signal that asks for it.
const AT_ONCE: Duration = Duration::from_secs(1);

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
