//! The admin side of a running proxy: its `/healthz` and `/metrics`
//! addresses (read from the startup log line), plain HTTP/1.1 GETs to
//! them, Prometheus samples out of the text exposition, the
//! `/debug/routes` JSON, and the RFC 3339 times of a health body with the
//! time they are compared with.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

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
    let (head, body) = exchange(to, path)?;
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| io::Error::other(format!("no status line in {head:?}")))?;
    Ok((status, body))
}

/// `GET path` on `to`: the status line, the headers (names lower-cased)
/// and the body; panics unless it answers.
pub fn get_with_headers(to: SocketAddr, path: &str) -> (String, BTreeMap<String, String>, String) {
    let (head, body) = exchange(to, path).unwrap_or_else(|e| panic!("GET {path} from {to}: {e}"));
    let mut lines = head.lines();
    let status = lines.next().unwrap_or_default().to_owned();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body)
}

/// One `GET path` with `Connection: close`: the answer's head and body.
fn exchange(to: SocketAddr, path: &str) -> io::Result<(String, String)> {
    let mut stream = net::connect(to)?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {to}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes())?;
    let answer = net::text(net::read_to_end(&mut stream)?)?;
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .ok_or_else(|| io::Error::other(format!("not an HTTP answer: {answer:?}")))?;
    Ok((head.to_owned(), body.to_owned()))
}

/// The value of the sample line `SERIES VALUE` in a text exposition.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
}

/// `GET path` on `to`; panics unless it answers.
pub fn http(to: SocketAddr, path: &str) -> (u16, String) {
    get(to, path).unwrap_or_else(|e| panic!("GET {path} from {to}: {e}"))
}

/// `/debug/routes`, parsed.
pub fn routes(admin: &Admin) -> Value {
    let (status, body) = http(admin.metrics, "/debug/routes");
    assert_eq!(status, 200, "/debug/routes answered {status}: {body}");
    serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("/debug/routes is not JSON ({e}): {body}"))
}

/// Now, in seconds since the Unix epoch: what the times of a health body
/// or of a metric are compared with.
pub fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs_f64()
}

/// Seconds since the Unix epoch of an RFC 3339 date-time
/// (`YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`); `None` if it is not one.
pub fn rfc3339(text: &str) -> Option<f64> {
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        if part.bytes().all(|c| c.is_ascii_digit()) { part.parse().ok() } else { None }
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    let in_range = (1..=12).contains(&month) && (1..=31).contains(&day);
    if !in_range || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = text.get(19..)?;
    let mut fraction = 0.0;
    if let Some(frac) = rest.strip_prefix('.') {
        let len = frac.bytes().take_while(u8::is_ascii_digit).count();
        if len == 0 {
            return None;
        }
        fraction = format!("0.{}", &frac[..len]).parse().ok()?;
        rest = &frac[len..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            if rest.len() != 6 || rest.as_bytes()[3] != b':' {
                return None;
            }
            let h: i64 = rest[1..3].parse().ok()?;
            let m: i64 = rest[4..6].parse().ok()?;
            sign * (h * 3600 + m * 60)
        }
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset;
    Some(seconds as f64 + fraction)
}
