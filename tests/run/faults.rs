//! `svcproxy run` when things are broken: no endpoints, an endpoint that
//! refuses, one that never answers SYNs, a frontend port another process
//! holds, an admin port already taken.

use std::collections::BTreeSet;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use crate::support::endpoint::{Blackhole, Endpoint, refused_addr};
use crate::support::manifests::{service_of, simple_service};
use crate::support::net::{self, eventually, fetch, fresh_ip};
use crate::support::proxy::{self, Proxy};

/// What a client of a frontend without usable endpoints sees: refused, or
/// accepted then closed or reset. Panics on bytes or on a hang, and when
/// the answer takes a second or more.
fn assert_rejected_at_once(frontend: SocketAddr) {
    let start = Instant::now();
    let outcome = match TcpStream::connect_timeout(&frontend, net::CONNECT_TIMEOUT) {
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => "refused".to_owned(),
        // Accepted and reset before the handshake was even reported.
        Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted) => {
            "reset during connect".to_owned()
        }
        Err(e) => panic!("connect to {frontend}: {e}"),
        Ok(mut stream) => {
            stream.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            stream.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
            // A request the proxy must not answer; the write itself may
            // already fail if the reset came first.
            let _ = stream.write_all(b"GET / HTTP/1.0\r\n\r\n");
            let mut buf = [0u8; 256];
            match stream.read(&mut buf) {
                Ok(0) => "closed".to_owned(),
                Ok(n) => panic!(
                    "{frontend} has no endpoint but sent {n} bytes: {:?}",
                    String::from_utf8_lossy(&buf[..n])
                ),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => "reset".to_owned(),
                Err(e) => panic!("{frontend} has no endpoint: expected a reset or close, got {e}"),
            }
        }
    };
    let elapsed = start.elapsed();
    assert!(elapsed < Duration::from_secs(1), "{frontend}: {outcome} only after {elapsed:?}");
}

/// The first client of `frontend`, which may be bound a moment after the
/// frontend the readiness probe used: retries while the connection is
/// refused, but once connected the exchange must succeed. The name read
/// and how long it took from the accepted connect to EOF.
fn first_client(frontend: SocketAddr) -> (String, Duration) {
    let mut stream = eventually("frontend bound", Duration::from_secs(5), || {
        TcpStream::connect_timeout(&frontend, net::CONNECT_TIMEOUT).and_then(net::bounded)
    });
    let start = Instant::now();
    let bytes = net::read_to_end(&mut stream).unwrap_or_else(|e| panic!("first client: {e}"));
    (String::from_utf8_lossy(&bytes).into_owned(), start.elapsed())
}

#[test]
fn no_endpoints_rejects_at_once() {
    let live = Endpoint::name(fresh_ip(), "live");
    let (live_frontend, live_yaml) = service_of("live", &[live.addr]);
    let (empty_frontend, empty_yaml) = service_of("empty", &[]);
    let (_proxy, _) = Proxy::serving(&(live_yaml + &empty_yaml), &[], || fetch(live_frontend));

    for _ in 0..5 {
        assert_rejected_at_once(empty_frontend);
    }
}

#[test]
fn all_endpoints_refusing_rejects_at_once() {
    let live = Endpoint::name(fresh_ip(), "live");
    let (live_frontend, live_yaml) = service_of("live", &[live.addr]);
    let dead = [refused_addr(fresh_ip()), refused_addr(fresh_ip())];
    let (dead_frontend, dead_yaml) = service_of("dead", &dead);
    let (_proxy, _) = Proxy::serving(&(live_yaml + &dead_yaml), &[], || fetch(live_frontend));

    for _ in 0..5 {
        assert_rejected_at_once(dead_frontend);
    }
}

#[test]
fn refused_endpoint_is_skipped_and_every_client_succeeds() {
    let good = [Endpoint::name(fresh_ip(), "good-a"), Endpoint::name(fresh_ip(), "good-b")];
    let endpoints = [refused_addr(fresh_ip()), good[0].addr, good[1].addr];
    let (frontend, yaml) = service_of("flaky", &endpoints);
    // Readiness on another Service, so that no retried probe hides a
    // failed client of this one.
    let probe = Endpoint::name(fresh_ip(), "probe");
    let (probe_frontend, probe_yaml) = service_of("probe", &[probe.addr]);
    let (_proxy, _) = Proxy::serving(&(yaml + &probe_yaml), &[], || fetch(probe_frontend));

    let (first, _) = first_client(frontend);
    assert!(first.starts_with("good-"), "client 0 got {first:?}");
    let mut seen = BTreeSet::from([first]);
    for i in 1..30 {
        let start = Instant::now();
        let name = fetch(frontend).unwrap_or_else(|e| panic!("client {i} failed: {e}"));
        assert!(name.starts_with("good-"), "client {i} got {name:?}");
        assert!(start.elapsed() < Duration::from_secs(2), "client {i} took {:?}", start.elapsed());
        seen.insert(name);
    }
    assert_eq!(seen.len(), 2, "both good endpoints should serve: {seen:?}");
}

