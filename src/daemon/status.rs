//! The two lines that tell an operator where the daemon stands: ready
//! (what it serves and where its admin endpoints are) and stopped (what
//! became of the live connections), so a run never ends in silence.
//!
//! Their target is this module's path, which `demo` lets through its
//! otherwise warn-only log.

use std::net::SocketAddr;

use tracing::info;

use crate::table::{Mode, Snapshot};

/// What became of the connections live when the daemon stopped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Ending {
    /// Ended by themselves during the drain.
    pub drained: usize,
    /// Reset at the drain timeout.
    pub reset: usize,
    /// Closed at once by a second SIGTERM or SIGINT.
    pub cut: usize,
}

// === impl Ending ===

impl Ending {
    /// A drain ended at once by a signal: of `live` connections at its
    /// start, `left` are closed now, the others ended by themselves.
    pub(super) fn cut(live: usize, left: usize) -> Self {
        Self { drained: live.saturating_sub(left), reset: 0, cut: left }
    }
}

/// Logs the ready line: the first Snapshot is published and its listeners
/// spawned.
pub(super) fn ready(snapshot: &Snapshot, healthz: SocketAddr, metrics: SocketAddr) {
    let (mut tcp, mut udp, mut http) = (0, 0, 0);
    for route in snapshot.routes() {
        match route.mode {
            Mode::Tcp => tcp += 1,
            Mode::Udp => udp += 1,
            Mode::Http(_) => http += 1,
        }
    }
    let services = snapshot.services.iter().filter(|s| s.skip.is_none()).count();
    info!(
        services,
        frontends = tcp + udp + http,
        tcp,
        udp,
        http,
        healthz = %format_args!("http://{healthz}/healthz"),
        metrics = %format_args!("http://{metrics}/metrics"),
        generation = snapshot.generation,
        "ready: serving {} on {} ({tcp} TCP, {udp} UDP, {http} HTTP)",
        counted(services, "Service"),
        counted(tcp + udp + http, "frontend"),
    );
}

/// Logs the stopped line: nothing is served any more.
pub(super) fn stopped(ending: Ending) {
    let Ending { drained, reset, cut } = ending;
    // The signal that cuts a drain short is logged just before; a count of
    // connections it closed is only news when there were some.
    let at_once = if cut > 0 { format!(", {cut} closed at once") } else { String::new() };
    info!(
        drained,
        reset,
        cut,
        "stopped: {} drained, {reset} reset at the drain timeout{at_once}",
        counted(drained, "connection"),
    );
}

/// `1 Service`, `2 Services`.
fn counted(n: usize, word: &str) -> String {
    if n == 1 { format!("1 {word}") } else { format!("{n} {word}s") }
}
