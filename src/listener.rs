//! Stage 5, listener: one bound socket per Frontend and its accept loop.
//!
//! Input: a Frontend. Output: accepted connections, each handed to
//! [`proxy::serve`](crate::proxy::serve) at once, so a slow endpoint never
//! stalls accepting. A frontend that cannot be bound is retried with
//! backoff; running out of file descriptors backs off instead of spinning.
//! One file per protocol ([`tcp`]); [`supervisor`] keeps the set of
//! listeners in line with each Snapshot.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tracing::{debug, warn};

use crate::context::Context;
use crate::table::Frontend;

pub mod supervisor;
pub mod tcp;

/// The first wait before binding a frontend again...
const FIRST_RETRY: Duration = Duration::from_millis(250);
/// ...doubled up to this.
const MAX_RETRY: Duration = Duration::from_secs(30);

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
        Self { task: tokio::spawn(tcp::run(frontend, ctx)) }
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

/// Raises the soft RLIMIT_NOFILE to the hard limit: each proxied connection
/// holds two descriptors.
pub fn raise_fd_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => debug!(limit, "file descriptor limit"),
        Err(e) => warn!(error = %e, "cannot raise the file descriptor limit"),
    }
}
