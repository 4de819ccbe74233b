//! One connect attempt to an endpoint, bounded by the connect timeout.
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
use std::time::Duration;

use rustix::io::Errno;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpStream;

/// A connected stream to `addr`, or why not: refused, `TimedOut` after
/// `timeout`, or any other connect error.
pub async fn attempt(addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
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