#[test]
fn blackholed_endpoint_times_out_and_the_next_one_answers() {
    const CONNECT_TIMEOUT: Duration = Duration::from_millis(300);
    const MARGIN: Duration = Duration::from_millis(1_500);
    let blackhole = Blackhole::new(fresh_ip());
    let good = Endpoint::name(fresh_ip(), "good");
    let (frontend, yaml) = service_of("slow", &[blackhole.addr, good.addr]);
    let probe = Endpoint::name(fresh_ip(), "probe");
    let (probe_frontend, probe_yaml) = service_of("probe", &[probe.addr]);
    let (_proxy, _) =
        Proxy::serving(&(yaml + &probe_yaml), &["--connect-timeout", "300ms"], || {
            fetch(probe_frontend)
        });

    // Round robin over two endpoints: one of the first two clients is
    // sent to the blackhole first.
    let mut slowest = Duration::ZERO;
    for i in 0..4 {
        let (name, elapsed) = if i == 0 {
            first_client(frontend)
        } else {
            let start = Instant::now();
            (fetch(frontend).unwrap_or_else(|e| panic!("client {i} failed: {e}")), start.elapsed())
        };
        assert_eq!(name, "good", "client {i}");
        assert!(
            elapsed < CONNECT_TIMEOUT + MARGIN,
            "client {i} answered after {elapsed:?}, over --connect-timeout {CONNECT_TIMEOUT:?} + {MARGIN:?}"
        );
        slowest = slowest.max(elapsed);
    }
    assert!(
        slowest >= CONNECT_TIMEOUT - Duration::from_millis(50),
        "no client waited for the connect timeout ({slowest:?}): was the blackhole ever tried?"
    );
}

#[test]
fn a_taken_frontend_port_leaves_the_other_services_serving() {
    let (a, b, c) = (
        Endpoint::name(fresh_ip(), "a"),
        Endpoint::name(fresh_ip(), "b"),
        Endpoint::name(fresh_ip(), "c"),
    );
    let (taken, yaml_a) = service_of("a", &[a.addr]);
    let (frontend_b, yaml_b) = service_of("b", &[b.addr]);
    let (frontend_c, yaml_c) = service_of("c", &[c.addr]);
    // Another process (this test) holds A's ClusterIP:port before the
    // proxy starts.
    let squatter = TcpListener::bind(taken).expect("bind the frontend port first");
    let (mut proxy, _) = Proxy::serving(&(yaml_a + &yaml_b + &yaml_c), &[], || {
        fetch(frontend_b).and(fetch(frontend_c))
    });

    for _ in 0..5 {
        assert_eq!(fetch(frontend_b).expect("b"), "b");
        assert_eq!(fetch(frontend_c).expect("c"), "c");
    }
    proxy.assert_running();
    drop(squatter);
}

#[test]
fn a_taken_frontend_port_is_bound_once_released() {
    let (a, b) = (Endpoint::name(fresh_ip(), "a"), Endpoint::name(fresh_ip(), "b"));
    let (taken, yaml_a) = service_of("a", &[a.addr]);
    let (frontend_b, yaml_b) = service_of("b", &[b.addr]);
    let squatter = TcpListener::bind(taken).expect("bind the frontend port first");
    let (mut proxy, _) = Proxy::serving(&(yaml_a + &yaml_b), &[], || fetch(frontend_b));
    drop(squatter);

    // Retried with backoff: the proxy takes the port over once it is free.
    let start = Instant::now();
    let until = start + Duration::from_secs(20);
    loop {
        match fetch(taken) {
            Ok(name) => {
                assert_eq!(name, "a");
                break;
            }
            Err(e) if Instant::now() >= until => {
                panic!(
                    "{taken} not served {:?} after release: {e}\n{}",
                    start.elapsed(),
                    proxy.log()
                )
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    eprintln!("released frontend served again after {:?}", start.elapsed());
    proxy.assert_running();
}

#[test]
fn metrics_address_taken_exits_2_with_a_clear_message() {
    let squatter = TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken = squatter.local_addr().expect("address").to_string();
    let yaml = simple_service("idle", fresh_ip(), 8080, true);
    let (status, log) = proxy::run_to_exit(
        &yaml,
        &["--metrics-bind-address", &taken, "--healthz-bind-address", "127.0.0.1:0"],
        Duration::from_secs(10),
    );
    assert_eq!(status.code(), Some(2), "exit status {status}; log:\n{log}");
    assert!(log.contains(&taken), "the message should name {taken}; log:\n{log}");
    let lower = log.to_lowercase();
    assert!(
        lower.contains("metrics") || lower.contains("in use"),
        "the message should say what failed; log:\n{log}"
    );
    assert!(!log.contains("panicked"), "log:\n{log}");
}

/// DESIGN §2: "2 usage or startup error": the health port already taken
/// is one, named in the message (the metrics port: the test above).
#[test]
fn a_taken_healthz_port_exits_2_naming_it() {
    let squatter = TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken = squatter.local_addr().expect("address").to_string();
    let yaml = simple_service("idle", fresh_ip(), 8080, true);
    let (status, log) = proxy::run_to_exit(
        &yaml,
        &["--healthz-bind-address", &taken, "--metrics-bind-address", "127.0.0.1:0"],
        Duration::from_secs(10),
    );
    assert_eq!(status.code(), Some(2), "exit status {status}; log:\n{log}");
    assert!(log.contains(&taken), "the message should name {taken}; log:\n{log}");
    assert!(log.contains("--healthz-bind-address"), "the message names the flag; log:\n{log}");
    assert!(!log.contains("panicked"), "log:\n{log}");
}
