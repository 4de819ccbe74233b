//! Drain on SIGTERM: stop accepting, let live connections finish for up to
//! `--drain-timeout`, then exit.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

/// Counts live connections; wakes the drain when the last one ends.
#[derive(Debug, Default)]
pub struct Tracker {
    live: AtomicUsize,
    idle: Notify,
}

/// One live connection; dropping it ends the connection's count.
#[derive(Debug)]
pub struct Live<'a>(&'a Tracker);

// === impl Tracker ===

impl Tracker {
    /// Counts a connection until the returned guard drops.
    pub fn enter(&self) -> Live<'_> {
        self.live.fetch_add(1, Ordering::Relaxed);
        Live(self)
    }

    /// Live connections now.
    pub fn live(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    /// Waits until no connection is live or `timeout` passes; returns how
    /// many were still live.
    pub async fn drain(&self, timeout: Duration) -> usize {
        let wait = async {
            loop {
                let idle = self.idle.notified();
                if self.live() == 0 {
                    return;
                }
                idle.await;
            }
        };
        let _ = tokio::time::timeout(timeout, wait).await;
        self.live()
    }
}

impl Drop for Live<'_> {
    fn drop(&mut self) {
        if self.0.live.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}
