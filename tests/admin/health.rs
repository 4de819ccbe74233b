//! `/healthz` and `/livez` (DESIGN §5), end to end: kube-proxy's JSON body
//! and status before the first Snapshot (503), while the real binary
//! serves (200), then while a SIGTERM drain waits for a live connection
//! (503).

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::admin::{self, Admin, http, rfc3339, unix_now};
use crate::support::endpoint::Endpoint;
use crate::support::metrics::{WAIT, service_with_pods};
use crate::support::net::{self, eventually, fresh_ip};
use crate::support::proxy::Proxy;

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

/// DESIGN §5: `/healthz` and `/livez` answer 503 before the first
/// Snapshot (a manifest set that takes a while to build), with a JSON body
/// whose `currentTime` is RFC 3339; then 200 once it is published.
#[test]
fn healthz_and_livez_answer_503_before_the_first_snapshot() {
    let mut proxy = Proxy::start_with_a_slow_first_build();
    let admin = proxy.admin();
    let generation = |admin: &Admin| admin.sample("svcproxy_routing_generation").unwrap_or(-1.0);
    let until = Instant::now() + Duration::from_secs(30);
    let mut before_first = 0;
    loop {
        proxy.assert_running();
        let answers: Vec<(&str, u16, String)> = ["/healthz", "/livez"]
            .into_iter()
            .map(|path| {
                let (status, body) = admin::http(admin.healthz, path);
                (path, status, body)
            })
            .collect();
        // Read after the answers: 0 here means no Snapshot was published
        // when they were given.
        let published = generation(&admin);
        if published == 0.0 {
            for (path, status, body) in &answers {
                assert_eq!(*status, 503, "{path} before the first Snapshot: {body}");
                let json: Value = serde_json::from_str(body)
                    .unwrap_or_else(|e| panic!("{path} body is not JSON ({e}): {body}"));
                let now = json["currentTime"].as_str().and_then(rfc3339);
                assert!(now.is_some_and(|t| (t - unix_now()).abs() < 5.0), "{path}: {body}");
                assert!(json["lastUpdated"].is_string(), "{path}: {body}");
            }
            before_first += 1;
        } else if published >= 1.0 && answers.iter().all(|(_, status, _)| *status == 200) {
            break;
        }
        assert!(Instant::now() < until, "no 200 after 30 s: {answers:?}\n{}", proxy.log());
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        before_first > 0,
        "the first Snapshot was published before the first probe: nothing was shown\n{}",
        proxy.log()
    );
}

/// DESIGN §5: the health body is kube-proxy's `{"lastUpdated": RFC3339,
/// "currentTime": RFC3339}`; before the first Snapshot kube-proxy writes
/// its zero time, svcproxy an empty string.
#[test]
fn the_health_body_has_an_rfc3339_last_updated_even_before_the_first_snapshot() {
    let mut proxy = Proxy::start_with_a_slow_first_build();
    let admin = proxy.admin();
    let (status, body) = admin::http(admin.healthz, "/healthz");
    let generation = admin.sample("svcproxy_routing_generation").expect("generation");
    assert_eq!(generation, 0.0, "published before the probe: nothing shown\n{}", proxy.log());
    assert_eq!(status, 503, "{body}");
    let json: Value = serde_json::from_str(&body).expect("a JSON body");
    let last = json["lastUpdated"].as_str().unwrap_or_default();
    assert!(rfc3339(last).is_some(), "lastUpdated {last:?} is not RFC 3339: {body}");
}
