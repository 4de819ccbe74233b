//! TCP forwarding: connect (off the accept loop, next endpoint on failure),
//! then copy both ways with half-close and resets carried across.

use std::sync::Arc;
use std::time::{Duration, Instant};

use socket2::SockRef;
use tokio::net::TcpStream;
use tracing::debug;

use super::{Active, Conn, Error, connect, copy};
use crate::balance::Balancer;
use crate::context::Context;
use crate::metrics::Reject;
use crate::shutdown::Live;
use crate::table::Route;

/// Serves one accepted connection to the end. `live` counts the connection
/// for the drain until it ends, or resets it when the drain times out.
pub async fn serve(conn: Conn, route: Arc<Route>, ctx: Arc<Context>, live: Live) {
    let Conn { stream: mut client, peer, slot: _slot, .. } = conn;
    let stats = &route.stats;
    stats.connections.inc();
    let _active = Active::enter(stats);
    let started = Instant::now();
    let (mut to_endpoint, endpoint) = match connect::connect(&ctx, &route, peer).await {
        Ok(connected) => connected,
        Err(e) => {
            let (service, port) = (&route.service, &route.port);
            debug!(client = %peer, %service, %port, error = %e, "not forwarded: reset");
            return reset(&client);
        }
    };
    let _outstanding = Balancer::outstanding(&route, endpoint);
    let counters = (&stats.received, &stats.sent);
    let copy = copy::both_ways(&mut client, &mut to_endpoint, counters, ctx.splice, ctx.close_wait);
    let Some((totals, result)) = live.unless_aborted(copy).await else {
        debug!(client = %peer, endpoint = %endpoint.addr, "drain timeout: reset");
        reset(&client);
        reset(&to_endpoint);
        return;
    };
    stats.duration.observe(started.elapsed().as_secs_f64());
    match result {
        Ok(()) => debug!(client = %peer, endpoint = %endpoint.addr, ?totals, "closed"),
        Err(e) => {
            // One side reset (or failed, or stayed silent past the
            // close-wait timeout): reset the other so it learns the same,
            // instead of seeing an orderly FIN.
            if let Error::CloseWait { .. } = e {
                stats.rejected(Reject::CloseWaitTimeout).inc();
            }
            let side = e.side();
            debug!(client = %peer, endpoint = %endpoint.addr, %side, error = %e, "reset");
            reset(&client);
            reset(&to_endpoint);
        }
    }
}

/// Closes with RST rather than FIN (SO_LINGER 0), once the socket is dropped.
pub fn reset(stream: &TcpStream) {
    let _ = SockRef::from(stream).set_linger(Some(Duration::ZERO));
}
