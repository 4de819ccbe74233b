//! `--splice always` and `--splice never` keep TCP's semantics: bytes
//! arrive exact, a half-close travels one way while the other way flows,
//! and a reset becomes a reset. (The default, `auto`, is what every other
//! test runs: a bulk direction switches from copying to splicing mid-stream.)

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use crate::support::endpoint::Endpoint;
use crate::support::manifests::service_of;
use crate::support::net::{self, connect, fresh_ip, stream_through};
use crate::support::proxy::Proxy;
use crate::support::semantics;

const MIB: u64 = 1024 * 1024;
const MODES: [&str; 2] = ["always", "never"];

#[test]
fn a_64_mib_stream_arrives_byte_exact_both_ways_in_every_mode() {
    const LEN: u64 = 64 * MIB;
    for mode in MODES {
        let (endpoint, rx) = Endpoint::echo_hashing(fresh_ip());
        let (frontend, yaml) = service_of("bulk", &[endpoint.addr]);
        let (_proxy, _) =
            Proxy::serving(&yaml, &["--splice", mode], || net::echo(frontend, b"probe"));

        let (sent, received) = stream_through(frontend, 64, LEN).expect("64 MiB through an echo");
        assert_eq!(sent.1, LEN, "--splice {mode}");
        assert_eq!(received, sent, "--splice {mode}: endpoint -> client (the echo)");
        let until = Instant::now() + Duration::from_secs(10);
        let at_endpoint = loop {
            let left = until.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(report) if report.1 == LEN => break report,
                Ok(_) => {}
                Err(e) => panic!("--splice {mode}: the endpoint reported no stream: {e}"),
            }
        };
        assert_eq!(at_endpoint, sent, "--splice {mode}: client -> endpoint");
    }
}

#[test]
fn a_fast_one_way_download_arrives_whole_in_every_mode() {
    // The endpoint writes as fast as it can and the client reads as fast as
    // it can: the proxy's copy loop never waits on either socket.
    const LEN: usize = 512 * 1024 * 1024;
    for mode in ["always", "never", "auto"] {
        let endpoint = Endpoint::spawn(fresh_ip(), |mut stream| {
            let chunk = vec![7u8; 256 * 1024];
            let mut left = LEN;
            while left > 0 {
                let n = left.min(chunk.len());
                if stream.write_all(&chunk[..n]).is_err() {
                    return;
                }
                left -= n;
            }
        });
        let (frontend, yaml) = service_of("download", &[endpoint.addr]);
        let download = || -> std::io::Result<usize> {
            let mut stream = connect(frontend)?;
            stream.set_read_timeout(Some(Duration::from_secs(10)))?;
            let mut buf = vec![0u8; 256 * 1024];
            let mut total = 0;
            loop {
                match stream.read(&mut buf)? {
                    0 => return Ok(total),
                    n => total += n,
                }
            }
        };
        let (_proxy, _) = Proxy::serving(&yaml, &["--splice", mode], download);
        let started = Instant::now();
        assert_eq!(download().expect("download"), LEN, "--splice {mode}");
        eprintln!("--splice {mode}: 512 MiB one way in {:?}", started.elapsed());
    }
}

#[test]
fn a_client_half_close_passes_while_the_reply_flows_in_every_mode() {
    for mode in MODES {
        semantics::client_half_close(&["--splice", mode]);
    }
}

#[test]
fn an_endpoint_half_close_passes_while_the_client_still_sends_in_every_mode() {
    for mode in MODES {
        semantics::endpoint_half_close(&["--splice", mode]);
    }
}

#[test]
fn resets_cross_in_both_directions_in_every_mode() {
    for mode in MODES {
        semantics::endpoint_reset(&["--splice", mode]);
        semantics::client_reset(&["--splice", mode]);
    }
}
