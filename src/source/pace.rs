//! `--min-sync-period`, kube-proxy's meaning: at most one rebuild per
//! period, and a change that comes after a quiet period is applied at
//! once. Every source's changes go through the one [`Pace`], so a busy API
//! server and a file edited in a loop cost the same at most.

use std::time::Duration;

use tokio::time::Instant;

/// When the next rebuild may start.
#[derive(Debug)]
pub struct Pace {
    period: Duration,
    /// When the last rebuild started; `None` before the first.
    last: Option<Instant>,
}

// === impl Pace ===

impl Pace {
    pub fn new(period: Duration) -> Self {
        Self { period, last: None }
    }

    /// Waits until `period` has passed since the last rebuild started (not
    /// at all after a quiet period), then counts a rebuild as started now.
    /// Cancelled while waiting, it counts nothing.
    pub async fn wait(&mut self) {
        if let Some(last) = self.last {
            match last.checked_add(self.period) {
                Some(next) => tokio::time::sleep_until(next).await,
                // A period past the clock's end: no rebuild after the first.
                None => std::future::pending().await,
            }
        }
        self.last = Some(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_change_after_a_quiet_period_is_applied_at_once() {
        let mut pace = Pace::new(Duration::from_secs(1));
        let start = Instant::now();
        pace.wait().await;
        assert_eq!(start.elapsed(), Duration::ZERO, "the first rebuild waits for nothing");
        tokio::time::sleep(Duration::from_secs(5)).await;
        let quiet = Instant::now();
        pace.wait().await;
        assert_eq!(quiet.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn at_most_one_rebuild_starts_per_period() {
        let mut pace = Pace::new(Duration::from_secs(1));
        let start = Instant::now();
        for n in 0..4u32 {
            pace.wait().await;
            assert_eq!(start.elapsed(), Duration::from_secs(1) * n);
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_zero_period_never_waits() {
        let mut pace = Pace::new(Duration::ZERO);
        let start = Instant::now();
        for _ in 0..3 {
            pace.wait().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}
