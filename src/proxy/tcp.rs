//! TCP forwarding: connect (off the accept loop, next endpoint on failure),
//! then copy both ways with half-close and resets carried across.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use socket2::SockRef;
use tokio::io::copy_bidirectional;
use tokio::net::TcpStream;
use tracing::{debug, warn};

use super::Context;
use crate::table::Route;

/// Serves one accepted connection to the end. `route` is `None` when the
/// frontend vanished between accept and lookup: the client is reset.
pub async fn serve(
    mut client: TcpStream,
    peer: SocketAddr,
    route: Option<Arc<Route>>,
    ctx: Arc<Context>,
) {
    let _live = ctx.tracker.enter();
    let Some(route) = route else { return reset(&client) };
    let Some((mut endpoint, addr)) = connect(&ctx, &route, peer).await else {
        debug!(client = %peer, service = %route.service, port = %route.port, "no endpoint: reset");
        return reset(&client);
    };
    let _ = client.set_nodelay(true);
    let _ = endpoint.set_nodelay(true);
    match copy_bidirectional(&mut client, &mut endpoint).await {
        Ok((up, down)) => {
            debug!(client = %peer, endpoint = %addr, up, down, "closed");
        }
        Err(e) => {
            // One side reset (or failed): reset the other so it learns the
            // same, instead of seeing an orderly FIN.
            debug!(client = %peer, endpoint = %addr, error = %e, "reset");
            reset(&client);
            reset(&endpoint);
        }
    }
}

/// Tries the Route's plan in order, each attempt bounded by the connect
/// timeout. Nothing has been sent to the client yet, so any endpoint will do.
async fn connect(
    ctx: &Context,
    route: &Route,
    peer: SocketAddr,
) -> Option<(TcpStream, SocketAddr)> {
    let plan = ctx.balancer.plan(route, peer.ip(), Instant::now());
    for addr in plan.iter() {
        match attempt(addr, ctx.connect_timeout).await {
            Ok(stream) => {
                ctx.balancer.connected(route, peer.ip(), addr, Instant::now());
                return Some((stream, addr));
            }
            Err(e) => {
                warn!(service = %route.service, port = %route.port, endpoint = %addr, error = %e, "connect failed");
                ctx.balancer.failed(addr, Instant::now());
            }
        }
    }
    None
}

async fn attempt(addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")),
    }
}

/// Closes with RST rather than FIN (SO_LINGER 0), once the socket is dropped.
fn reset(stream: &TcpStream) {
    let _ = SockRef::from(stream).set_linger(Some(Duration::ZERO));
}
