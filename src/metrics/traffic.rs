//! The per Service port and per endpoint families, kept as plain atomics.
//!
//! A cluster of 10,000 Services has ~20,000 Service ports and ~60,000
//! endpoints: as prometheus-crate children they cost ~700 bytes each and
//! dominated every rebuild. Here a port is ~300 bytes of atomics (~700
//! with the HTTP families, [`super::http`]), an endpoint ~70, a connection
//! or an HTTP request touches only atomics, and the text is written at
//! scrape time. Every reason is written from the start, zeros included,
//! so `increase()` sees the first error.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use rustc_hash::FxHashMap;

use super::histogram::{Connections, Histogram};
use super::http::{self, HttpStats};
use super::udp::{self, UdpStats};
use super::{
    CONNECTION_DURATION, CONNECTIONS, CONNECTIONS_ACTIVE, ConnectError, ENDPOINT_CONNECT_ERRORS,
    ENDPOINT_CONNECTIONS, ENDPOINT_HTTP_REQUESTS, RECEIVED_BYTES, REJECTED_CONNECTIONS, Reject,
    SENT_BYTES,
};
use crate::model::ServiceId;

/// A per-port family: name, type, help, and how to read its value.
type Family = (&'static str, &'static str, &'static str, fn(&PortStats) -> i128);

/// A monotonic counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

/// A Service port's identity in the metrics.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortKey {
    pub service: ServiceId,
    /// The ServicePort's name, or its number when unnamed.
    pub port: Arc<str>,
}

/// One Service port's traffic, shared by its Routes and kept across
/// rebuilds while the port exists.
#[derive(Debug)]
pub struct PortStats {
    pub key: PortKey,
    pub connections: Counter,
    pub active: Gauge,
    /// Bytes from clients.
    pub received: Counter,
    /// Bytes to clients.
    pub sent: Counter,
    pub duration: Histogram<Connections, 12>,
    /// By [`Reject`], in the order of [`Reject::ALL`].
    rejected: [Counter; Reject::ALL.len()],
    /// Only on ports served in the HTTP mode, from the first build that
    /// serves them so (boxed: most ports never have it).
    http: OnceLock<Box<HttpStats>>,
    /// Only on UDP ports, from the first build that serves them.
    udp: OnceLock<Box<UdpStats>>,
    endpoints: Mutex<FxHashMap<SocketAddr, Arc<EndpointStats>>>,
    /// The last build that used this port.
    seen: AtomicU64,
    /// How many of `endpoints` that build used so far.
    endpoints_seen: AtomicUsize,
    /// The build that made it: exported once a build at least as late is
    /// committed, so a build that is dropped exports nothing of its own.
    born: u64,
}

/// One endpoint's traffic under one Service port.
#[derive(Debug, Default)]
pub struct EndpointStats {
    pub connections: Counter,
    /// HTTP requests sent to it (exported for ports in the HTTP mode).
    pub http_requests: Counter,
    /// HTTP requests in a row it answered with a 5xx or reset: what
    /// ejects it (not exported).
    pub failures_in_a_row: AtomicU32,
    /// Requests in flight (HTTP) or connections open (TCP) on it, counted
    /// only for Services with the least-request policy (not exported).
    pub in_flight: AtomicU32,
    /// By [`ConnectError`], in the order of [`ConnectError::ALL`].
    errors: [Counter; ConnectError::ALL.len()],
    /// The last build that used this endpoint.
    seen: AtomicU64,
    /// The build that made it (see [`PortStats`]).
    born: u64,
}

/// Every live port, by key.
#[derive(Debug, Default)]
pub(super) struct Traffic {
    ports: Mutex<FxHashMap<PortKey, Arc<PortStats>>>,
    builds: AtomicU64,
    /// The last build committed ([`Traffic::retain`]).
    committed: AtomicU64,
}

/// One Snapshot build: the ports and endpoints it touches are stamped with
/// it, and [`super::Metrics::retain`] drops every one not stamped. Builds
/// take turns (the control loop is the only one).
#[derive(Debug)]
pub struct InUse {
    build: u64,
    /// How many ports this build stamped: when that is all of them, a
    /// rebuild that removed nothing skips the sweep.
    ports: AtomicUsize,
}

// === impl Counter, Gauge ===

impl Counter {
    pub fn inc(&self) {
        self.inc_by(1);
    }

