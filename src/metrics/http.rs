//! The HTTP mode's per Service port families, plain atomics as the rest
//! of the traffic: only a port a build served in the HTTP mode carries
//! them ([`PortStats::serve_http`]), and a request touches a few atomics,
//! no lock and no map lookup (a rare status code aside).
//!
//! The status code is bounded (hyper passes 100–999) but not known when
//! the Snapshot is built: the codes nearly every response carries have a
//! counter each at a fixed place, found by a table lookup; any other code
//! is counted in a short list under a lock. A code is written once seen;
//! the proxy's own answers are also counted by reason, every reason
//! written from the start, zeros included, so `increase()` sees the first.

use std::fmt::Write as _;
use std::sync::Arc;

use parking_lot::Mutex;

use super::histogram::{Buckets, Histogram};
use super::traffic::{Counter, PortStats, header, labels};
use super::{HTTP_PROXY_ERRORS, HTTP_REQUEST_DURATION, HTTP_REQUESTS, HttpError};

/// The status codes with a counter of their own, sorted.
const COMMON: [u16; 26] = [
    101, 200, 201, 202, 204, 206, 301, 302, 304, 307, 308, 400, 401, 403, 404, 405, 408, 409, 413,
    422, 429, 500, 501, 502, 503, 504,
];

/// `SLOT[code]` is 1 + the place of `code` in [`COMMON`], 0 for a code
/// counted in [`HttpStats::other`].
const SLOT: [u8; 600] = slots();

/// Request durations: Prometheus' default buckets, 5 ms to 10 s.
#[derive(Debug)]
pub struct Requests;

/// One HTTP Service port's requests.
#[derive(Debug, Default)]
pub struct HttpStats {
    /// By code, in the order of [`COMMON`].
    common: [Counter; COMMON.len()],
    /// Any other code and its count, in the order first seen.
    other: Mutex<Vec<(u16, u64)>>,
    /// From the request head in to the response's end.
    pub duration: Histogram<Requests, 11>,
    /// By [`HttpError`], in the order of [`HttpError::ALL`].
    errors: [Counter; HttpError::ALL.len()],
}

// === impl Requests ===

impl Buckets<11> for Requests {
    const LE: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
}

// === impl HttpStats ===

impl HttpStats {
    /// Counts a response sent to a client with status `code`.
    pub fn responded(&self, code: u16) {
        let slot = SLOT.get(usize::from(code)).copied().unwrap_or(0);
        match self.common.get(usize::from(slot).wrapping_sub(1)) {
            Some(counter) => counter.inc(),
            None => self.other_code(code),
        }
    }

    /// The count of the proxy's own answers for `reason`.
    pub fn errors(&self, reason: HttpError) -> &Counter {
        &self.errors[reason as usize]
    }

    /// The count of responses with status `code` so far.
    pub fn code(&self, code: u16) -> u64 {
        let slot = SLOT.get(usize::from(code)).copied().unwrap_or(0);
        match self.common.get(usize::from(slot).wrapping_sub(1)) {
            Some(counter) => counter.get(),
            None => self.other.lock().iter().find(|(c, _)| *c == code).map_or(0, |(_, n)| *n),
        }
    }

    // Out of line: the common path stays a lookup and an add.
    #[cold]
    fn other_code(&self, code: u16) {
        let mut other = self.other.lock();
        match other.iter_mut().find(|(c, _)| *c == code) {
            Some((_, n)) => *n += 1,
            None => other.push((code, 1)),
        }
    }

    /// Every code seen and its count, sorted by code.
    fn codes(&self) -> Vec<(u16, u64)> {
        let common = COMMON.iter().zip(&self.common).map(|(code, n)| (*code, n.get()));
        let mut codes: Vec<(u16, u64)> = common.filter(|(_, n)| *n > 0).collect();
        codes.extend(self.other.lock().iter().copied());
        codes.sort_unstable();
        codes
    }
}

const fn slots() -> [u8; 600] {
    let mut slots = [0; 600];
    let mut i = 0;
    while i < COMMON.len() {
        slots[COMMON[i] as usize] = i as u8 + 1;
        i += 1;
    }
    slots
}

/// The HTTP families of the ports that have them, in the order of `ports`;
/// each family's HELP and TYPE even with no series, so dashboards and
/// alerts find the names before the first HTTP port.
pub(super) fn render(out: &mut String, ports: &[Arc<PortStats>]) {
    let http = || ports.iter().filter_map(|s| Some((s, s.http()?)));
    header(out, HTTP_REQUESTS, "counter", "HTTP responses sent to clients, by status code.");
    for (s, h) in http() {
        for (code, n) in h.codes() {
            let l = labels(&s.key, &[("code", &code.to_string())]);
            let _ = writeln!(out, "{HTTP_REQUESTS}{{{l}}} {n}");
        }
    }
    let help = "HTTP request latency through the proxy, request head in to response end.";
    header(out, HTTP_REQUEST_DURATION, "histogram", help);
    for (s, h) in http() {
        h.duration.render(out, HTTP_REQUEST_DURATION, &s.key);
    }
    let help = "HTTP requests the proxy answered itself, by reason.";
    header(out, HTTP_PROXY_ERRORS, "counter", help);
    for (s, h) in http() {
        for (reason, counter) in HttpError::ALL.iter().zip(&h.errors) {
            let l = labels(&s.key, &[("reason", reason.label())]);
            let _ = writeln!(out, "{HTTP_PROXY_ERRORS}{{{l}}} {}", counter.get());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{COMMON, HttpStats, SLOT};

    #[test]
    fn each_common_code_is_counted_at_its_own_place() {
        assert!(COMMON.is_sorted());
        let stats = HttpStats::default();
        for (i, code) in COMMON.iter().enumerate() {
            for _ in 0..=i {
                stats.responded(*code);
            }
        }
        for (i, code) in COMMON.iter().enumerate() {
            assert_eq!(stats.code(*code), i as u64 + 1, "{code}");
        }
        assert!(stats.other.lock().is_empty());
    }

    #[test]
    fn any_other_code_is_counted_in_the_list_and_all_come_out_sorted() {
        let stats = HttpStats::default();
        for code in [999, 418, 200, 418, 100, 599, 600] {
            stats.responded(code);
        }
        assert_eq!(SLOT[418], 0);
        assert_eq!(
            stats.codes(),
            [(100, 1), (200, 1), (418, 2), (599, 1), (600, 1), (999, 1)],
            "{:?}",
            stats.other.lock()
        );
    }
}
