//! Drain on SIGTERM: stop accepting, let live connections finish for up to
//! `--drain-timeout`, then reset the rest and exit.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::sync::Notify;
use tokio::sync::futures::Notified;

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
    /// Set, then told, when the drain starts: a connection that can end
    /// cleanly between two requests (HTTP) does so.
    draining: AtomicBool,
    drain: Notify,
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
        self.0.draining.store(true, Ordering::Release);
        self.0.drain.notify_waiters();
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
    /// Returns once the drain has started.
    pub async fn draining(&self) {
        let notified = self.0.drain.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if self.0.draining.load(Ordering::Acquire) {
            return;
        }
        notified.await;
    }

    /// Runs `work` to its end, or until the drain gives up on this
    /// connection (`None`).
    pub fn unless_aborted<F: Future>(&self, work: F) -> UnlessAborted<'_, F> {
        UnlessAborted {
            work,
            notified: self.0.abort.notified(),
            aborting: &self.0.aborting,
            registered: None,
        }
    }
}

pin_project! {
    /// [`Live::unless_aborted`]'s future: a struct rather than an `async
    /// fn`, which would hold `work` twice (as argument and pinned local)
    /// in every connection's task.
    ///
    /// The task's waker is registered with the abort `Notify` once, not on
    /// every wake: polling a waiting `Notified` takes the lock every task
    /// of every thread shares, and a connection wakes once per read. Later
    /// wakes only load the flag.
    pub struct UnlessAborted<'a, F> {
        #[pin]
        work: F,
        #[pin]
        notified: Notified<'a>,
        aborting: &'a AtomicBool,
        registered: Option<Waker>,
    }
}

impl<F: Future> Future for UnlessAborted<'_, F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if this.aborting.load(Ordering::Acquire) {
            return Poll::Ready(None);
        }
        if !this.registered.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            if this.notified.poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            *this.registered = Some(cx.waker().clone());
        }
        this.work.poll(cx).map(Some)
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        if self.0.live.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}
