//! `svcproxy run` out of file descriptors: accepting pauses with backoff
//! (no spinning, no panic) and resumes once descriptors are free again; a
//! connect that fails for want of descriptors is the proxy's own fault,
//! counted as such and never against an endpoint; at `--max-connections`
//! accepting pauses and the kernel's backlog holds new clients.

use std::collections::BTreeSet;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::endpoint::Endpoint;
use crate::support::manifests::{pod_at, service_of, simple_service};
use crate::support::metrics::{ACTIVE, CONNECT_ERRORS, REJECTED, scrape, settle, value};
use crate::support::net::{self, addr, eventually, fetch, fresh_ip};
use crate::support::proxy::{Proxy, READY};

/// User plus system CPU time of `pid` so far, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) start after ')'.
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[test]
fn running_out_of_descriptors_pauses_accepting_without_spinning_then_recovers() {
    let endpoint = Endpoint::echo(fresh_ip());
    let cluster_ip = fresh_ip();
    let frontend = addr(cluster_ip, 8080);
    let yaml =
        simple_service("fds", cluster_ip, 8080, true) + &pod_at("fds-0", "fds", endpoint.addr);
    let (mut proxy, ()) = Proxy::serving(&yaml, &[], || net::echo(frontend, b"ready"));
    // Few descriptors left: each proxied connection needs two.
    let status = Command::new("prlimit")
        .args(["--pid", &proxy.pid().to_string(), "--nofile=40:40"])
        .status()
        .expect("prlimit");
    assert!(status.success(), "prlimit failed");
    let clients: Vec<TcpStream> = (0..80).filter_map(|_| net::connect(frontend).ok()).collect();
    assert!(clients.len() >= 40, "the kernel queues connections the proxy cannot accept yet");
    eventually("the proxy runs out of descriptors", Duration::from_secs(5), || {
        if proxy.log().contains("out of file descriptors") {
            Ok(())
        } else {
            Err(std::io::Error::other("not yet"))
        }
    });
    let before = cpu_ticks(proxy.pid());
    thread::sleep(Duration::from_secs(1));
    let spent = cpu_ticks(proxy.pid()) - before;
    // 100 ticks per second: a spinning accept loop would use ~100.
    assert!(spent < 30, "the proxy used {spent} ticks in 1 s while out of descriptors");
    proxy.assert_running();
    drop(clients);
    eventually("serving again once descriptors are free", Duration::from_secs(10), || {
        net::echo(frontend, b"again")
    });
    proxy.assert_running();
    let paused = scrape(&mut proxy).get(PAUSED, &[("reason", "descriptors")]);
    assert!(paused > 0.0, "{PAUSED}{{reason=\"descriptors\"}} is {paused}");
}

/// The descriptors `pid` has open.
fn open_fds(pid: u32) -> BTreeSet<u64> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().parse().unwrap())
        .collect()
}

/// The soft limit that leaves `proxy` exactly `free` new descriptors, once
/// its connections have ended and its descriptors stay put: the limit
/// bounds descriptor numbers, and a new one takes the lowest free number,
/// so the limit goes just past the `free`-th number not in use.
pub(crate) fn limit_leaving(proxy: &mut Proxy, service: &str, free: usize) -> u64 {
    settle(proxy, "no connection open", |m| value(m, ACTIVE, &[("service", service)]) == 0.0);
    let pid = proxy.pid();
    let open = eventually("descriptors settled", Duration::from_secs(5), || {
        let before = open_fds(pid);
        thread::sleep(Duration::from_millis(50));
        let after = open_fds(pid);
        if before == after { Ok(after) } else { Err("still changing") }
    });
    let nth_free = (0..).filter(|n| !open.contains(n)).nth(free - 1).unwrap();
    nth_free + 1
}

/// Sets the soft RLIMIT_NOFILE of `pid` (its hard limit stays, so the
/// soft one can be raised back).
pub(crate) fn set_soft_nofile(pid: u32, soft: u64) {
    let status = Command::new("prlimit")
        .args(["--pid", &pid.to_string(), &format!("--nofile={soft}:")])
        .status()
        .expect("prlimit");
    assert!(status.success(), "prlimit --nofile={soft}: failed");
}

/// The soft RLIMIT_NOFILE of `pid`.
pub(crate) fn soft_nofile(pid: u32) -> u64 {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap();
    line.split_whitespace().nth(3).unwrap().parse().unwrap()
}

/// What a client of `frontend` saw: `Some(true)` served (the endpoint's
/// name came through), `Some(false)` turned away (closed or reset without
/// a byte), `None` held in the backlog (nothing within a second).
fn client_outcome(frontend: SocketAddr) -> Option<bool> {
    let mut stream = match TcpStream::connect_timeout(&frontend, net::CONNECT_TIMEOUT) {
        Ok(stream) => stream,
        // Accepted and reset before the handshake was even reported.
        Err(e) if e.kind() == ErrorKind::ConnectionReset => return Some(false),
        Err(e) => panic!("connect to {frontend}: {e}"),
    };
    stream.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let mut bytes = Vec::new();
    match stream.read_to_end(&mut bytes) {
        Ok(_) => Some(!bytes.is_empty()),
        Err(e) if e.kind() == ErrorKind::ConnectionReset => Some(!bytes.is_empty()),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => None,
        Err(e) => panic!("client of {frontend}: {e}"),
    }
}

