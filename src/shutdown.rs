//! Drain on SIGTERM: stop accepting, let live connections finish for up to
//! `--drain-timeout`, then reset the rest and exit.

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Poll, Waker};
use std::time::Duration;

use tokio::sync::Notify;

/// Counts live connections; wakes the drain when the last one ends.
#[derive(Clone, Debug, Default)]
pub struct Tracker(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    live: AtomicUsize,
    idle: Notify,
    /// Set, then told, when the drain gives up on the connections still live.
    aborting: AtomicBool,
    abort: Notify,
}

/// One live connection, counted from its accept (so a connection accepted
/// just before SIGTERM is waited for) until the guard drops.
#[derive(Debug)]
pub struct Live(Arc<Inner>);

// === impl Tracker ===

impl Tracker {
    /// Counts a connection until the returned guard drops.
    pub fn enter(&self) -> Live {
        self.0.live.fetch_add(1, Ordering::Relaxed);
        Live(self.0.clone())
    }

    /// Live connections now.
    pub fn live(&self) -> usize {
        self.0.live.load(Ordering::Relaxed)
    }

    /// Waits until no connection is live or `timeout` passes; returns how
    /// many were still live.
    pub async fn drain(&self, timeout: Duration) -> usize {
        let wait = async {
            loop {
                let idle = self.0.idle.notified();
                if self.live() == 0 {
                    return;
                }
                idle.await;
            }
        };
        let _ = tokio::time::timeout(timeout, wait).await;
        self.live()
    }

    /// Tells every live connection to end at once with a reset: a client
    /// cut off by the drain must not take a truncated stream for a whole one.
    pub fn abort(&self) {
        self.0.aborting.store(true, Ordering::Release);
        self.0.abort.notify_waiters();
    }
}

// === impl Live ===

impl Live {
    /// Runs `work` to its end, or until the drain gives up on this
    /// connection (`None`).
    ///
    /// The task's waker is registered with the abort `Notify` once, not on
    /// every wake: polling a waiting `Notified` takes the lock every task
    /// of every thread shares, and a connection wakes once per read.
    /// Later wakes only load the flag.
    pub async fn unless_aborted<F: Future>(&self, work: F) -> Option<F::Output> {
        let mut notified = pin!(self.0.abort.notified());
        let mut work = pin!(work);
        let mut registered: Option<Waker> = None;
        poll_fn(|cx| {
            if self.0.aborting.load(Ordering::Acquire) {
                return Poll::Ready(None);
            }
            if !registered.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                if notified.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(None);
                }
                registered = Some(cx.waker().clone());
            }
            work.as_mut().poll(cx).map(Some)
        })
        .await
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        if self.0.live.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}