    pub fn inc_by(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Gauge {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

// === impl PortStats ===

impl PortStats {
    /// A port's traffic counted from zero; exported only when it comes
    /// from [`super::Metrics::port`].
    pub fn new(key: PortKey) -> Self {
        Self {
            key,
            connections: Counter::default(),
            active: Gauge::default(),
            received: Counter::default(),
            sent: Counter::default(),
            duration: Histogram::default(),
            rejected: Default::default(),
            http: OnceLock::new(),
            udp: OnceLock::new(),
            endpoints: Mutex::default(),
            seen: AtomicU64::new(0),
            endpoints_seen: AtomicUsize::new(0),
            born: 0,
        }
    }

    /// The count of clients turned away for `reason`.
    pub fn rejected(&self, reason: Reject) -> &Counter {
        &self.rejected[reason as usize]
    }

    /// The port's HTTP families, once a build served it in the HTTP mode.
    pub fn http(&self) -> Option<&HttpStats> {
        self.http.get().map(|http| &**http)
    }

    /// Gives the port its HTTP families, zeros written from the next
    /// scrape. Kept while the port lives, should it turn back to TCP: a
    /// counter that vanished and came back would read as a reset.
    pub fn serve_http(&self) {
        self.http.get_or_init(Box::default);
    }

    /// The port's UDP families, once a build served it as UDP.
    pub fn udp(&self) -> Option<&UdpStats> {
        self.udp.get().map(|udp| &**udp)
    }

    /// Gives the port its UDP families, zeros written from the next scrape.
    pub fn serve_udp(&self) {
        self.udp.get_or_init(Box::default);
    }
}

// === impl EndpointStats ===

impl EndpointStats {
    /// The count of failed connects for `reason`.
    pub fn errors(&self, reason: ConnectError) -> &Counter {
        &self.errors[reason as usize]
    }
}

// === impl Traffic ===

impl Traffic {
    pub(super) fn begin(&self) -> InUse {
        let build = self.builds.fetch_add(1, Ordering::Relaxed) + 1;
        InUse { build, ports: AtomicUsize::new(0) }
    }

    pub(super) fn port(
        &self,
        service: &ServiceId,
        port: &Arc<str>,
        in_use: &InUse,
    ) -> Arc<PortStats> {
        let key = PortKey { service: service.clone(), port: port.clone() };
        let mut ports = self.ports.lock();
        let stats = ports.entry(key).or_insert_with_key(|key| {
            Arc::new(PortStats { born: in_use.build, ..PortStats::new(key.clone()) })
        });
        if stats.seen.swap(in_use.build, Ordering::Relaxed) != in_use.build {
            in_use.ports.fetch_add(1, Ordering::Relaxed);
            stats.endpoints_seen.store(0, Ordering::Relaxed);
        }
        stats.clone()
    }

    /// Runs `with` with a lookup of endpoint stats under `port`, all under
    /// one lock of the port's endpoints.
    pub(super) fn endpoints<T>(
        &self,
        port: &PortStats,
        in_use: &InUse,
        with: impl FnOnce(&mut dyn FnMut(SocketAddr) -> Arc<EndpointStats>) -> T,
    ) -> T {
        let mut endpoints = port.endpoints.lock();
        with(&mut |addr| {
            let stats = endpoints.entry(addr).or_insert_with(|| {
                Arc::new(EndpointStats { born: in_use.build, ..Default::default() })
            });
            if stats.seen.swap(in_use.build, Ordering::Relaxed) != in_use.build {
                port.endpoints_seen.fetch_add(1, Ordering::Relaxed);
            }
            stats.clone()
        })
    }

    /// Commits the build of `in_use`: exports what it made, drops the
    /// ports and endpoints it did not stamp (a map whose every entry was
    /// stamped is left alone).
    pub(super) fn retain(&self, in_use: &InUse) {
        let stamped = |seen: &AtomicU64| seen.load(Ordering::Relaxed) == in_use.build;
        let mut ports = self.ports.lock();
        if in_use.ports.load(Ordering::Relaxed) != ports.len() {
            ports.retain(|_, stats| stamped(&stats.seen));
        }
        for stats in ports.values() {
            let mut endpoints = stats.endpoints.lock();
            if stats.endpoints_seen.load(Ordering::Relaxed) != endpoints.len() {
                endpoints.retain(|_, e| stamped(&e.seen));
            }
        }
        self.committed.store(in_use.build, Ordering::Relaxed);
    }

    /// Every traffic family in Prometheus' text format, ports and endpoints
    /// in sorted order.
    pub(super) fn render(&self, out: &mut String) {
        let committed = self.committed.load(Ordering::Relaxed);
        let mut ports: Vec<Arc<PortStats>> = {
            let ports = self.ports.lock();
            ports.values().filter(|s| s.born <= committed).cloned().collect()
        };
        ports.sort_by(|a, b| a.key.cmp(&b.key));
        let families: [Family; 4] = [
            (CONNECTIONS, "counter", "Client connections accepted.", |s| {
                s.connections.get().into()
            }),
            (CONNECTIONS_ACTIVE, "gauge", "Client connections open now.", |s| {
                s.active.get().into()
            }),
            (RECEIVED_BYTES, "counter", "Bytes received from clients.", |s| {
                s.received.get().into()
            }),
            (SENT_BYTES, "counter", "Bytes sent to clients.", |s| s.sent.get().into()),
        ];
        for (name, kind, help, value) in families {
            header(out, name, kind, help);
            for s in &ports {
                let _ = writeln!(out, "{name}{{{}}} {}", labels(&s.key, &[]), value(s));
            }
        }
        render_duration(out, &ports);
        render_rejected(out, &ports);
        http::render(out, &ports);
        udp::render(out, &ports);
        render_endpoints(out, &ports, committed);
    }
}

fn render_duration(out: &mut String, ports: &[Arc<PortStats>]) {
    header(out, CONNECTION_DURATION, "histogram", "How long client connections lasted.");
    for s in ports {
        s.duration.render(out, CONNECTION_DURATION, &s.key);
    }
}

fn render_rejected(out: &mut String, ports: &[Arc<PortStats>]) {
    let help =
        "Client connections turned away, or cut short after a close-wait timeout, by reason.";
    header(out, REJECTED_CONNECTIONS, "counter", help);
    for s in ports {
        for (reason, counter) in Reject::ALL.iter().zip(&s.rejected) {
            let l = labels(&s.key, &[("reason", reason.label())]);
            let _ = writeln!(out, "{REJECTED_CONNECTIONS}{{{l}}} {}", counter.get());
        }
    }
}

fn render_endpoints(out: &mut String, ports: &[Arc<PortStats>], committed: u64) {
    let (mut connections, mut errors, mut requests) = (String::new(), String::new(), String::new());
    for s in ports {
        let mut endpoints: Vec<(SocketAddr, Arc<EndpointStats>)> = {
            let endpoints = s.endpoints.lock();
            let exported = endpoints.iter().filter(|(_, e)| e.born <= committed);
            exported.map(|(a, e)| (*a, e.clone())).collect()
        };
        endpoints.sort_by_key(|(a, _)| *a);
        for (addr, e) in endpoints {
            let endpoint = addr.to_string();
            let l = labels(&s.key, &[("endpoint", &endpoint)]);
            let _ = writeln!(connections, "{ENDPOINT_CONNECTIONS}{{{l}}} {}", e.connections.get());
            if s.http().is_some() {
                let n = e.http_requests.get();
                let _ = writeln!(requests, "{ENDPOINT_HTTP_REQUESTS}{{{l}}} {n}");
            }
            for (reason, counter) in ConnectError::ALL.iter().zip(&e.errors) {
                let l = labels(&s.key, &[("endpoint", &endpoint), ("reason", reason.label())]);
                let _ = writeln!(errors, "{ENDPOINT_CONNECT_ERRORS}{{{l}}} {}", counter.get());
            }
        }
    }
    header(out, ENDPOINT_CONNECTIONS, "counter", "Connections established to an endpoint.");
    out.push_str(&connections);
    header(out, ENDPOINT_CONNECT_ERRORS, "counter", "Failed attempts to connect to an endpoint.");
    out.push_str(&errors);
    header(out, ENDPOINT_HTTP_REQUESTS, "counter", "HTTP requests sent to an endpoint.");
    out.push_str(&requests);
}

pub(super) fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// `namespace="..",service="..",port=".."` plus `extra`, values escaped as
/// the text format asks.
pub(super) fn labels(key: &PortKey, extra: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(64);
    let pairs = [
        ("namespace", &*key.service.namespace),
        ("service", &*key.service.name),
        ("port", &*key.port),
    ];
    for (i, (name, value)) in pairs.iter().chain(extra).enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{name}=\"");
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out
}
