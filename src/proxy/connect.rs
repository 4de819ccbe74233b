//! Connecting a new connection to an endpoint of its Route: the balancer's
//! plan tried in order, off the accept loop, each attempt bounded by the
//! connect timeout; an endpoint that fails is ejected and the next one
//! tried. Nothing has reached the client yet, so any endpoint will do.
//!
//! A non-blocking connect(2) to an endpoint on this host returns
//! EINPROGRESS with the handshake already done: the kernel runs the
//! peer's side inline and the SYN-ACK is processed as the call returns.
//! Asking the socket for its peer at once finds such a connection
//! established, which saves a turn of the event loop and the timer: a
//! timer that becomes the runtime's earliest deadline wakes its driver
//! through an eventfd write, one more syscall per connection. Only a
//! connect still in flight waits for writability, under the timeout.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rustix::io::Errno;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpStream;
use tracing::{debug, warn};

use super::{Error, Side};
use crate::context::Context;
use crate::metrics::{ConnectError, Reject};
use crate::table::{Route, RouteEndpoint};

/// A stream to the first endpoint of the plan for `client` that accepts,
/// and that endpoint. Each failure is counted; the Route's rejection too
/// when none is left. The error is the last attempt's, with whose fault it
/// was. This proxy's own shortage ends the plan at once: every other
/// endpoint would fail alike, and none of them is to blame.
pub async fn connect<'r>(
    ctx: &Context,
    route: &'r Route,
    client: SocketAddr,
) -> Result<(TcpStream, &'r RouteEndpoint), Error> {
    let plan = ctx.balancer.plan(route, client.ip(), Instant::now());
    if plan.is_empty() {
        route.stats.rejected(Reject::NoEndpoints).inc();
        return Err(Error::NoEndpoints);
    }
    let mut last = None;
    for endpoint in plan.iter().map(|i| &route.endpoints[i]) {
        match attempt(endpoint.addr, ctx.connect_timeout).await {
            Ok(stream) => {
                endpoint.stats.connections.inc();
                ctx.balancer.connected(route, client.ip(), endpoint.addr, Instant::now());
                return Ok((stream, endpoint));
            }
            Err(e) => match failed(ctx, route, endpoint, e) {
                short @ Error::LocalResources(_) => {
                    route.stats.rejected(Reject::LocalResources).inc();
                    return Err(short);
                }
                e => last = Some(e),
            },
        }
    }
    route.stats.rejected(Reject::ConnectFailed).inc();
    Err(last.unwrap_or(Error::NoEndpoints))
}

/// Counts and logs a failed attempt on `endpoint`, ejecting it when the
/// endpoint is at fault. Our own shortage (descriptors, ports, buffers) is
/// not the endpoint's fault: it is neither counted against the endpoint
/// nor ejects it, and comes back as [`Error::LocalResources`] for the
/// caller to count as its own.
pub(super) fn failed(
    ctx: &Context,
    route: &Route,
    endpoint: &RouteEndpoint,
    e: io::Error,
) -> Error {
    let (service, port, addr) = (&route.service, &route.port, endpoint.addr);
    if super::is_shortage(&e) {
        warn!(%service, %port, endpoint = %addr, error = %e, "cannot connect: this proxy is short of resources");
        return Error::LocalResources(e);
    }
    endpoint.stats.errors(reason(&e)).inc();
    let side = side(&e);
    let ejected = side == Side::Endpoint && ctx.balancer.failed(endpoint.addr, Instant::now());
    if ejected || side != Side::Endpoint {
        warn!(%service, %port, endpoint = %addr, %side, error = %e, "connect failed");
    } else {
        debug!(%service, %port, endpoint = %addr, error = %e, "connect failed again");
    }
    Error::Io { side, source: e }
}

fn reason(e: &io::Error) -> ConnectError {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => ConnectError::Refused,
        io::ErrorKind::TimedOut => ConnectError::Timeout,
        _ => ConnectError::Other,
    }
}

/// Whether a failed connect says the endpoint is down, or that this proxy
/// is short of something.
fn side(e: &io::Error) -> Side {
    use io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused | TimedOut | HostUnreachable | NetworkUnreachable | ConnectionReset
        | ConnectionAborted => Side::Endpoint,
        _ => Side::Proxy,
    }
}

/// A connected stream to `addr`, or why not: refused, `TimedOut` after
/// `timeout`, or any other connect error.
pub(crate) async fn attempt(addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.nonblocking().cloexec(),
        Some(Protocol::TCP),
    )?;
    // No Nagle delay, and keepalive; set before the connect, they cost the
    // same syscalls and the stream comes out ready.
    let _ = socket.set_tcp_nodelay(true);
    let _ = socket.set_tcp_keepalive(&super::keepalive());
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(Errno::INPROGRESS.raw_os_error()) => {}
        Err(e) => return Err(e),
    }
    let stream = TcpStream::from_std(socket.into())?;
    if stream.peer_addr().is_ok() {
        return Ok(stream);
    }
    match tokio::time::timeout(timeout, stream.writable()).await {
        Ok(ready) => ready?,
        Err(_) => return Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")),
    }
    // As tokio's own connect decides: writable, and no error pending.
    match stream.take_error()? {
        Some(e) => Err(e),
        None => Ok(stream),
    }
}
