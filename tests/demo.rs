//! `svcproxy demo`, as a new user runs it: the printed curl commands work
//! and round robin shows every hello pod.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use support::net::{eventually, http_get};

/// The demo process; killed when dropped.
struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `svcproxy demo` and returns the `curl http://...` addresses it
/// printed, once it printed them (it prints them when it serves).
fn start_demo() -> (Demo, Vec<SocketAddr>) {
    let mut child = support::command()
        .arg("demo")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("svcproxy demo");
    let stdout = child.stdout.take().expect("stdout");
    let demo = Demo(child);
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut urls = Vec::new();
    loop {
        let line = rx.recv_timeout(Duration::from_secs(20)).expect("demo printed its instructions");
        if let Some(addr) =
            line.trim().strip_prefix("curl http://").and_then(|u| u.split('/').next())
        {
            urls.push(addr.parse().expect("an address"));
        }
        if line.starts_with("Run it again") {
            return (demo, urls);
        }
    }
}

#[test]
fn demo_serves_the_printed_curl_commands_round_robin() {
    let (_demo, urls) = start_demo();
    let frontends: Vec<SocketAddr> =
        urls.into_iter().filter(|a| a.port() == 30165 || a.port() == 9000).collect();
    assert_eq!(frontends.len(), 2, "the NodePort and the ClusterIP commands");
    for frontend in frontends {
        let mut seen = BTreeSet::new();
        for _ in 0..3 {
            let (status, body) =
                eventually("demo answers", Duration::from_secs(5), || http_get(frontend));
            assert_eq!(status, "HTTP/1.1 200 OK");
            assert!(body.starts_with("Hello, k8s! from hello-"), "{body:?}");
            seen.insert(body);
        }
        assert_eq!(seen.len(), 3, "{frontend}: three requests reach the three pods: {seen:?}");
    }
}
