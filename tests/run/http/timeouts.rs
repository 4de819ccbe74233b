//! How long an HTTP client connection may stay quiet: a head must arrive
//! within `--http-header-timeout`, the next request begin within
//! `--http-idle-timeout`; the two are apart, so a kept-alive client may
//! pause longer than a head may take.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use super::frames::{ACK, GOAWAY, PING, PREFACE, SETTINGS, frame, read_frame};
use super::{GET, addrs, endpoints, exchange, keep_alive, once, service};
use crate::support::http::HttpEndpoint;
use crate::support::proxy::Proxy;

/// Header timeout 1 s, idle timeout 3 s.
const FLAGS: [&str; 4] = ["--http-header-timeout", "1s", "--http-idle-timeout", "3s"];

/// Reads `stream` to its end (bounded at 10 s): the bytes, and how long
/// after `since` it ended.
fn until_closed(stream: &mut TcpStream, since: Instant) -> (Vec<u8>, Duration) {
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("read timeout");
    let mut bytes = Vec::new();
    let ended = stream.read_to_end(&mut bytes);
    assert!(ended.is_ok(), "not closed within 10 s: {ended:?}");
    (bytes, since.elapsed())
}

/// The proxy with [`FLAGS`] in front of one pod (kept alive with the
/// returned guard).
fn serving() -> (Proxy, SocketAddr, Vec<HttpEndpoint>) {
    let pods = endpoints(&["a"]);
    let (frontend, manifest) = service("http", &addrs(&pods));
    let mut proxy = Proxy::start(&manifest, &FLAGS);
    proxy.wait_ready(|| once(frontend));
    (proxy, frontend, pods)
}

/// A kept-alive client that pauses 2 s (past the header timeout) between
/// requests is still served on the same connection; one that pauses past
/// the idle timeout finds the connection closed, about 3 s after its
/// last response.
#[test]
fn a_kept_alive_client_may_pause_up_to_the_idle_timeout_not_the_header_timeout() {
    let (mut proxy, frontend, _pods) = serving();
    let mut connection = keep_alive(frontend);
    assert_eq!(exchange(&mut connection, GET).expect("first").0, 200);
    // Time passing is what this test is about, not a readiness wait.
    thread::sleep(Duration::from_secs(2));
    let (status, _, _) = exchange(&mut connection, GET)
        .unwrap_or_else(|e| panic!("the pause cut the connection: {e}\n{}", proxy.log()));
    assert_eq!(status, 200);
    let answered = Instant::now();
    let (rest, after) = until_closed(connection.get_mut(), answered);
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    assert!(
        after >= Duration::from_millis(2500) && after < Duration::from_secs(6),
        "closed {after:?} after the last response; the idle timeout is 3 s"
    );
    proxy.assert_running();
}

/// A connection that sends nothing is closed after the header timeout:
/// its first request is a head like any other.
#[test]
fn a_connection_that_sends_nothing_is_closed_after_the_header_timeout() {
    let (mut proxy, frontend, _pods) = serving();
    let accepted = Instant::now();
    let mut silent = TcpStream::connect(frontend).expect("connect");
    let (_, after) = until_closed(&mut silent, accepted);
    assert!(
        after < Duration::from_millis(2500),
        "closed after {after:?}; the header timeout is 1 s"
    );
    proxy.assert_running();
}

/// An HTTP/2 client that opened its connection (preface and SETTINGS, as
/// a gRPC channel does before its first call) and sends no request gets
/// GOAWAY after the idle timeout, not the header timeout, then the
/// connection ends.
#[test]
fn an_idle_http2_connection_gets_goaway_after_the_idle_timeout() {
    let (mut proxy, frontend, _pods) = serving();
    let mut h2 = TcpStream::connect(frontend).expect("connect");
    h2.set_read_timeout(Some(Duration::from_secs(10))).expect("read timeout");
    let opened = Instant::now();
    h2.write_all(PREFACE).expect("preface");
    h2.write_all(&frame(SETTINGS, 0, &[])).expect("SETTINGS");
    let mut types = Vec::new();
    let mut goaway = None;
    while let Some((kind, flags, payload)) = read_frame(&mut h2) {
        types.push(kind);
        goaway = goaway.or((kind == GOAWAY).then(|| opened.elapsed()));
        // What a client owes: acknowledgements (the graceful GOAWAY waits
        // for a PING's).
        match kind {
            SETTINGS if flags & ACK == 0 => h2.write_all(&frame(SETTINGS, ACK, &[])),
            PING if flags & ACK == 0 => h2.write_all(&frame(PING, ACK, &payload)),
            _ => Ok(()),
        }
        .unwrap_or_else(|e| panic!("{e}: frames {types:?}\n{}", proxy.log()));
    }
    let closed = opened.elapsed();
    let goaway = goaway.unwrap_or_else(|| panic!("no GOAWAY among frames {types:?}"));
    assert!(
        goaway >= Duration::from_millis(2500) && goaway < Duration::from_secs(6),
        "GOAWAY {goaway:?} after the preface; the idle timeout is 3 s\n{}",
        proxy.log()
    );
    assert!(closed < goaway + Duration::from_secs(2), "closed {closed:?}, GOAWAY at {goaway:?}");
    proxy.assert_running();
}
