//! The admin side of a running proxy: its `/healthz` and `/metrics`
//! addresses (read from the startup log line), plain HTTP/1.1 GETs to
//! them, and Prometheus samples out of the text exposition.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{self, Write};
use std::net::SocketAddr;

use super::net;

/// Where the admin servers listen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Admin {
    pub healthz: SocketAddr,
    pub metrics: SocketAddr,
}

// === impl Admin ===

impl Admin {
    /// Parses the INFO line `admin endpoints healthz=ADDR metrics=ADDR`
    /// the proxy logs at startup; `None` until it is in `log`.
    pub fn from_log(log: &str) -> Option<Admin> {
        let line = log.lines().find(|l| l.contains("admin endpoints"))?;
        let field = |key: &str| -> Option<SocketAddr> {
            let rest = &line[line.find(key)? + key.len()..];
            rest.split_whitespace().next()?.parse().ok()
        };
        Some(Admin { healthz: field("healthz=")?, metrics: field("metrics=")? })
    }

    /// `GET /healthz`: the status code and body.
    pub fn healthz(&self) -> io::Result<(u16, String)> {
        get(self.healthz, "/healthz")
    }

    /// `GET /metrics`: the exposition text; an error unless it answers 200.
    pub fn metrics(&self) -> io::Result<String> {
        match get(self.metrics, "/metrics")? {
            (200, body) => Ok(body),
            (status, body) => Err(io::Error::other(format!("/metrics answered {status}: {body}"))),
        }
    }

    /// The value of one series, e.g. `svcproxy_routing_generation` or
    /// `svcproxy_config_reloads_total{result="failure"}`; an error when
    /// the metrics cannot be fetched or do not list it.
    pub fn sample(&self, series: &str) -> io::Result<f64> {
        let text = self.metrics()?;
        sample(&text, series)
            .ok_or_else(|| io::Error::other(format!("no series {series} in /metrics:\n{text}")))
    }
}

/// `GET path` over HTTP/1.1 with `Connection: close`: the status code and
/// the body (the admin servers answer with a Content-Length, then close).
pub fn get(to: SocketAddr, path: &str) -> io::Result<(u16, String)> {
    let mut stream = net::connect(to)?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {to}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes())?;
    let answer = net::text(net::read_to_end(&mut stream)?)?;
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .ok_or_else(|| io::Error::other(format!("not an HTTP answer: {answer:?}")))?;
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| io::Error::other(format!("no status line in {head:?}")))?;
    Ok((status, body.to_owned()))
}

/// The value of the sample line `SERIES VALUE` in a text exposition.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
}
