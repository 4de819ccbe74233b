//! Stage 4, listener: one bound socket per Frontend and its accept loop.
//!
//! Input: a Frontend. Output: accepted connections, each handed with its
//! Route to its own task, so a slow endpoint never stalls accepting. A
//! frontend that cannot be bound is retried with backoff; running out of
//! file descriptors backs off instead of spinning.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use socket2::{Domain, Socket, Type};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::admin;
use crate::proxy::{self, Context, tcp};
use crate::table::Frontend;

pub mod supervisor;

/// Pending connections the kernel queues per frontend.
const BACKLOG: i32 = 1024;
const FIRST_RETRY: Duration = Duration::from_millis(250);
const MAX_RETRY: Duration = Duration::from_secs(30);

/// One frontend's accept task; dropping it closes the socket (live
/// connections run in their own tasks and are not touched).
#[derive(Debug)]
pub struct Listener {
    task: JoinHandle<()>,
}

/// Set once the first ClusterIP had to be bound with IP_FREEBIND, so the
/// hint about the local route is logged once per process.
static FREEBIND_HINTED: AtomicBool = AtomicBool::new(false);

// === impl Listener ===

impl Listener {
    /// Binds `frontend` (retrying in the background until it can) and
    /// serves it.
    pub fn spawn(frontend: Frontend, ctx: Arc<Context>) -> Self {
        Self { task: tokio::spawn(run(frontend, ctx)) }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(frontend: Frontend, ctx: Arc<Context>) {
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
    if let Err(e) = socket.bind(&addr.into()) {
        if e.kind() != io::ErrorKind::AddrNotAvailable {
            return Err(e);
        }
        set_freebind(&socket, addr)?;
        socket.bind(&addr.into())?;
        if !FREEBIND_HINTED.swap(true, Ordering::Relaxed) {
            warn!(
                %addr,
                "address is not local, bound with IP_FREEBIND; to route Service IPs to this node: \
                 ip route add local <service-cidr> dev lo"
            );
        }
    }
    // Accepted sockets inherit these: set once here, not per connection.
    socket.set_tcp_keepalive(&proxy::keepalive())?;
    socket.set_tcp_nodelay(true)?;
    socket.listen(BACKLOG)?;
    TcpListener::from_std(socket.into())
}

fn set_freebind(socket: &Socket, addr: SocketAddr) -> io::Result<()> {
    if addr.is_ipv4() { socket.set_freebind_v4(true) } else { socket.set_freebind_v6(true) }
}

async fn accept_loop(listener: TcpListener, frontend: Frontend, ctx: Arc<Context>) {
    let mut backoff = Duration::from_millis(5);
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                backoff = Duration::from_millis(5);
                // The Route is read once, here; the connection keeps it
                // whatever Snapshot is published later.
                let table = ctx.table.load();
                let route = table.route(&frontend).cloned();
                if route.is_none() && table.check(&frontend).is_some() {
                    // Not a proxied connection: the drain does not wait for it.
                    tokio::spawn(admin::probe::serve(stream, frontend, ctx.clone()));
                    continue;
                }
                let live = ctx.tracker.enter();
                tokio::spawn(tcp::serve(stream, peer, route, ctx.clone(), live));
            }
            Err(e) => {
                // Out of descriptors or buffers: pause instead of spinning.
                if is_out_of_descriptors(&e) {
                    warn!(%frontend, error = %e, pause = ?backoff, "out of file descriptors; pausing accept");
                } else {
                    debug!(%frontend, error = %e, pause = ?backoff, "accept failed");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// EMFILE (24) or ENFILE (23): the process or the system is out of fds.
pub fn is_out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(23 | 24))
}

/// Raises the soft RLIMIT_NOFILE to the hard limit: each proxied connection
/// holds two descriptors.
pub fn raise_fd_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => debug!(limit, "file descriptor limit"),
        Err(e) => warn!(error = %e, "cannot raise the file descriptor limit"),
    }
}
