//! Stage 6, balance: which endpoints a new connection tries, in order.
//!
//! Input: a Route and the client's IP. Output: a [`Plan`] of at most
//! [`MAX_ATTEMPTS`] endpoints. Round robin over the Route's endpoints, a
//! ClientIP-affinity pin first when the Service asks for one, endpoints that
//! just failed skipped for a short backoff (passive ejection). With the
//! least-request policy the first endpoint is the less busy of two picked
//! at random, the rest in turn. State that must outlive a Snapshot
//! (ejections, pins) lives here, not in the Route.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;

use crate::metrics::EndpointStats;
use crate::model::{Policy, ServiceId};
use crate::table::{Route, RouteEndpoint, Snapshot};

/// Endpoints tried per connection before the client is reset.
pub const MAX_ATTEMPTS: usize = 4;
/// Affinity pins kept across all Services; beyond this new clients are not
/// pinned until old pins expire, so many source addresses cannot grow memory.
pub const MAX_PINS: usize = 100_000;
/// The first ejection of a failing endpoint; doubled per failure in a row.
const FIRST_EJECTION: Duration = Duration::from_millis(500);
const MAX_EJECTION: Duration = Duration::from_secs(30);

/// The endpoints to try, best first, as indices into the Route's endpoints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    endpoints: [usize; MAX_ATTEMPTS],
    len: usize,
}

/// Balancing state shared by every connection and every Snapshot.
#[derive(Debug, Default)]
pub struct Balancer {
    ejected: DashMap<SocketAddr, Ejection>,
    /// `ejected.len()` kept apart so the common case (nothing ejected)
    /// costs one atomic load per connection, not one map lookup per endpoint.
    ejected_count: AtomicUsize,
    pins: DashMap<PinKey, Pin>,
    /// When the full pin table was last swept: at most once a second, so a
    /// flood of new client addresses cannot make every connection scan it.
    swept: parking_lot::Mutex<Option<Instant>>,
}

/// A request (HTTP) or connection (TCP) on an endpoint, counted in its
/// `in_flight` until dropped: what the least-request policy compares.
#[derive(Debug)]
pub struct Outstanding(Arc<EndpointStats>);

#[derive(Clone, Copy, Debug)]
struct Ejection {
    until: Instant,
    failures: u32,
}

/// A client IP of one ServicePort.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct PinKey {
    service: ServiceId,
    port: std::sync::Arc<str>,
    client: IpAddr,
}

#[derive(Clone, Copy, Debug)]
struct Pin {
    endpoint: SocketAddr,
    /// The client's last connection through the pin: its age is compared
    /// with the Route's timeout at the time of asking, so a lowered
    /// `timeoutSeconds` applies to existing pins too (as in kube-proxy).
    seen: Instant,
    /// The timeout in force when pinned: what a sweep of a full table uses.
    expires: Instant,
}

// === impl Plan ===

impl Plan {
    /// Adds endpoint `i` unless present; false once the plan is full.
    fn push(&mut self, i: usize) -> bool {
        if self.len == MAX_ATTEMPTS || self.iter().any(|e| e == i) {
            return self.len < MAX_ATTEMPTS;
        }
        self.endpoints[self.len] = i;
        self.len += 1;
        self.len < MAX_ATTEMPTS
    }

    /// The endpoints (indices into `Route::endpoints`) in the order to try them.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.endpoints[..self.len].iter().copied()
    }

    /// True when there is nothing to try: reject the client.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

// === impl Balancer ===

impl Balancer {
    /// The endpoints a new connection from `client` tries, in order.
    pub fn plan(&self, route: &Route, client: IpAddr, now: Instant) -> Plan {
        let mut plan = Plan::default();
        let endpoints = &route.endpoints;
        if endpoints.is_empty() {
            return plan;
        }
        if let Some(timeout) = route.affinity
            && let Some(pin) = self.pins.get(&pin_key(route, client))
            && now.saturating_duration_since(pin.seen) < timeout
            && !self.is_ejected(pin.endpoint, now)
            && let Some(i) = endpoints.iter().position(|e| e.addr == pin.endpoint)
        {
            plan.push(i);
        }
        let n = endpoints.len();
        if route.policy == Policy::LeastRequest
            && n > 1
            && let Some(i) = self.less_busy(route, now)
        {
            plan.push(i);
        }
        let start = route.cursor.next();
        let rotation = (0..n).map(|i| (start + i) % n);
        for i in rotation.clone().filter(|i| !self.is_ejected(endpoints[*i].addr, now)) {
            if !plan.push(i) {
                return plan;
            }
        }
        // Every endpoint is ejected: trying them beats refusing outright.
        for i in rotation {
            if !plan.push(i) {
                break;
            }
        }
        plan
    }

