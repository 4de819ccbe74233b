//! UDP frontends: one socket each, IP_FREEBIND for a ClusterIP that is not
//! local, and neither SO_REUSEADDR nor SO_REUSEPORT: on UDP either would let
//! another process bind the same address and take its datagrams. A
//! wildcard-bound socket (a NodePort on `0.0.0.0`) asks for each
//! datagram's destination, so replies leave from the address asked.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use socket2::{Domain, Socket, Type};
use tokio::net::UdpSocket;
use tracing::{info, warn};

use super::{FIRST_RETRY, MAX_RETRY, bind_freebind};
use crate::context::Context;
use crate::proxy::udp::{self, packet};
use crate::table::Frontend;

/// The receive buffer asked for each frontend socket.
const RECV_BUFFER: usize = 4 << 20;

/// Binds `frontend`, retrying with backoff until it can, then serves its
/// flows until dropped.
pub(super) async fn run(frontend: Frontend, ctx: Arc<Context>) {
    let mut retry = FIRST_RETRY;
    loop {
        match bind(frontend.addr) {
            Ok(socket) => {
                info!(%frontend, "listening");
                return udp::serve(socket, frontend, ctx).await;
            }
            Err(e) => {
                warn!(%frontend, error = %e, retry_in = ?retry, "cannot bind frontend");
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(MAX_RETRY);
            }
        }
    }
}

/// A UDP socket bound on `addr`, never shared with another process.
pub fn bind(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, None)?;
    if addr.is_ipv6() {
        // `[::]:port` must not also take the IPv4 port.
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    // Room for bursts (capped by net.core.rmem_max): a full buffer drops.
    let _ = socket.set_recv_buffer_size(RECV_BUFFER);
    if addr.ip().is_unspecified() {
        packet::enable(&socket, addr.is_ipv6())?;
    }
    bind_freebind(&socket, addr)?;
    UdpSocket::from_std(socket.into())
}
