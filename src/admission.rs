//! How many client connections may be open at once (`--max-connections`,
//! HAProxy's `maxconn`).
//!
//! At the bound every TCP listener stops calling accept(2): new clients
//! wait in the kernel's backlog (their handshake done, nothing read) until
//! a connection ends, rather than being accepted and closed. A proxied
//! connection holds two descriptors, so the default bound is half the
//! descriptor limit. The time spent at the bound is counted in
//! `svcproxy_accept_paused_seconds_total{reason="max_connections"}`.

use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::Notify;
use tracing::warn;

use crate::metrics::Pause;

/// The bound and the count of client connections open.
#[derive(Debug)]
pub struct Admission {
    max: usize,
    open: AtomicUsize,
    /// Told when a connection ends at the bound: paused listeners look again.
    freed: Notify,
    paused: Arc<Pause>,
    /// Set the first time the bound is reached, so that is logged once.
    reached: AtomicBool,
}

/// One client connection's place under the bound, held until dropped.
#[derive(Debug)]
pub struct Slot(Arc<Admission>);

// === impl Admission ===

impl Admission {
    /// At most `max` connections (`usize::MAX`: no bound); the time spent
    /// at the bound counts into `paused`.
    pub fn new(max: usize, paused: Arc<Pause>) -> Arc<Self> {
        let (open, freed, reached) = (AtomicUsize::new(0), Notify::new(), AtomicBool::new(false));
        Arc::new(Self { max: max.max(1), open, freed, paused, reached })
    }

    /// The bound.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Client connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Returns once fewer than `max` connections are open: at once, but
    /// at the bound. A listener waits here before each accept; below the
    /// bound that costs one atomic load, the `Notify` (a lock all
    /// listeners share) is touched only at the bound.
    pub async fn room(&self) {
        while self.open.load(Ordering::Acquire) >= self.max {
            let mut freed = pin!(self.freed.notified());
            // Registered before looking again, so an end in between is not
            // missed.
            freed.as_mut().enable();
            if self.open.load(Ordering::Acquire) < self.max {
                return;
            }
            freed.await;
        }
    }

    /// A place for a connection just accepted: at once, unless other
    /// listeners took the last places since [`Self::room`] said there was
    /// one; then the connection waits (at most one per listener) for one
    /// to end.
    pub async fn enter(self: &Arc<Self>) -> Slot {
        loop {
            let taken = self.open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            });
            match taken {
                Ok(before) if before + 1 == self.max => {
                    self.at_bound();
                    return Slot(self.clone());
                }
                Ok(_) => return Slot(self.clone()),
                Err(_) => self.room().await,
            }
        }
    }

    fn at_bound(&self) {
        self.follow_count();
        if !self.reached.swap(true, Ordering::Relaxed) {
            let max = self.max;
            warn!(
                max,
                "--max-connections reached: new clients wait in the backlog until a connection ends (logged once)"
            );
        }
    }
}

impl Admission {
    /// The pause clock set from the count itself, not from which of an
    /// accept and an end came last: the two race.
    fn follow_count(&self) {
        self.paused.follow(|| self.open.load(Ordering::Acquire) >= self.max);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let admission = &self.0;
        if admission.open.fetch_sub(1, Ordering::AcqRel) == admission.max {
            admission.follow_count();
            admission.freed.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::Admission;
    use crate::metrics::Pause;

    #[tokio::test]
    async fn at_the_bound_room_waits_until_a_slot_is_dropped() {
        let admission = Admission::new(2, Arc::new(Pause::default()));
        let first = admission.enter().await;
        let _second = admission.enter().await;
        assert_eq!(admission.open(), 2);
        let waiting = tokio::time::timeout(Duration::from_millis(50), admission.room()).await;
        assert!(waiting.is_err(), "room at the bound");
        let later = tokio::spawn({
            let admission = admission.clone();
            async move { admission.room().await }
        });
        drop(first);
        tokio::time::timeout(Duration::from_secs(5), later).await.unwrap().unwrap();
        assert_eq!(admission.open(), 1);
    }
}
