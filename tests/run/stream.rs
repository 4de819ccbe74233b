//! Volume through `svcproxy run`: large transfers arrive byte-exact in
//! both directions (hashed at the client and at the endpoint), and a
//! thousand connections open at once are all served.

use std::io::{Read, Write};
use std::sync::mpsc::Receiver;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::endpoint::Endpoint;
use crate::support::manifests::service_of;
use crate::support::net::{self, connect, fresh_ip, stream_through};
use crate::support::proxy::Proxy;

const MIB: u64 = 1024 * 1024;

/// The `(hash, len)` the endpoint reports for each stream of `len` bytes,
/// `count` of them, ignoring the readiness probe's; within `deadline`.
fn endpoint_hashes(
    rx: &Receiver<(u64, u64)>,
    len: u64,
    count: usize,
    deadline: Duration,
) -> Vec<(u64, u64)> {
    let until = Instant::now() + deadline;
    let mut hashes = Vec::new();
    while hashes.len() < count {
        let left = until.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(report) if report.1 == len => hashes.push(report),
            Ok(_) => {}
            Err(e) => panic!("the endpoint reported {} of {count} streams: {e}", hashes.len()),
        }
    }
    hashes
}

#[test]
fn a_256_mib_stream_arrives_byte_exact_both_ways() {
    const LEN: u64 = 256 * MIB;
    let (endpoint, rx) = Endpoint::echo_hashing(fresh_ip());
    let (frontend, yaml) = service_of("bulk", &[endpoint.addr]);
    let (_proxy, _) = Proxy::serving(&yaml, &[], || net::echo(frontend, b"probe"));

    let start = Instant::now();
    let (sent, received) = stream_through(frontend, 256, LEN).expect("256 MiB through an echo");
    let elapsed = start.elapsed();
    eprintln!(
        "256 MiB each way in {elapsed:?} ({:.0} MiB/s each way)",
        LEN as f64 / MIB as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(sent.1, LEN);
    assert_eq!(endpoint_hashes(&rx, LEN, 1, Duration::from_secs(10)), [sent], "client -> endpoint");
    assert_eq!(received, sent, "endpoint -> client (the echo)");
}

#[test]
fn eight_parallel_32_mib_streams_arrive_exact() {
    const LEN: u64 = 32 * MIB;
    let (endpoint, rx) = Endpoint::echo_hashing(fresh_ip());
    let (frontend, yaml) = service_of("parallel", &[endpoint.addr]);
    let (_proxy, _) = Proxy::serving(&yaml, &[], || net::echo(frontend, b"probe"));

    let start = Instant::now();
    let streams: Vec<_> =
        (0..8u64).map(|seed| thread::spawn(move || stream_through(frontend, seed, LEN))).collect();
    let mut sent = Vec::new();
    for (i, stream) in streams.into_iter().enumerate() {
        let (out, back) =
            stream.join().expect("stream thread").unwrap_or_else(|e| panic!("stream {i}: {e}"));
        assert_eq!(out.1, LEN);
        assert_eq!(back, out, "stream {i}: the echo differs from what was sent");
        sent.push(out);
    }
    eprintln!("8 x 32 MiB each way in {:?}", start.elapsed());
    let mut at_endpoint = endpoint_hashes(&rx, LEN, 8, Duration::from_secs(10));
    at_endpoint.sort_unstable();
    sent.sort_unstable();
    assert_eq!(at_endpoint, sent, "what the endpoint received differs from what was sent");
    let distinct: std::collections::BTreeSet<_> = sent.iter().collect();
    assert_eq!(distinct.len(), 8, "eight different streams");
}

#[test]
fn a_thousand_concurrent_connections_are_all_served() {
    const CONNECTIONS: usize = 1_000;
    // Our side holds 2,000 sockets (clients and the echo's ends).
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let endpoint = Endpoint::echo(fresh_ip());
    let (frontend, yaml) = service_of("many", &[endpoint.addr]);
    let (mut proxy, _) = Proxy::serving(&yaml, &[], || net::echo(frontend, b"probe"));

    let start = Instant::now();
    let mut clients = Vec::with_capacity(CONNECTIONS);
    for i in 0..CONNECTIONS {
        let mut stream = connect(frontend).unwrap_or_else(|e| panic!("connection {i}: {e}"));
        stream.write_all(format!("hello from {i:04}\n").as_bytes()).expect("write");
        clients.push(stream);
    }
    // Every connection is open now; each gets its own message back.
    for (i, stream) in clients.iter_mut().enumerate() {
        let expected = format!("hello from {i:04}\n");
        let mut back = vec![0u8; expected.len()];
        stream.read_exact(&mut back).unwrap_or_else(|e| panic!("connection {i}: {e}"));
        assert_eq!(String::from_utf8_lossy(&back), expected, "connection {i}");
    }
    eprintln!("{CONNECTIONS} concurrent connections served in {:?}", start.elapsed());
    assert!(
        endpoint.peak() >= CONNECTIONS,
        "the endpoint saw at most {} connections at once, not {CONNECTIONS}",
        endpoint.peak()
    );
    proxy.assert_running();
    // Still served while all of them are open.
    net::echo(frontend, b"one more").expect("one more connection");
}
