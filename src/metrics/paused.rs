//! `svcproxy_accept_paused_seconds_total`: how long accepting new clients
//! was paused, by reason. Wall time, not summed per listener: a hundred
//! frontends paused for one second count one second.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::ACCEPT_PAUSED;
use super::traffic::header;

/// Both reasons' clocks.
#[derive(Debug, Default)]
pub struct AcceptPaused {
    /// `--max-connections` client connections open: no listener accepts
    /// until one ends (open-ended, [`Pause::start`] / [`Pause::stop`]).
    pub max_connections: Arc<Pause>,
    /// Out of descriptors: a listener backs off before accepting again
    /// (bounded, [`Pause::pause_for`]).
    pub descriptors: Arc<Pause>,
}

/// One reason's clock. Touched only when a pause begins or ends, never
/// per connection.
#[derive(Debug, Default)]
pub struct Pause(Mutex<Clock>);

#[derive(Debug, Default)]
struct Clock {
    /// Pauses over and done.
    total: Duration,
    /// An open-ended pause, since then.
    since: Option<Instant>,
    /// A bounded pause (or several overlapping, merged): start and end.
    bounded: Option<(Instant, Instant)>,
}

// === impl Pause ===

impl Pause {
    /// An open-ended pause runs from now while `at_bound()` holds, and ends
    /// now when it does not: asked under the clock's lock, so a pause
    /// begun and a pause ended at the same time settle on the truth.
    pub fn follow(&self, at_bound: impl FnOnce() -> bool) {
        let mut clock = self.0.lock();
        match (at_bound(), clock.since) {
            (true, None) => clock.since = Some(Instant::now()),
            (false, Some(since)) => {
                clock.since = None;
                clock.total += since.elapsed();
            }
            _ => {}
        }
    }

    /// A pause from now for `length`; pauses that overlap count once.
    pub fn pause_for(&self, length: Duration) {
        let now = Instant::now();
        let end = now + length;
        let clock = &mut *self.0.lock();
        match &mut clock.bounded {
            Some((_, until)) if *until >= now => *until = (*until).max(end),
            bounded => {
                let done = bounded.replace((now, end));
                clock.total += done.map_or(Duration::ZERO, |(from, until)| until - from);
            }
        }
    }

    /// Seconds paused so far, the running pause's elapsed part included.
    pub fn seconds(&self) -> f64 {
        let now = Instant::now();
        let clock = self.0.lock();
        let open = clock.since.map_or(Duration::ZERO, |since| now - since);
        let bounded = clock
            .bounded
            .map_or(Duration::ZERO, |(from, until)| until.min(now).saturating_duration_since(from));
        (clock.total + open + bounded).as_secs_f64()
    }
}

// === impl AcceptPaused ===

impl AcceptPaused {
    pub(super) fn render(&self, out: &mut String) {
        let help = "Seconds accepting new clients was paused, by reason.";
        header(out, ACCEPT_PAUSED, "counter", help);
        for (reason, pause) in
            [("max_connections", &self.max_connections), ("descriptors", &self.descriptors)]
        {
            let _ = writeln!(out, "{ACCEPT_PAUSED}{{reason=\"{reason}\"}} {}", pause.seconds());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Pause;

    #[test]
    fn overlapping_bounded_pauses_count_once() {
        let pause = Pause::default();
        pause.pause_for(Duration::from_secs(3600));
        pause.pause_for(Duration::from_secs(1800));
        let seconds = pause.seconds();
        assert!(seconds < 1.0, "only the elapsed part counts: {seconds}");
        pause.pause_for(Duration::from_secs(7200));
        assert!(pause.seconds() < 1.0);
    }

    #[test]
    fn an_open_ended_pause_counts_until_stopped() {
        let pause = Pause::default();
        assert_eq!(pause.seconds(), 0.0);
        pause.follow(|| true);
        std::thread::sleep(Duration::from_millis(20));
        pause.follow(|| true);
        pause.follow(|| false);
        let seconds = pause.seconds();
        assert!(seconds >= 0.02, "{seconds}");
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(pause.seconds(), seconds, "stopped");
    }
}
