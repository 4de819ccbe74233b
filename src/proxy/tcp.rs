//! TCP forwarding: connect (off the accept loop, next endpoint on failure),
//! then copy both ways with half-close and resets carried across.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use socket2::SockRef;
use tokio::net::TcpStream;
use tracing::{debug, warn};

use super::{Context, copy, dial};
use crate::metrics::{ConnectError, PortStats, Reject};
use crate::shutdown::Live;
use crate::table::{Route, Target};

/// Serves one accepted connection to the end. `route` is `None` when the
/// frontend vanished between accept and lookup: the client is reset. `live`
/// counts the connection for the drain until it ends, or resets it when the
/// drain times out.
pub async fn serve(
    mut client: TcpStream,
    peer: SocketAddr,
    route: Option<Arc<Route>>,
    ctx: Arc<Context>,
    live: Live,
) {
    let Some(route) = route else { return reset(&client) };
    let stats = &route.stats;
    stats.connections.inc();
    let _active = Active::enter(stats);
    let started = Instant::now();
    let Some((mut endpoint, target)) = connect(&ctx, &route, peer).await else {
        return reset(&client);
    };
    let (received, sent) = (&stats.received, &stats.sent);
    let copy = copy::both_ways(&mut client, &mut endpoint, received, sent, ctx.splice);
    let Some((totals, result)) = live.unless_aborted(copy).await else {
        debug!(client = %peer, endpoint = %target.addr, "drain timeout: reset");
        reset(&client);
        reset(&endpoint);
        return;
    };
    stats.duration.observe(started.elapsed().as_secs_f64());
    match result {
        Ok(()) => debug!(client = %peer, endpoint = %target.addr, ?totals, "closed"),
        Err(e) => {
            // One side reset (or failed): reset the other so it learns the
            // same, instead of seeing an orderly FIN.
            debug!(client = %peer, endpoint = %target.addr, error = %e, "reset");
            reset(&client);
            reset(&endpoint);
        }
    }
}

/// Tries the Route's plan in order, each attempt bounded by the connect
/// timeout. Nothing has been sent to the client yet, so any endpoint will do.
async fn connect<'r>(
    ctx: &Context,
    route: &'r Route,
    peer: SocketAddr,
) -> Option<(TcpStream, &'r Target)> {
    let plan = ctx.balancer.plan(route, peer.ip(), Instant::now());
    if plan.is_empty() {
        debug!(client = %peer, service = %route.service, port = %route.port, "no usable endpoint: reset");
        route.stats.rejected(Reject::NoEndpoints).inc();
        return None;
    }
    for target in plan.iter().map(|i| &route.targets[i]) {
        match dial::attempt(target.addr, ctx.connect_timeout).await {
            Ok(stream) => {
                target.stats.connections.inc();
                ctx.balancer.connected(route, peer.ip(), target.addr, Instant::now());
                return Some((stream, target));
            }
            Err(e) => {
                target.stats.errors(error_reason(&e)).inc();
                // Our own shortage (descriptors, ports, buffers) is not the
                // endpoint's fault: it is not ejected for it.
                let ejected =
                    is_endpoint_fault(&e) && ctx.balancer.failed(target.addr, Instant::now());
                let (service, port, endpoint) = (&route.service, &route.port, target.addr);
                if ejected || !is_endpoint_fault(&e) {
                    warn!(%service, %port, %endpoint, error = %e, "connect failed");
                } else {
                    debug!(%service, %port, %endpoint, error = %e, "connect failed again");
                }
            }
        }
    }
    route.stats.rejected(Reject::ConnectFailed).inc();
    None
}

fn error_reason(e: &io::Error) -> ConnectError {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => ConnectError::Refused,
        io::ErrorKind::TimedOut => ConnectError::Timeout,
        _ => ConnectError::Other,
    }
}

/// Whether a failed connect says the endpoint is down, rather than this
/// proxy being short of something.
fn is_endpoint_fault(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused
            | TimedOut
            | HostUnreachable
            | NetworkUnreachable
            | ConnectionReset
            | ConnectionAborted
    )
}

/// Closes with RST rather than FIN (SO_LINGER 0), once the socket is dropped.
fn reset(stream: &TcpStream) {
    let _ = SockRef::from(stream).set_linger(Some(Duration::ZERO));
}

/// Counts a connection in `svcproxy_connections_active` until dropped.
struct Active<'a>(&'a PortStats);

impl<'a> Active<'a> {
    fn enter(stats: &'a PortStats) -> Self {
        stats.active.inc();
        Self(stats)
    }
}

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.active.dec();
    }
}