    /// The less busy of two distinct endpoints picked at random (Envoy's
    /// power of two choices), skipping ejected ones; the first on a tie.
    fn less_busy(&self, route: &Route, now: Instant) -> Option<usize> {
        let n = route.endpoints.len();
        let a = fastrand::usize(..n);
        let b = fastrand::usize(..n - 1);
        let b = if b >= a { b + 1 } else { b };
        let busy = |i: usize| {
            let endpoint = &route.endpoints[i];
            let ejected = self.is_ejected(endpoint.addr, now);
            (!ejected).then(|| endpoint.stats.in_flight.load(Ordering::Relaxed))
        };
        match (busy(a), busy(b)) {
            (Some(x), Some(y)) => Some(if y < x { b } else { a }),
            (Some(_), None) => Some(a),
            (None, Some(_)) => Some(b),
            (None, None) => None,
        }
    }

    /// Counts a request or connection on `endpoint` of `route` while the
    /// guard lives, when the Route's policy compares them (else nothing,
    /// at no cost).
    pub fn outstanding(route: &Route, endpoint: &RouteEndpoint) -> Option<Outstanding> {
        (route.policy == Policy::LeastRequest).then(|| {
            endpoint.stats.in_flight.fetch_add(1, Ordering::Relaxed);
            Outstanding(endpoint.stats.clone())
        })
    }

    /// `endpoint` accepted a connection from `client`: clear its ejection
    /// and (re)pin the client when the Route has affinity.
    pub fn connected(&self, route: &Route, client: IpAddr, endpoint: SocketAddr, now: Instant) {
        if self.ejected_count.load(Ordering::Relaxed) > 0
            && self.ejected.remove(&endpoint).is_some()
        {
            self.ejected_count.fetch_sub(1, Ordering::Relaxed);
        }
        let Some(timeout) = route.affinity else { return };
        let pin = Pin { endpoint, seen: now, expires: now + timeout };
        let key = pin_key(route, client);
        if self.pins.len() >= MAX_PINS && !self.pins.contains_key(&key) {
            let due = self.swept.try_lock().is_some_and(|mut last| {
                let due = last.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1));
                if due {
                    *last = Some(now);
                }
                due
            });
            if due {
                // By the timeout in force when pinned: the sweep has no
                // Route at hand. A timeout changed since only moves when a
                // full table frees a pin, never whether a client stays pinned.
                self.pins.retain(|_, p| p.expires > now);
            }
            if self.pins.len() >= MAX_PINS {
                return;
            }
        }
        self.pins.insert(key, pin);
    }

    /// A connect to `endpoint` was refused or timed out: skip it for a
    /// while, longer each time it fails in a row. True when this failure
    /// starts an ejection (the endpoint was in use until now).
    pub fn failed(&self, endpoint: SocketAddr, now: Instant) -> bool {
        let starts = !self.is_ejected(endpoint, now);
        let mut entry = self.ejected.entry(endpoint).or_insert_with(|| {
            self.ejected_count.fetch_add(1, Ordering::Relaxed);
            Ejection { until: now, failures: 0 }
        });
        let failures = entry.failures.saturating_add(1);
        let backoff = FIRST_EJECTION.saturating_mul(1 << (failures - 1).min(6)).min(MAX_EJECTION);
        *entry = Ejection { until: now + backoff, failures };
        starts
    }

    /// Forgets ejections of endpoints no Route has any more (pods come and
    /// go), so the map stays small and the nothing-ejected fast path returns.
    pub fn retain_endpoints(&self, snapshot: &Snapshot) {
        if self.ejected_count.load(Ordering::Relaxed) == 0 {
            return;
        }
        let live: HashSet<SocketAddr> = snapshot
            .frontends()
            .iter()
            .filter_map(|f| snapshot.route(f))
            .flat_map(|r| r.endpoints.iter().map(|e| e.addr))
            .collect();
        self.ejected.retain(|addr, _| live.contains(addr));
        self.ejected_count.store(self.ejected.len(), Ordering::Relaxed);
    }

    /// True while `endpoint` is skipped after a failure.
    pub fn is_ejected(&self, endpoint: SocketAddr, now: Instant) -> bool {
        self.ejected_count.load(Ordering::Relaxed) > 0
            && self.ejected.get(&endpoint).is_some_and(|e| e.until > now)
    }

    /// How many client pins are held.
    pub fn pins(&self) -> usize {
        self.pins.len()
    }
}

// === impl Outstanding ===

impl Drop for Outstanding {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

fn pin_key(route: &Route, client: IpAddr) -> PinKey {
    PinKey { service: route.service.clone(), port: route.port.clone(), client }
}

#[cfg(test)]
mod tests;
