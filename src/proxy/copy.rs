//! Copying one connection both ways, without holding a buffer while idle.
//!
//! Each direction waits for readiness, borrows a buffer from a per-thread
//! pool only for the read and the writes that drain it, and gives it back
//! before waiting again: an idle connection holds no buffer at all. EOF on
//! one side is passed on as a FIN (shutdown of the other side's write half)
//! while the other direction keeps flowing.

use std::cell::RefCell;
use std::io::{self, ErrorKind};
use std::net::Shutdown;

use socket2::SockRef;

use crate::metrics::Counter;
use tokio::net::TcpStream;

/// One buffer's size: large reads keep syscalls per byte low on bulk
/// transfers; the pool makes its cost proportional to data in flight.
const BUFFER: usize = 32 * 1024;
/// Buffers a thread keeps for reuse.
const POOLED: usize = 64;

thread_local! {
    static POOL: RefCell<Vec<Box<[u8]>>> = const { RefCell::new(Vec::new()) };
}

/// Bytes copied, seen from the client.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// From the client to the endpoint.
    pub received: u64,
    /// From the endpoint to the client.
    pub sent: u64,
}

/// Copies until both directions saw EOF (Ok) or one failed (Err, e.g. a
/// reset); the totals count what was delivered either way. `received` and
/// `sent` (the Service port's byte counters) move as bytes are delivered, so
/// long-lived streams show their rate.
pub async fn both_ways(
    client: &TcpStream,
    endpoint: &TcpStream,
    received: &Counter,
    sent: &Counter,
) -> (Totals, io::Result<()>) {
    let mut totals = Totals::default();
    let result = {
        let up = one_way(client, endpoint, &mut totals.received, received);
        let down = one_way(endpoint, client, &mut totals.sent, sent);
        tokio::try_join!(up, down).map(|_| ())
    };
    (totals, result)
}

async fn one_way(
    from: &TcpStream,
    to: &TcpStream,
    count: &mut u64,
    counter: &Counter,
) -> io::Result<()> {
    loop {
        from.readable().await?;
        let mut buffer = take();
        let read = match from.try_read(&mut buffer) {
            Ok(0) => {
                give(buffer);
                return SockRef::from(to).shutdown(Shutdown::Write).or_else(ignore_not_connected);
            }
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                give(buffer);
                continue;
            }
            Err(e) => return Err(e),
        };
        let mut written = 0;
        while written < read {
            to.writable().await?;
            match to.try_write(&buffer[written..read]) {
                Ok(n) => written += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        *count += read as u64;
        counter.inc_by(read as u64);
        give(buffer);
    }
}

/// The peer may already be gone when its FIN is passed on.
fn ignore_not_connected(e: io::Error) -> io::Result<()> {
    if e.kind() == ErrorKind::NotConnected { Ok(()) } else { Err(e) }
}

fn take() -> Box<[u8]> {
    POOL.with(|pool| pool.borrow_mut().pop()).unwrap_or_else(|| vec![0; BUFFER].into_boxed_slice())
}

fn give(buffer: Box<[u8]>) {
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.len() < POOLED {
            pool.push(buffer);
        }
    });
}
