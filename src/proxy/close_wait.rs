//! The close-wait timeout (`--conntrack-tcp-timeout-close-wait`, kube-proxy's
//! flag and its conntrack meaning): once one side of a connection has
//! closed, the connection ends with a reset when the direction still open
//! carries no byte for that long. A client that sent its request and closed
//! while its pod never answers would otherwise be held, with what it sent,
//! for as long as the pod lives.
//!
//! Free on the copy path: nothing is armed until the first direction ends;
//! then one timer, woken four times per timeout, compares the open
//! direction's byte count with what it was.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::{Error, Side};

/// Checks per timeout: the silence that ends a connection lasts between
/// the timeout and a quarter more.
const CHECKS: u32 = 4;

/// One direction of a connection: its future, the bytes it has carried,
/// and the peer it reads from.
pub(super) struct Way<'a, F> {
    pub future: Pin<&'a mut F>,
    pub moved: &'a AtomicU64,
    pub from: Side,
}

/// Drives both directions until both have ended (Ok) or one failed; once
/// one has ended, the other must carry bytes at least once per `timeout`
/// (`None`: never timed out), or the connection fails with
/// [`Error::CloseWait`] naming the silent side.
pub(super) async fn both<F>(
    up: Way<'_, F>,
    down: Way<'_, F>,
    timeout: Option<Duration>,
) -> Result<(), Error>
where
    F: Future<Output = Result<(), Error>>,
{
    let (mut up, mut down) = (up, down);
    // Both polled on every wake, as `try_join!` would.
    let open = tokio::select! {
        biased;
        ended = up.future.as_mut() => { ended?; down }
        ended = down.future.as_mut() => { ended?; up }
    };
    let Some(timeout) = timeout else { return open.future.await };
    tokio::select! {
        biased;
        ended = open.future => ended,
        () = silent(open.moved, timeout) => Err(Error::CloseWait { side: open.from, timeout }),
    }
}

/// Returns once `moved` has not changed for `timeout` (give or take a
/// quarter of it).
async fn silent(moved: &AtomicU64, timeout: Duration) {
    let mut seen = moved.load(Ordering::Relaxed);
    let mut quiet = 0;
    while quiet < CHECKS {
        tokio::time::sleep(timeout / CHECKS).await;
        let now = moved.load(Ordering::Relaxed);
        quiet = if now == seen { quiet + 1 } else { 0 };
        seen = now;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use super::silent;

    #[tokio::test(start_paused = true)]
    async fn silence_is_a_whole_timeout_without_a_byte() {
        let moved = AtomicU64::new(0);
        let timeout = Duration::from_secs(3600);
        let start = tokio::time::Instant::now();
        let bytes = async {
            for _ in 0..8 {
                tokio::time::sleep(Duration::from_secs(1000)).await;
                moved.fetch_add(1, Ordering::Relaxed);
            }
            std::future::pending::<()>().await;
        };
        tokio::select! {
            () = silent(&moved, timeout) => {}
            () = bytes => unreachable!(),
        }
        let took = start.elapsed();
        // Bytes until 8,000 s, then a silence of one timeout (+ a quarter).
        assert!(took >= Duration::from_secs(8000) + timeout, "{took:?}");
        assert!(took <= Duration::from_secs(8000) + timeout * 5 / 4 + timeout / 4, "{took:?}");
    }
}
