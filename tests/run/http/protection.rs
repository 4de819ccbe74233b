//! What a hostile client gets on an HTTP port: request smuggling forms and
//! malformed heads never reach a pod as they were sent; an HTTP/2 client
//! that resets streams as fast as it opens them (CVE-2023-44487, "rapid
//! reset") is sent away.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use super::frames::{
    END_HEADERS, END_STREAM, GOAWAY, HEADERS, PREFACE, RST_STREAM, SETTINGS, frame, frame_on,
    read_frame,
};
use super::{addrs, endpoints, once, service};
use crate::support::proxy::Proxy;

/// Sends `head` on a new connection; everything the proxy answers until
/// it closes (bounded at 5 s).
fn answer_to(frontend: std::net::SocketAddr, head: &str) -> String {
    let mut stream = TcpStream::connect(frontend).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    stream.write_all(head.as_bytes()).expect("write");
    let mut answer = Vec::new();
    let closed = stream.read_to_end(&mut answer);
    assert!(closed.is_ok(), "not closed: {closed:?}; so far {}", String::from_utf8_lossy(&answer));
    String::from_utf8_lossy(&answer).into_owned()
}

/// Two differing `Content-Length`s, a `Transfer-Encoding` that does not
/// end in `chunked`, a broken request line and a field name with a space:
/// each is a 400 and a closed connection, counted as such, and no pod sees
/// a request.
#[test]
fn smuggling_forms_and_malformed_heads_get_400_and_reach_no_pod() {
    let pods = endpoints(&["a"]);
    let (frontend, manifest) = service("http", &addrs(&pods));
    let mut proxy = Proxy::start(&manifest, &[]);
    proxy.wait_ready(|| once(frontend));
    let served = pods[0].served();
    let heads = [
        "POST / HTTP/1.1\r\nHost: web\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        "POST / HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: gzip\r\n\r\nxxxx",
        "GET /\x01 HTTP/1.1\r\nHost: web\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: web\r\nBad Name: x\r\n\r\n",
    ];
    for head in heads {
        let answer = answer_to(frontend, head);
        assert!(answer.starts_with("HTTP/1.1 400"), "{head:?} got {answer:?}\n{}", proxy.log());
    }
    assert_eq!(pods[0].served(), served, "a pod saw a refused request");
    // Counted by the status the clients got, though hyper wrote it.
    let code_400 = "svcproxy_http_requests_total{namespace=\"default\",service=\"web\",port=\"web\",code=\"400\"}";
    proxy.wait_metric(code_400, Duration::from_secs(10), |n| n == heads.len() as f64);
    assert_eq!(once(frontend).expect("others still served").0, 200);
    proxy.assert_running();
}

/// Both `Content-Length` and `Transfer-Encoding` (the classic smuggling
/// form): the body is read by `Transfer-Encoding` alone and the connection
/// closed after the response, as RFC 9112 §6.1 asks, so the request hidden
/// after the chunked body is never read; the pod gets one request, framed
/// anew, with no `Content-Length`.
#[test]
fn content_length_with_transfer_encoding_cannot_smuggle_a_request() {
    let pods = endpoints(&["a"]);
    let (frontend, manifest) = service("http", &addrs(&pods));
    let mut proxy = Proxy::start(&manifest, &[]);
    proxy.wait_ready(|| once(frontend));
    let served = pods[0].served();
    let head = "POST / HTTP/1.1\r\nHost: web\r\nContent-Length: 5\r\n\
                Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n\
                GET /smuggled HTTP/1.1\r\nHost: web\r\n\r\n";
    let answer = answer_to(frontend, head);
    assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{answer}\n{}", proxy.log());
    assert!(answer.to_lowercase().contains("connection: close"), "{answer}");
    assert!(answer.contains("uri: /\n") && answer.contains("body: 0\n"), "{answer}");
    assert!(!answer.contains("content-length: 5"), "the pod saw both: {answer}");
    assert_eq!(pods[0].served() - served, 1, "the hidden request reached the pod");
    proxy.assert_running();
}

/// An HTTP/2 client sending 2,000 requests each reset at once (HEADERS
/// then RST_STREAM, in one burst) is sent GOAWAY long before its pods see
/// them all; the proxy goes on serving.
#[test]
fn rapid_reset_gets_goaway_and_spares_the_pods() {
    let pods = endpoints(&["a"]);
    let (frontend, manifest) = service("http", &addrs(&pods));
    let mut proxy = Proxy::start(&manifest, &[]);
    proxy.wait_ready(|| once(frontend));
    let served = pods[0].served();
    let mut h2 = TcpStream::connect(frontend).expect("connect");
    h2.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut burst = PREFACE.to_vec();
    burst.extend(frame(SETTINGS, 0, &[]));
    // GET http://x/ from HPACK's static table: :method GET, :scheme http,
    // :path /, then :authority "x" as a literal.
    let block = [0x82, 0x86, 0x84, 0x41, 0x01, b'x'];
    for i in 0..2_000u32 {
        let stream = 2 * i + 1;
        burst.extend(frame_on(stream, HEADERS, END_HEADERS | END_STREAM, &block));
        // CANCEL (8).
        burst.extend(frame_on(stream, RST_STREAM, 0, &8u32.to_be_bytes()));
    }
    // The proxy may close before it read the whole burst.
    let _ = h2.write_all(&burst);
    let mut goaway = None;
    while let Some((kind, _, payload)) = read_frame(&mut h2) {
        if kind == GOAWAY && payload.len() >= 8 {
            goaway = Some(u32::from_be_bytes([payload[4], payload[5], payload[6], payload[7]]));
        }
    }
    // ENHANCE_YOUR_CALM (11).
    assert_eq!(goaway, Some(11), "GOAWAY's error code\n{}", proxy.log());
    let reached = pods[0].served() - served;
    assert!(reached < 1_000, "{reached} of 2,000 reset requests reached the pod");
    assert_eq!(once(frontend).expect("others still served").0, 200);
    proxy.assert_running();
}
