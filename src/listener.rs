//! Stage 5, listener: one bound socket per Frontend and its accept loop.
//!
//! Input: a Frontend. Output: accepted connections, each handed to
//! [`proxy::serve`](crate::proxy::serve) at once, so a slow endpoint never
//! stalls accepting. A frontend that cannot be bound is retried with
//! backoff; running out of file descriptors backs off instead of spinning.
//! One file per protocol ([`tcp`], [`udp`]); [`supervisor`] keeps the set of
//! listeners in line with each Snapshot.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use socket2::Socket;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use crate::context::Context;
use crate::model::Protocol;
use crate::table::Frontend;

pub mod supervisor;
pub mod tcp;
pub mod udp;

/// The first wait before binding a frontend again...
const FIRST_RETRY: Duration = Duration::from_millis(250);
/// ...doubled up to this.
const MAX_RETRY: Duration = Duration::from_secs(30);

/// Set once the first ClusterIP had to be bound with IP_FREEBIND, so the
/// hint about the local route is logged once per process.
static FREEBIND_HINTED: AtomicBool = AtomicBool::new(false);

/// One frontend's accept task; dropping it closes the socket (live
/// connections run in their own tasks and are not touched).
#[derive(Debug)]
pub struct Listener {
    task: JoinHandle<()>,
}

// === impl Listener ===

impl Listener {
    /// Binds `frontend` (retrying in the background until it can) and
    /// serves it.
    pub fn spawn(frontend: Frontend, ctx: Arc<Context>) -> Self {
        let task = match frontend.protocol {
            Protocol::Udp => tokio::spawn(udp::run(frontend, ctx)),
            Protocol::Tcp | Protocol::Sctp => tokio::spawn(tcp::run(frontend, ctx)),
        };
        Self { task }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// EMFILE (24) or ENFILE (23): the process or the system is out of fds.
pub fn is_out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(23 | 24))
}

/// Binds `socket` on `addr`; an address that is not local (a ClusterIP
/// without a local route) is bound with IP_FREEBIND.
fn bind_freebind(socket: &Socket, addr: SocketAddr) -> io::Result<()> {
    let Err(e) = socket.bind(&addr.into()) else { return Ok(()) };
    if e.kind() != io::ErrorKind::AddrNotAvailable {
        return Err(e);
    }
    if addr.is_ipv4() {
        socket.set_freebind_v4(true)?
    } else {
        socket.set_freebind_v6(true)?
    }
    socket.bind(&addr.into())?;
    if !FREEBIND_HINTED.swap(true, Ordering::Relaxed) {
        warn!(
            %addr,
            "address is not local, bound with IP_FREEBIND; to route Service IPs to this node: \
             ip route add local <service-cidr> dev lo"
        );
    }
    Ok(())
}

/// Raises the soft RLIMIT_NOFILE to the hard limit: each proxied connection
/// holds two descriptors.
/// Returns the limit now in force, when it can be read.
pub fn raise_fd_limit() -> Option<u64> {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => {
            debug!(limit, "file descriptor limit");
            Some(limit)
        }
        Err(e) => {
            warn!(error = %e, "cannot raise the file descriptor limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE).ok().map(|(soft, _)| soft)
        }
    }
}
