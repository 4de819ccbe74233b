//! Hot swap in the HTTP mode: a request takes its frontend's Route at its
//! arrival, so a kept-alive client connection whose frontend is no longer
//! HTTP, or no longer there, gets 503 on its next request and is closed:
//! its next connection reaches whatever serves the address now.

use std::io::Read as _;
use std::time::{Duration, Instant};

use super::{GET, addrs, endpoints, exchange, keep_alive, once, service};
use crate::support::manifests::write_by_rename;
use crate::support::proxy::Proxy;

/// The port turned to `tcp`: new connections are forwarded as bytes (the
/// pod sees no `X-Forwarded-For`), and the kept-alive HTTP connection's
/// next request gets 503 with `Connection: close`, then the connection ends.
#[test]
fn a_kept_alive_connection_to_a_port_no_longer_http_gets_503_and_is_closed() {
    let pods = endpoints(&["a"]);
    let (frontend, manifest) = service("http", &addrs(&pods));
    let mut proxy = Proxy::start(&manifest, &[]);
    proxy.wait_ready(|| once(frontend));
    let mut kept = keep_alive(frontend);
    let (status, _, body) = exchange(&mut kept, GET).expect("a request");
    assert_eq!(status, 200);
    assert!(body.contains("x-forwarded-for"), "the HTTP mode adds it: {body}");

    write_by_rename(&proxy.manifest(), &manifest.replace("appProtocol: http", "appProtocol: tcp"));
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _, body) = once(frontend).expect("a new connection is served");
        if status == 200 && !body.contains("x-forwarded-for") {
            break;
        }
        assert!(Instant::now() < until, "still the HTTP mode: {body}\n{}", proxy.log());
    }

    let (status, headers, body) = exchange(&mut kept, GET).expect("an answer");
    assert_eq!(status, 503, "{body}");
    assert_eq!(headers.get("connection").map(String::as_str), Some("close"), "{headers:?}");
    let mut rest = Vec::new();
    let n = kept.read_to_end(&mut rest).expect("closed, not reset");
    assert_eq!(n, 0, "{}", String::from_utf8_lossy(&rest));
    proxy.assert_running();
}
