//! `/healthz` and `/livez` (DESIGN §5), end to end: kube-proxy's JSON body
//! and status while the real binary serves, then while a SIGTERM drain
//! waits for a live connection.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::support::admin::{self, http, rfc3339};
use crate::support::endpoint::Endpoint;
use crate::support::metrics::{WAIT, service_with_pods};
use crate::support::net::{self, eventually, fresh_ip};
use crate::support::proxy::Proxy;
use serde_json::Value;

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs_f64()
}

/// Checks a kube-proxy health body: JSON with RFC 3339 `lastUpdated` and
/// `currentTime`, the latter now and not before the former.
fn assert_health_body(path: &str, body: &str) -> (f64, f64) {
    let json: Value = serde_json::from_str(body)
        .unwrap_or_else(|e| panic!("{path} body is not JSON ({e}): {body:?}"));
    let field = |key: &str| -> f64 {
        let text = json[key].as_str().unwrap_or_else(|| panic!("{path}: no string {key}: {body}"));
        rfc3339(text).unwrap_or_else(|| panic!("{path}: {key} {text:?} is not RFC 3339"))
    };
    let (last, current) = (field("lastUpdated"), field("currentTime"));
    let now = unix_now();
    assert!((current - now).abs() < 5.0, "{path}: currentTime is {current}, now is {now}: {body}");
    assert!(last <= current, "{path}: lastUpdated after currentTime: {body}");
    (last, current)
}

/// `/healthz` and `/livez` answer 200 with kube-proxy's JSON body once
/// routing is published, and 503 while a SIGTERM drain waits for a live
/// connection.
#[test]
fn healthz_and_livez_are_200_when_serving_and_503_while_draining() {
    let started = unix_now();
    let echo = Endpoint::echo(fresh_ip());
    let (frontend, yaml) = service_with_pods("health", "tcp", &[echo.addr]);
    let (mut proxy, ()) =
        Proxy::serving(&yaml, &["--drain-timeout", "5s"], || net::echo(frontend, b"up?"));
    let admin = proxy.admin();
    for path in ["/healthz", "/livez"] {
        let (status, body) = http(admin.healthz, path);
        assert_eq!(status, 200, "{path}: {body}\n{}", proxy.log());
        let (last, _) = assert_health_body(path, &body);
        // Second precision: the publish was at or after the test's start.
        assert!(last >= started.floor() - 1.0, "{path}: lastUpdated {last} before the start");
    }
    let (status, _) = http(admin.healthz, "/nothing-here");
    assert_eq!(status, 404, "an unknown path");

    // A live connection keeps the drain going.
    let mut live = net::connect(frontend).expect("connect");
    live.write_all(b"x").expect("write");
    let mut byte = [0u8; 1];
    live.read_exact(&mut byte).expect("echo");
    let signalled = Instant::now();
    proxy.signal("TERM");
    for path in ["/healthz", "/livez"] {
        // Well inside the 5 s drain, so a failure shows the answer, not a
        // proxy that has exited.
        let body = eventually(
            &format!("{path} to answer 503 during the drain"),
            Duration::from_secs(3),
            || match admin::get(admin.healthz, path)? {
                (503, body) => Ok(body),
                (status, body) => Err(io::Error::other(format!("{status}: {body}"))),
            },
        );
        assert_health_body(path, &body);
    }
    assert!(proxy.running(), "the drain ended while a connection was live\n{}", proxy.log());
    assert!(signalled.elapsed() < Duration::from_secs(5), "too slow to observe the drain");
    // The live connection still works, then ends; the proxy exits.
    live.write_all(b"y").expect("write during the drain");
    live.read_exact(&mut byte).expect("echo during the drain");
    assert_eq!(&byte, b"y");
    live.shutdown(Shutdown::Write).expect("half-close");
    let rest = net::read_to_end(&mut live).expect("end of the live connection");
    assert!(rest.is_empty());
    drop(live);
    let status = proxy.wait_exit(WAIT);
    assert!(
        status.is_some_and(|s| s.success()),
        "exit after the drain: {status:?}\n{}",
        proxy.log()
    );
}
