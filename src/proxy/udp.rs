//! UDP forwarding: one task per frontend reads every datagram into one
//! 64 KiB buffer and hands it to the client's flow, opened at its first
//! datagram with the endpoint the balancer picks (round robin per Service
//! port, ClientIP affinity honoured). Nothing waits on the way: a full
//! socket buffer drops the datagram and counts it, so the frontend's
//! socket buffer and each endpoint's are the only queues.
//!
//! A flow whose endpoint left the frontend's Route, or answered ICMP port
//! unreachable, is replaced at the client's next datagram by a flow to
//! another endpoint. A frontend's task ending (its Service removed, or
//! SIGTERM) drops its table and so ends every flow.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use rustc_hash::FxHashMap;
use tokio::net::UdpSocket;
use tracing::debug;

use super::Side;
use crate::context::Context;
use crate::metrics::{Direction, Dropped};
use crate::table::{Frontend, Route};

mod flow;
pub mod packet;

use flow::{Flow, Slot};
use packet::Received;

/// A frontend's flows, by client address and, on a wildcard-bound
/// frontend, the address the client sent to (each its own frontend).
type Flows = Mutex<FxHashMap<FlowKey, Flow>>;

/// A client address, and the local address it sent to when known.
type FlowKey = (SocketAddr, Option<IpAddr>);

/// One frontend's socket and flows.
struct Relay {
    socket: Arc<UdpSocket>,
    frontend: Frontend,
    ctx: Arc<Context>,
    flows: Arc<Flows>,
}

/// Datagrams read per wake-up before the task yields: a flooded frontend
/// does not starve the flows sharing its worker thread.
const BATCH: usize = 64;

/// Serves `socket`, bound on `frontend`, until the task is dropped.
pub async fn serve(socket: UdpSocket, frontend: Frontend, ctx: Arc<Context>) {
    let socket = Arc::new(socket);
    let relay = Relay { socket: socket.clone(), frontend, ctx, flows: Arc::default() };
    let mut control = packet::control_buffer();
    loop {
        if let Err(e) = socket.readable().await {
            debug!(%frontend, error = %e, "frontend socket failed");
            return;
        }
        let failed = flow::BUFFER_OF_THREAD.with_borrow_mut(|buf| relay.drain(buf, &mut control));
        match failed {
            // Out of memory or buffers: pause instead of spinning.
            Some(e) if super::fault(Side::Client, &e) == Side::Proxy => {
                debug!(%frontend, error = %e, "receive failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Some(e) => debug!(%frontend, error = %e, "receive failed"),
            None => tokio::task::yield_now().await,
        }
    }
}

// === impl Relay ===

impl Relay {
    /// Forwards up to [`BATCH`] waiting datagrams, read into the worker
    /// thread's buffer; the error that stopped it, if any.
    fn drain(&self, buf: &mut [u8], control: &mut [u8]) -> Option<io::Error> {
        let wildcard = self.frontend.addr.ip().is_unspecified();
        for _ in 0..BATCH {
            let received = if wildcard {
                packet::try_recv(&self.socket, buf, control)
            } else {
                let from = self.socket.try_recv_from(buf);
                from.map(|(len, client)| Received { len, client, local: None })
            };
            match received {
                Ok(r) => self.forward(&buf[..r.len], r.client, r.local),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) => return Some(e),
            }
        }
        None
    }

    /// One datagram from `client` (sent to `local`), to its flow's endpoint.
    fn forward(&self, data: &[u8], client: SocketAddr, local: Option<IpAddr>) {
        let table = self.ctx.table.load();
        let Some(route) = table.route(&self.frontend) else { return };
        let Some(udp) = route.stats.udp() else { return };
        route.stats.received.inc_by(data.len() as u64);
        udp.datagrams(Direction::Received).inc();
        if route.source_ranges.as_ref().is_some_and(|r| !r.allows(client.ip())) {
            udp.dropped(Dropped::SourceRange).inc();
            return;
        }
        let key = (client, local);
        let mut flows = self.flows.lock();
        if let Some(flow) = flows.get(&key) {
            if !flow.serves(route) {
                flows.remove(&key);
            } else {
                match flow.send(data) {
                    Ok(()) => return,
                    Err(flow::Error::Unreachable) => {
                        flow.link.unreachable(&self.ctx);
                        flows.remove(&key);
                    }
                    Err(flow::Error::Send(e)) => {
                        debug!(%client, error = %e, "datagram not sent");
                        udp.dropped(Dropped::SendFailed).inc();
                        return;
                    }
                }
            }
        }
        match self.open(route, client, local) {
            Ok(flow) => {
                if let Err(e) = flow.send(data) {
                    debug!(%client, error = %e, "first datagram not sent");
                    let reason = match e {
                        flow::Error::Unreachable => Dropped::EndpointUnreachable,
                        flow::Error::Send(_) => Dropped::SendFailed,
                    };
                    udp.dropped(reason).inc();
                }
                flows.insert(key, flow);
            }
            Err(reason) => udp.dropped(reason).inc(),
        }
    }

    /// A new flow for `client`, to the endpoint the balancer picks.
    fn open(
        &self,
        route: &Arc<Route>,
        client: SocketAddr,
        local: Option<IpAddr>,
    ) -> Result<Flow, Dropped> {
        if route.endpoints.is_empty() {
            return Err(Dropped::NoEndpoints);
        }
        let slot = Slot::take(&self.ctx, route).ok_or(Dropped::FlowTableFull)?;
        let plan = self.ctx.balancer.plan(route, client.ip(), Instant::now());
        let i = plan.iter().next().ok_or(Dropped::NoEndpoints)?;
        let endpoint = route.endpoints[i].clone();
        let flows = Arc::downgrade(&self.flows);
        Flow::open(slot, endpoint, (client, local), &self.socket, flows).map_err(|e: io::Error| {
            debug!(%client, error = %e, "cannot open a flow");
            Dropped::SendFailed
        })
    }
}
