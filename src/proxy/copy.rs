//! Copying one connection both ways, without holding a buffer while idle.
//!
//! Each direction waits for readiness, borrows a buffer from its thread's
//! spares only for the read and the writes that drain it, and gives it back
//! before waiting again: an idle connection holds no buffer at all. EOF on
//! one side is passed on as a FIN (shutdown of the other side's write half)
//! while the other direction keeps flowing; the second EOF needs no
//! shutdown, closing the sockets sends that FIN. A direction that fills a whole
//! buffer is bulk: it moves to `splice(2)` when the mode allows. Once one
//! direction has ended, the other is bounded by the close-wait timeout
//! ([`super::close_wait`]).

use std::future::poll_fn;
use std::io::{self, ErrorKind};
use std::net::Shutdown;
use std::pin::Pin;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::Poll;
use std::time::Duration;

use socket2::SockRef;
use tokio::io::{AsyncRead, AsyncWriteExt as _, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::{ReadHalf, WriteHalf};

use super::close_wait::{self, Way};
use super::spare::{self, Spares};
use super::splice;
use super::{Error, Side, fault};
use crate::context::Splice;
use crate::metrics::Counter;

/// One buffer's size: large reads keep syscalls per byte low on bulk
/// transfers; the spares make its cost proportional to data in flight.
const BUFFER: usize = 32 * 1024;
/// Buffers a thread keeps for reuse.
const SPARE: usize = 64;

thread_local! {
    static BUFFERS: Spares<Box<[u8]>, SPARE> = const { Spares::new() };
}

/// Bytes copied, seen from the client.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// From the client to the endpoint.
    pub received: u64,
    /// From the endpoint to the client.
    pub sent: u64,
}

/// One direction's byte counts: this connection's (read by the close-wait
/// timer; only its direction writes it) and the port's counter.
struct Tally<'a> {
    total: AtomicU64,
    counter: &'a Counter,
}

/// Which peer each end of one direction is, to say whose fault a failure was.
#[derive(Clone, Copy)]
struct Ends {
    from: Side,
    to: Side,
}

/// Copies until both directions saw EOF (Ok) or one failed (Err, e.g. a
/// reset, with whose fault it was), or, once one direction has ended, the
/// other carried nothing for `close_wait`; the totals count what was
/// delivered either way. `received` and `sent` (the Service port's byte
/// counters) move as bytes are delivered, so long-lived streams show their
/// rate.
pub async fn both_ways(
    client: &mut TcpStream,
    endpoint: &mut TcpStream,
    (received, sent): (&Counter, &Counter),
    mode: Splice,
    close_wait: Option<Duration>,
) -> (Totals, Result<(), Error>) {
    let up = Tally { total: AtomicU64::new(0), counter: received };
    let down = Tally { total: AtomicU64::new(0), counter: sent };
    let half = AtomicBool::new(false);
    let result = {
        let (client_rx, client_tx) = client.split();
        let (endpoint_rx, endpoint_tx) = endpoint.split();
        // Built in place: each direction's future held once in the task.
        let up_ends = Ends { from: Side::Client, to: Side::Endpoint };
        let down_ends = Ends { from: Side::Endpoint, to: Side::Client };
        let up_way = pin!(one_way(client_rx, endpoint_tx, &up, up_ends, mode, &half));
        let down_way = pin!(one_way(endpoint_rx, client_tx, &down, down_ends, mode, &half));
        close_wait::both(
            Way { future: up_way, moved: &up.total, from: Side::Client },
            Way { future: down_way, moved: &down.total, from: Side::Endpoint },
            close_wait,
        )
        .await
    };
    let totals = Totals { received: up.total.into_inner(), sent: down.total.into_inner() };
    (totals, result)
}

