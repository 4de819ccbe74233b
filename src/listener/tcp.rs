//! TCP frontends: the listening socket (SO_REUSEADDR, never SO_REUSEPORT;
//! IP_FREEBIND for a ClusterIP that is not local) and its accept loop.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Socket, Type};
use tokio::net::TcpListener;
use tracing::{debug, info, warn};

use super::{FIRST_RETRY, MAX_RETRY, bind_freebind, is_out_of_descriptors};
use crate::context::Context;
use crate::proxy::{self, Conn};
use crate::table::Frontend;

/// Pending connections the kernel queues per frontend.
const BACKLOG: i32 = 1024;

/// Binds `frontend`, retrying with backoff until it can, then accepts on
/// it until dropped.
pub(super) async fn run(frontend: Frontend, ctx: Arc<Context>) {
    let mut retry = FIRST_RETRY;
    loop {
        match bind(frontend.addr) {
            Ok(listener) => {
                info!(%frontend, "listening");
                return accept_loop(listener, frontend, ctx).await;
            }
            Err(e) => {
                warn!(%frontend, error = %e, retry_in = ?retry, "cannot bind frontend");
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(MAX_RETRY);
            }
        }
    }
}

/// A listening socket with SO_REUSEADDR (a restart must not wait for
/// TIME_WAIT), never SO_REUSEPORT (no other process may share the port).
/// An address that is not local (a ClusterIP without a local route) is bound
/// with IP_FREEBIND.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        // `[::]:port` must not also take the IPv4 port.
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    bind_freebind(&socket, addr)?;
    // Accepted sockets inherit these: set once here, not per connection.
    socket.set_tcp_keepalive(&proxy::keepalive())?;
    socket.set_tcp_nodelay(true)?;
    socket.listen(BACKLOG)?;
    TcpListener::from_std(socket.into())
}

/// Accepts while `--max-connections` leaves room: at the bound, new
/// clients wait in the kernel's backlog until a connection ends.
async fn accept_loop(listener: TcpListener, frontend: Frontend, ctx: Arc<Context>) {
    let mut backoff = Duration::from_millis(5);
    loop {
        ctx.admission.room().await;
        match listener.accept().await {
            Ok((stream, peer)) => {
                backoff = Duration::from_millis(5);
                let slot = ctx.admission.enter().await;
                proxy::serve(Conn { stream, peer, frontend, slot }, &ctx);
            }
            Err(e) => {
                // Out of descriptors or buffers: pause instead of spinning.
                if is_out_of_descriptors(&e) {
                    warn!(%frontend, error = %e, pause = ?backoff, "out of file descriptors; pausing accept");
                    ctx.metrics.accept_paused.descriptors.pause_for(backoff);
                } else {
                    debug!(%frontend, error = %e, pause = ?backoff, "accept failed");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}
