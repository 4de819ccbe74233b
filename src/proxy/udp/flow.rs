//! One flow: a client address on a frontend, its endpoint, and the
//! connected socket to that endpoint. Its task relays the endpoint's
//! replies to the client from the frontend's socket, and ends the flow
//! after `--udp-timeout` of silence, on ICMP port unreachable, or once the
//! Service's `svcproxy.io/udp-responses` replies per datagram came back.

use std::cell::RefCell;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::task::AbortHandle;
use tracing::debug;

use super::{Flows, packet};
use crate::context::Context;
use crate::metrics::{ConnectError, Direction, Dropped};
use crate::table::{Route, RouteEndpoint};

/// Room for the largest datagram (65,507 bytes of IPv4 payload).
pub const BUFFER: usize = 64 * 1024;

thread_local! {
    /// Datagrams both ways are read into the worker thread's buffer, never
    /// held across an await: not one per flow or per frontend (10,000 flows
    /// do not hold 640 MiB).
    pub static BUFFER_OF_THREAD: RefCell<Box<[u8]>> =
        RefCell::new(vec![0; BUFFER].into_boxed_slice());
}

/// A flow in the table; dropping it ends its task and closes its socket.
#[derive(Debug)]
pub struct Flow {
    pub link: Arc<Link>,
    task: AbortHandle,
}

/// What a flow's two directions share.
#[derive(Debug)]
pub struct Link {
    /// Connected to the endpoint: only its replies are read.
    socket: UdpSocket,
    pub endpoint: RouteEndpoint,
    pub route: Arc<Route>,
    client: SocketAddr,
    /// The address the client sent to (wildcard frontends), replies' source.
    local: Option<IpAddr>,
    frontend: Arc<UdpSocket>,
    opened: Instant,
    /// Milliseconds from `opened` to the last datagram either way.
    last: AtomicU64,
    sent: AtomicU64,
    replies: AtomicU64,
    slot: Slot,
}

/// A place in the flow table's bound, and the port's active-flows gauge.
#[derive(Debug)]
pub struct Slot {
    ctx: Arc<Context>,
    route: Arc<Route>,
}

/// Why a flow could not take a datagram.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// ICMP port unreachable came back: the endpoint is not listening.
    #[error("endpoint unreachable")]
    Unreachable,
    /// The socket's buffer is full, or the send failed otherwise.
    #[error("send failed: {0}")]
    Send(io::Error),
}

/// Why a flow's task ended.
#[derive(Debug)]
enum End {
    Idle,
    Answered,
    Unreachable,
    Failed(io::Error),
}

// === impl Slot ===

impl Slot {
    /// A place for one more flow, unless the table is full.
    pub fn take(ctx: &Arc<Context>, route: &Arc<Route>) -> Option<Self> {
        let taken = ctx.udp_flows.fetch_add(1, Ordering::Relaxed);
        if taken >= ctx.udp.max_flows {
            ctx.udp_flows.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        if let Some(udp) = route.stats.udp() {
            udp.flows.inc();
        }
        Some(Self { ctx: ctx.clone(), route: route.clone() })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.ctx.udp_flows.fetch_sub(1, Ordering::Relaxed);
        if let Some(udp) = self.route.stats.udp() {
            udp.flows.dec();
        }
    }
}

// === impl Flow ===

impl Flow {
    /// Opens a flow from `client` to `endpoint` and starts relaying its
    /// replies.
    pub fn open(
        slot: Slot,
        endpoint: RouteEndpoint,
        client: (SocketAddr, Option<IpAddr>),
        frontend: &Arc<UdpSocket>,
        flows: Weak<Flows>,
    ) -> io::Result<Self> {
        let socket = connect(endpoint.addr)?;
        endpoint.stats.connections.inc();
        let link = Arc::new(Link {
            socket,
            route: slot.route.clone(),
            endpoint,
            client: client.0,
            local: client.1,
            frontend: frontend.clone(),
            opened: Instant::now(),
            last: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            replies: AtomicU64::new(0),
            slot,
        });
        let task = tokio::spawn(run(link.clone(), flows)).abort_handle();
        Ok(Self { link, task })
    }

    /// Forwards one datagram of the client to the endpoint, without waiting.
    pub fn send(&self, data: &[u8]) -> Result<(), Error> {
        // At once, as the replies are (see `packet::try_send`).
        match socket2::SockRef::from(&self.link.socket).send(data) {
            Ok(_) => {
                self.link.sent.fetch_add(1, Ordering::Relaxed);
                self.link.touch();
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Err(Error::Unreachable),
            Err(e) => Err(Error::Send(e)),
        }
    }

    /// True while `route` (the frontend's current Route) still has the
    /// flow's endpoint.
    pub fn serves(&self, route: &Arc<Route>) -> bool {
        Arc::ptr_eq(&self.link.route, route)
            || route.endpoints.iter().any(|e| e.addr == self.link.endpoint.addr)
    }
}

impl Drop for Flow {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// === impl Link ===

impl Link {
    fn touch(&self) {
        let ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(ms, Ordering::Relaxed);
    }

