//! `--http-access-log`: one JSON line per HTTP request on standard output,
//! with what an operator needs to follow a request: when, from whom, what,
//! through which Service port to which endpoint, the status the client got
//! (the proxy's own answers with their reason), the body bytes each way and
//! the duration.

use std::io::Write as _;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{GET, addrs, endpoints, exchange, keep_alive, once, service, service_named};
use crate::support::proxy::Proxy;

/// The access log lines in the proxy's output (its own log is text on
/// standard error; both go to one file here), once there are `n`, within
/// 10 s.
fn lines(proxy: &Proxy, n: usize) -> Vec<Value> {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let log = proxy.log();
        let lines: Vec<Value> = log
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        if lines.len() >= n {
            return lines;
        }
        assert!(Instant::now() < until, "{} access log lines, not {n}\n{log}", lines.len());
        thread::sleep(Duration::from_millis(20));
    }
}

/// A GET, a POST of 1,000 bytes and a request to a Service port without
/// endpoints each give one line with every field; nothing is logged
/// without the flag.
#[test]
fn each_request_is_one_json_line_with_endpoint_status_bytes_and_duration() {
    let pods = endpoints(&["a"]);
    let (frontend, mut manifest) = service("http", &addrs(&pods));
    let (empty, empty_manifest) = service_named("empty", "http", &[]);
    manifest.push_str("---\n");
    manifest.push_str(&empty_manifest);
    let mut proxy = Proxy::start(&manifest, &["--http-access-log"]);
    proxy.wait_ready(|| once(frontend));
    let probes = lines(&proxy, 1).len();

    let mut connection = keep_alive(frontend);
    let (status, _, body) = exchange(&mut connection, GET).expect("GET");
    assert_eq!(status, 200);
    let post = format!(
        "POST /upload HTTP/1.1\r\nHost: web.default\r\nContent-Length: 1000\r\n\r\n{}",
        "x".repeat(1000)
    );
    assert_eq!(exchange(&mut connection, &post).expect("POST").0, 200);
    let (status, _, _) = once(empty).expect("an answer from the proxy");
    assert_eq!(status, 503);

    let all = lines(&proxy, probes + 3);
    let [get, post, none] = &all[probes..probes + 3] else { unreachable!() };
    let client = connection.get_ref().local_addr().expect("client address").to_string();
    assert_eq!(get["client"], client.as_str(), "{get}");
    assert_eq!(get["protocol"], "HTTP/1.1");
    assert_eq!(get["method"], "GET");
    assert_eq!(get["authority"], "web.default");
    assert_eq!(get["path"], "/hello?x=1");
    assert_eq!(
        (&get["namespace"], &get["service"], &get["port"]),
        (&"default".into(), &"web".into(), &"web".into())
    );
    assert_eq!(get["status"], 200);
    assert_eq!(get["endpoint"], pods[0].addr.to_string().as_str());
    assert_eq!(get["error"], Value::Null);
    assert_eq!(get["received"], 0);
    assert_eq!(get["sent"], body.len(), "{get}");
    assert!(get["duration"].as_f64().is_some_and(|d| d > 0.0 && d < 5.0), "{get}");
    let time = get["time"].as_str().expect("time");
    assert!(humantime::parse_rfc3339(time).is_ok(), "time {time}");

    assert_eq!(
        (&post["method"], &post["path"], &post["received"]),
        (&"POST".into(), &"/upload".into(), &1000.into()),
        "{post}"
    );

    assert_eq!(none["service"], "empty", "{none}");
    assert_eq!(none["status"], 503);
    assert_eq!(none["endpoint"], Value::Null);
    assert_eq!(none["error"], "no_endpoints");
    assert!(none["sent"].as_u64().is_some_and(|n| n > 0), "the 503's body: {none}");
}

/// Without the flag the output has no access log line.
#[test]
fn without_the_flag_nothing_is_logged_per_request() {
    let pods = endpoints(&["a"]);
    let (frontend, manifest) = service("http", &addrs(&pods));
    let mut proxy = Proxy::start(&manifest, &[]);
    proxy.wait_ready(|| once(frontend));
    let mut connection = keep_alive(frontend);
    for _ in 0..10 {
        assert_eq!(exchange(&mut connection, GET).expect("GET").0, 200);
    }
    connection.get_mut().flush().expect("flush");
    let log = proxy.log();
    assert!(!log.lines().any(|l| l.starts_with('{')), "{log}");
}