async fn one_way(
    mut from: ReadHalf<'_>,
    mut to: WriteHalf<'_>,
    tally: &Tally<'_>,
    ends: Ends,
    mode: Splice,
    half: &AtomicBool,
) -> Result<(), Error> {
    if mode == Splice::Always {
        return splice_or_copy(from, to, tally, ends, half).await;
    }
    loop {
        // Not `readable()`: that future ignores the task's cooperative
        // budget, and a read refused for want of budget would then loop
        // here forever without yielding (a fast one-way stream did).
        poll_fn(|cx| from.as_ref().poll_read_ready(cx)).await.map_err(ends.read())?;
        let mut buffer = take();
        let Some(read) = read_once(&mut from, &mut buffer).await else {
            give(buffer);
            continue;
        };
        let read = match read {
            Ok(0) => {
                give(buffer);
                return finish(&to, half).map_err(ends.write());
            }
            Ok(n) => n,
            Err(e) => return Err(ends.read()(e)),
        };
        let written = to.write_all(&buffer[..read]).await;
        give(buffer);
        written.map_err(ends.write())?;
        tally.add(read);
        if read == BUFFER && mode == Splice::Auto {
            return splice_or_copy(from, to, tally, ends, half).await;
        }
    }
}

/// Splices the rest of the direction; copies instead when this kernel or
/// socket cannot splice (nothing has been moved by then).
async fn splice_or_copy(
    from: ReadHalf<'_>,
    to: WriteHalf<'_>,
    tally: &Tally<'_>,
    ends: Ends,
    half: &AtomicBool,
) -> Result<(), Error> {
    match splice::one_way(from.as_ref(), to.as_ref(), &mut |n| tally.add(n)).await {
        Ok(()) => finish(&to, half).map_err(ends.write()),
        Err(splice::Error::Unsupported(_)) => {
            Box::pin(one_way(from, to, tally, ends, Splice::Never, half)).await
        }
        Err(splice::Error::Read(e)) => Err(ends.read()(e)),
        Err(splice::Error::Write(e)) => Err(ends.write()(e)),
    }
}

/// One read if the socket has data; `None` when it had none after all (its
/// readiness is cleared then) or the task's budget is spent (it is woken
/// again at once). A short read also clears readiness, so the next wait
/// parks at once instead of costing a read that finds nothing.
async fn read_once(from: &mut ReadHalf<'_>, buffer: &mut [u8]) -> Option<io::Result<usize>> {
    poll_fn(|cx| {
        let mut buf = ReadBuf::new(buffer);
        match Pin::new(&mut *from).poll_read(cx, &mut buf) {
            Poll::Pending => Poll::Ready(None),
            Poll::Ready(result) => Poll::Ready(Some(result.map(|()| buf.filled().len()))),
        }
    })
    .await
}

/// Passes EOF on as a FIN. `half` tells whether the other direction has
/// already ended: then both sockets are about to be closed, with nothing
/// left unread in them, and the close sends this FIN (one syscall less per
/// connection). The peer may already be gone.
fn finish(to: &WriteHalf<'_>, half: &AtomicBool) -> io::Result<()> {
    if half.swap(true, Ordering::Relaxed) {
        return Ok(());
    }
    match SockRef::from(to.as_ref()).shutdown(Shutdown::Write) {
        Err(e) if e.kind() != ErrorKind::NotConnected => Err(e),
        _ => Ok(()),
    }
}

impl Ends {
    /// Reading failed: the peer we read from reset or vanished (or this
    /// proxy ran short).
    fn read(self) -> impl FnOnce(io::Error) -> Error {
        move |source| Error::Io { side: fault(self.from, &source), source }
    }

    /// Writing failed: the peer we write to reset or vanished (or this
    /// proxy ran short).
    fn write(self) -> impl FnOnce(io::Error) -> Error {
        move |source| Error::Io { side: fault(self.to, &source), source }
    }
}

impl Tally<'_> {
    fn add(&self, n: usize) {
        // A load and a store, not a locked add: this direction is the only
        // writer.
        let total = self.total.load(Ordering::Relaxed) + n as u64;
        self.total.store(total, Ordering::Relaxed);
        self.counter.inc_by(n as u64);
    }
}

fn take() -> Box<[u8]> {
    spare::take(&BUFFERS).unwrap_or_else(|| vec![0; BUFFER].into_boxed_slice())
}

fn give(buffer: Box<[u8]>) {
    spare::give(&BUFFERS, buffer);
}