    fn idle(&self) -> Duration {
        let last = self.opened + Duration::from_millis(self.last.load(Ordering::Relaxed));
        last.elapsed()
    }

    /// Relays replies until the flow ends, and says why.
    async fn relay(&self, ctx: &Context) -> End {
        let timeout = ctx.udp.timeout;
        // One timer for the flow's life, moved only when it fires: traffic
        // stamps `last` and never touches the timer wheel.
        let expiry = tokio::time::sleep(timeout);
        tokio::pin!(expiry);
        loop {
            tokio::select! {
                ready = self.socket.readable() => {
                    if let Err(e) = ready {
                        return End::Failed(e);
                    }
                    if let Some(end) = BUFFER_OF_THREAD.with_borrow_mut(|buf| self.drain(buf, ctx)) {
                        return end;
                    }
                }
                () = &mut expiry => {
                    let idle = self.idle();
                    if idle >= timeout {
                        return End::Idle;
                    }
                    let deadline = tokio::time::Instant::now() + (timeout - idle);
                    expiry.as_mut().reset(deadline);
                }
            }
        }
    }

    /// Every reply waiting on the socket, to the client.
    fn drain(&self, buf: &mut [u8], ctx: &Context) -> Option<End> {
        loop {
            match self.socket.try_recv(buf) {
                Ok(n) => {
                    self.reply(&buf[..n], ctx);
                    if self.answered() {
                        return Some(End::Answered);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    return Some(End::Unreachable);
                }
                Err(e) => return Some(End::Failed(e)),
            }
        }
    }

    fn reply(&self, data: &[u8], ctx: &Context) {
        self.touch();
        if self.replies.fetch_add(1, Ordering::Relaxed) == 0 {
            // The endpoint answers: pin the client (affinity), end an ejection.
            let client = self.client.ip();
            ctx.balancer.connected(&self.route, client, self.endpoint.addr, Instant::now());
        }
        let stats = &self.route.stats;
        let Some(udp) = stats.udp() else { return };
        match packet::try_send(&self.frontend, data, self.client, self.local) {
            Ok(n) => {
                stats.sent.inc_by(n as u64);
                udp.datagrams(Direction::Sent).inc();
            }
            Err(e) => {
                debug!(client = %self.client, error = %e, "reply not sent");
                udp.dropped(Dropped::SendFailed).inc();
            }
        }
    }

    /// True once the Service's replies per datagram came back.
    fn answered(&self) -> bool {
        self.route.udp_responses.is_some_and(|n| {
            let sent = self.sent.load(Ordering::Relaxed);
            self.replies.load(Ordering::Relaxed) >= sent.saturating_mul(u64::from(n))
        })
    }

    /// The endpoint is not listening: eject it as a refused TCP connect is.
    pub fn unreachable(&self, ctx: &Context) {
        ctx.balancer.failed(self.endpoint.addr, Instant::now());
        self.endpoint.stats.errors(ConnectError::Refused).inc();
        if let Some(udp) = self.route.stats.udp() {
            udp.dropped(Dropped::EndpointUnreachable).inc();
        }
    }
}

/// A socket of the endpoint's family on an ephemeral port, connected to it.
fn connect(endpoint: SocketAddr) -> io::Result<UdpSocket> {
    let any: SocketAddr = match endpoint {
        SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = std::net::UdpSocket::bind(any)?;
    socket.connect(endpoint)?;
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket)
}

/// The flow's task: relays replies, then takes the flow out of its table.
async fn run(link: Arc<Link>, flows: Weak<Flows>) {
    let ctx = link.slot.ctx.clone();
    let end = link.relay(&ctx).await;
    match &end {
        End::Unreachable => link.unreachable(&ctx),
        End::Failed(e) => debug!(client = %link.client, error = %e, "flow failed"),
        End::Idle | End::Answered => {}
    }
    debug!(client = %link.client, endpoint = %link.endpoint.addr, ?end, "flow ended");
    if let Some(flows) = flows.upgrade() {
        let flow = {
            let mut table = flows.lock();
            let key = (link.client, link.local);
            let ours = table.get(&key).is_some_and(|f| Arc::ptr_eq(&f.link, &link));
            if ours { table.remove(&key) } else { None }
        };
        // Dropped out of the lock; it aborts this very task, which ends here.
        drop(flow);
    }
}