#[test]
fn a_connect_short_of_descriptors_counts_local_resources_and_blames_no_endpoint() {
    let endpoints = [Endpoint::name(fresh_ip(), "a"), Endpoint::name(fresh_ip(), "b")];
    let (frontend, yaml) = service_of("short", &[endpoints[0].addr, endpoints[1].addr]);
    let (mut proxy, _) = Proxy::serving(&yaml, &[], || fetch(frontend));
    let pid = proxy.pid();
    let limit = soft_nofile(pid);
    // One descriptor left: the accept takes it, the socket to the endpoint
    // finds none. Should a descriptor open or close behind the count, the
    // clients try again with one more, then one again.
    let mut turned_away = 0;
    let mut tried = Vec::new();
    for headroom in [1, 2, 1] {
        set_soft_nofile(pid, limit);
        let leaving = limit_leaving(&mut proxy, "short", headroom);
        set_soft_nofile(pid, leaving);
        let outcomes: Vec<Option<bool>> = (0..10).map(|_| client_outcome(frontend)).collect();
        turned_away = outcomes.iter().filter(|o| **o == Some(false)).count();
        tried.push((headroom, outcomes));
        if turned_away > 0 {
            break;
        }
    }
    assert!(turned_away > 0, "no client was turned away: {tried:?}\n{}", proxy.log());
    set_soft_nofile(pid, limit);
    proxy.assert_running();

    let metrics = scrape(&mut proxy);
    let service = [("service", "short")];
    let local = [("service", "short"), ("reason", "local_resources")];
    assert_eq!(metrics.get(REJECTED, &local), turned_away as f64, "{}", metrics.text);
    let blamed: f64 = metrics.select(CONNECT_ERRORS, &service).map(|s| s.value).sum();
    assert_eq!(blamed, 0.0, "connect errors counted against endpoints:\n{}", metrics.text);
    // Neither endpoint was ejected: round robin goes on over both at once.
    let names: BTreeSet<String> = (0..6).map(|_| fetch(frontend).unwrap()).collect();
    assert_eq!(names, BTreeSet::from(["a".to_owned(), "b".to_owned()]));
}

const PAUSED: &str = "svcproxy_accept_paused_seconds_total";

/// Writes `message` and reads its echo back.
fn round_trip(stream: &mut TcpStream, message: &[u8]) -> io::Result<()> {
    stream.write_all(message)?;
    let mut back = vec![0; message.len()];
    stream.read_exact(&mut back)?;
    if back == message { Ok(()) } else { Err(io::Error::other("echo differs")) }
}

#[test]
fn at_max_connections_a_new_client_waits_in_the_backlog_until_one_ends() {
    let endpoint = Endpoint::echo(fresh_ip());
    let (frontend, yaml) = service_of("capped", &[endpoint.addr]);
    let (mut proxy, ()) =
        Proxy::serving(&yaml, &["--max-connections", "5"], || net::echo(frontend, b"ready"));
    assert!(proxy.log().contains("max=5"), "the bound is logged at start\n{}", proxy.log());
    let paused = [("reason", "max_connections")];
    assert_eq!(scrape(&mut proxy).get(PAUSED, &paused), 0.0);
    let mut held: Vec<TcpStream> = (0..5)
        .map(|i| {
            let mut client = net::connect(frontend).unwrap();
            round_trip(&mut client, format!("client {i}").as_bytes()).unwrap();
            client
        })
        .collect();

    // The sixth completes its handshake (the kernel's backlog) but nothing
    // it sends is carried while five connections are open.
    let mut sixth = net::connect(frontend).unwrap();
    sixth.write_all(b"sixth").unwrap();
    sixth.set_read_timeout(Some(Duration::from_millis(700))).unwrap();
    let mut byte = [0; 1];
    match sixth.read(&mut byte) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("the sixth client was served at the bound: {other:?}\n{}", proxy.log()),
    }
    let first =
        proxy.wait_metric(&format!("{PAUSED}{{reason=\"max_connections\"}}"), READY, |s| s > 0.5);
    let later = Instant::now() + Duration::from_millis(300);
    let grown = proxy.wait_metric(&format!("{PAUSED}{{reason=\"max_connections\"}}"), READY, |s| {
        Instant::now() >= later && s > first
    });
    assert!(grown > first, "paused seconds grow while at the bound");
    proxy.assert_warned(&["--max-connections reached"]);

    // One of the five ends: the sixth is accepted and served.
    drop(held.remove(0));
    sixth.set_read_timeout(Some(net::IO_TIMEOUT)).unwrap();
    let mut back = [0; 5];
    sixth.read_exact(&mut back).unwrap_or_else(|e| panic!("sixth client: {e}\n{}", proxy.log()));
    assert_eq!(&back, b"sixth");
    round_trip(&mut sixth, b"and more").unwrap();
    for client in &mut held {
        round_trip(client, b"still served").unwrap();
    }
}
