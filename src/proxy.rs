//! Stage 7, proxy: one accepted connection, served to its end.
//!
//! Input: an accepted client connection and the frontend it came in on.
//! [`serve`] is the one entry point: it reads the frontend's Route from
//! the published Snapshot once and dispatches on the Route's mode (TCP:
//! bytes copied both ways until both peers are done), or answers a health
//! check port; HTTP: each request to an endpoint of its own. UDP frontends
//! are served by [`udp::serve`], flow by flow.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustix::io::Errno;
use tokio::net::TcpStream;

use crate::admission::Slot;
use crate::context::Context;
use crate::metrics::{PortStats, Reject};
use crate::table::{Frontend, Mode};

mod close_wait;
pub mod connect;
pub mod copy;
pub mod http;
mod probe;
mod spare;
pub mod splice;
pub mod tcp;
pub mod udp;

/// An accepted client connection.
#[derive(Debug)]
pub struct Conn {
    pub stream: TcpStream,
    /// The client's address.
    pub peer: SocketAddr,
    /// The address it was accepted on.
    pub frontend: Frontend,
    /// Its place under `--max-connections`, given back when the
    /// connection's task ends and drops it.
    pub slot: Slot,
}

/// Whose fault a forwarding failure was: it decides what is logged at
/// which level, whether an endpoint is ejected, and (in HTTP) the status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The client: it reset, or vanished.
    Client,
    /// The endpoint: it refused, timed out, reset or was unreachable, or
    /// the Route has none to try.
    Endpoint,
    /// This proxy ran short of something (descriptors, ports, memory).
    Proxy,
}

/// Why a connection was not forwarded to its end.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Route has no endpoint to try.
    #[error("no usable endpoint")]
    NoEndpoints,
    /// A socket operation failed on `side`.
    #[error("{side}: {source}")]
    Io { side: Side, source: io::Error },
    /// This proxy could not open or connect a socket to an endpoint for
    /// want of descriptors, ports or memory: no endpoint is to blame, and
    /// trying the next one would fail alike.
    #[error("proxy short of resources: {0}")]
    LocalResources(io::Error),
    /// One side had closed, and `side` sent nothing for `timeout`.
    #[error("{side} silent for {timeout:?} after the other side closed")]
    CloseWait { side: Side, timeout: Duration },
}

/// Serves `conn`: the frontend's Route is read once, here, and the
/// connection served on a task of its own keeps it whatever Snapshot is
/// published later. A frontend that vanished between accept and now resets
/// the client at once.
pub fn serve(conn: Conn, ctx: &Arc<Context>) {
    let table = ctx.table.load();
    if let Some(route) = table.route(&conn.frontend) {
        if route.source_ranges.as_ref().is_some_and(|r| !r.allows(conn.peer.ip())) {
            // kube-proxy's firewall chain drops these; a reset tells the
            // client at once instead of after its connect timeout.
            route.stats.rejected(Reject::SourceRange).inc();
            return tcp::reset(&conn.stream);
        }
        let route = route.clone();
        // Counted from here, so a connection accepted just before SIGTERM
        // is waited for.
        let live = ctx.tracker.enter();
        match route.mode {
            Mode::Tcp => drop(tokio::spawn(tcp::serve(conn, route, ctx.clone(), live))),
            Mode::Http(_) => {
                drop(tokio::spawn(http::serve(conn, route.stats.clone(), ctx.clone(), live)))
            }
            // A UDP frontend has no TCP listener: never reached.
            Mode::Udp => tcp::reset(&conn.stream),
        }
    } else if table.health_check(&conn.frontend).is_some() {
        // Not a proxied connection: the drain does not wait for it.
        tokio::spawn(probe::serve(conn, ctx.clone()));
    } else {
        tcp::reset(&conn.stream);
    }
}

/// Keepalive probes after 60 s of silence (the kernel's interval and count
/// after), on both sockets of a connection: a peer that vanished without
/// FIN or RST does not hold the connection forever. Client sockets inherit
/// it from their listener, endpoint sockets get it before they connect.
pub(crate) fn keepalive() -> socket2::TcpKeepalive {
    socket2::TcpKeepalive::new().with_time(Duration::from_secs(60))
}

// === impl Side ===

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Endpoint => "endpoint",
            Side::Proxy => "proxy",
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whose fault a failed read or write was: `peer`'s, unless this proxy ran
/// short of memory or descriptors.
fn fault(peer: Side, e: &io::Error) -> Side {
    if is_shortage(e) { Side::Proxy } else { peer }
}

/// Whether `e` says this process or host ran out of something of its own:
/// descriptors (EMFILE, ENFILE), socket buffers or memory (ENOBUFS,
/// ENOMEM), local ports (EADDRNOTAVAIL on a connect).
pub(crate) fn is_shortage(e: &io::Error) -> bool {
    const SHORT: [Errno; 5] =
        [Errno::NOMEM, Errno::NOBUFS, Errno::MFILE, Errno::NFILE, Errno::ADDRNOTAVAIL];
    Errno::from_io_error(e).is_some_and(|errno| SHORT.contains(&errno))
}

// === impl Error ===

impl Error {
    /// Whose fault it was.
    pub fn side(&self) -> Side {
        match self {
            Error::NoEndpoints => Side::Endpoint,
            Error::Io { side, .. } => *side,
            Error::LocalResources(_) => Side::Proxy,
            Error::CloseWait { side, .. } => *side,
        }
    }
}

/// Counts a connection in `svcproxy_connections_active` until dropped.
pub(crate) struct Active<'a>(&'a PortStats);

impl<'a> Active<'a> {
    pub(crate) fn enter(stats: &'a PortStats) -> Self {
        stats.active.inc();
        Self(stats)
    }
}

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.active.dec();
    }
}
