//! The HTTP access log's sink (`--http-access-log`): lines handed over by
//! the data path, written by a thread of their own, in batches, so a slow
//! or blocked stdout never stalls a request. The queue is bounded: lines
//! beyond it are dropped, and the drop is logged, never an unbounded
//! growth.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::thread;

use tracing::warn;

/// Lines waiting for the writer: about a second of a busy node's requests.
const QUEUE: usize = 16_384;

/// Where access log lines go.
#[derive(Debug)]
pub struct AccessLog {
    lines: SyncSender<Vec<u8>>,
    dropped: AtomicU64,
}

// === impl AccessLog ===

impl AccessLog {
    /// Lines to standard output (the daemon's own log is on standard error).
    pub fn stdout() -> io::Result<Self> {
        Self::to(io::stdout())
    }

    /// Lines to `out`, written by a thread that lives as long as this.
    pub fn to(out: impl Write + Send + 'static) -> io::Result<Self> {
        let (lines, queue) = mpsc::sync_channel(QUEUE);
        thread::Builder::new().name("access-log".into()).spawn(move || write(queue, out))?;
        Ok(Self { lines, dropped: AtomicU64::new(0) })
    }

    /// Queues one line (ending in `\n`).
    pub fn push(&self, line: Vec<u8>) {
        match self.lines.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                // At 1, 2, 4, 8...: a stalled stdout cannot flood the log.
                if dropped.is_power_of_two() {
                    warn!(dropped, "access log: the output does not keep up; lines dropped");
                }
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

/// Writes what arrives, flushing whenever the queue runs empty; ends when
/// the [`AccessLog`] is dropped or the output fails.
fn write(queue: Receiver<Vec<u8>>, out: impl Write) {
    let mut out = io::BufWriter::with_capacity(64 * 1024, out);
    while let Ok(line) = queue.recv() {
        let mut written = out.write_all(&line);
        while let (Ok(()), Ok(line)) = (&written, queue.try_recv()) {
            written = out.write_all(&line);
        }
        if let Err(e) = written.and_then(|()| out.flush()) {
            warn!(error = %e, "access log: cannot write; no more lines are written");
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use parking_lot::Mutex;

    use super::AccessLog;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_arrive_whole_and_in_order() {
        let out = Shared::default();
        let log = AccessLog::to(out.clone()).unwrap();
        for i in 0..1000 {
            log.push(format!("{{\"n\":{i}}}\n").into_bytes());
        }
        let want: String = (0..1000).map(|i| format!("{{\"n\":{i}}}\n")).collect();
        let until = Instant::now() + Duration::from_secs(10);
        while out.0.lock().len() < want.len() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(String::from_utf8(out.0.lock().clone()).unwrap(), want);
    }
}
