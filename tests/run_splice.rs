//! `--splice always` and `--splice never` keep TCP's semantics: bytes
//! arrive exact, a half-close travels one way while the other way flows,
//! and a reset becomes a reset. (The default, `auto`, is what every other
//! test runs: a bulk direction switches from copying to splicing mid-stream.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::time::{Duration, Instant};

use support::endpoint::{Ending, Endpoint};
use support::net::{self, connect, fresh_ip, read_to_end, stream_through};
use support::proxy::{Proxy, service_of};

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
fn a_half_close_passes_while_the_reply_flows_in_every_mode() {
    for mode in MODES {
        let endpoint = Endpoint::reply_after_eof(fresh_ip());
        let (frontend, yaml) = service_of("halfclose", &[endpoint.addr]);
        let exchange = |message: &str| -> std::io::Result<String> {
            let mut stream = connect(frontend)?;
            stream.write_all(message.as_bytes())?;
            stream.shutdown(Shutdown::Write)?;
            net::text(read_to_end(&mut stream)?)
        };
        let (_proxy, _) = Proxy::serving(&yaml, &["--splice", mode], || exchange("probe"));

        let big = "x".repeat(300_000);
        let reply = exchange(&big).expect("half-closed exchange of 300 kB");
        assert_eq!(reply.len(), "got 300000 bytes: ".len() + big.len(), "--splice {mode}");
        assert!(reply.starts_with("got 300000 bytes: "), "--splice {mode}: {}", &reply[..40]);
    }
}

#[test]
fn resets_cross_in_both_directions_in_every_mode() {
    for mode in MODES {
        let resetter = Endpoint::reset_after(fresh_ip(), Duration::from_millis(100));
        let (reset_frontend, reset_yaml) = service_of("resetter", &[resetter.addr]);
        let (echo, rx) = Endpoint::echo_reporting(fresh_ip());
        let (frontend, yaml) = service_of("echo", &[echo.addr]);
        let (_proxy, _) = Proxy::serving(&(yaml + &reset_yaml), &["--splice", mode], || {
            net::echo(frontend, b"probe")
        });

        let mut stream =
            net::eventually("frontend bound", Duration::from_secs(5), || connect(reset_frontend));
        let mut buf = [0u8; 64];
        match stream.read(&mut buf) {
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
            other => panic!("--splice {mode}: expected a reset from the endpoint, got {other:?}"),
        }

        let mut stream = connect(frontend).expect("connect");
        stream.write_all(b"abc").expect("write");
        let mut back = [0u8; 3];
        stream.read_exact(&mut back).expect("echo");
        net::reset(stream);
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(Ending::Eof(bytes)) if bytes == b"probe" => continue,
                Ok(ending) => {
                    assert_eq!(ending, Ending::Reset(b"abc".to_vec()), "--splice {mode}");
                    break;
                }
                Err(e) => panic!("--splice {mode}: the endpoint saw no end: {e}"),
            }
        }
    }
}
