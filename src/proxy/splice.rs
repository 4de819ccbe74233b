//! Bulk TCP through a pipe with `splice(2)`: socket → pipe → socket, the
//! bytes never cross into userspace.
//!
//! A splicing direction borrows a spare pipe of its thread while bytes
//! flow and gives it back empty when its socket runs dry, so an idle
//! connection holds no pipe; a pipe still holding bytes (the direction
//! failed mid-way) is closed instead, so a spare pipe never leaks one
//! connection's data into another.

use std::future::poll_fn;
use std::io;
use std::os::fd::OwnedFd;

use rustix::io::Errno;
use rustix::pipe::{PipeFlags, SpliceFlags, pipe_with, splice};
use tokio::io::Interest;
use tokio::net::TcpStream;

use super::spare::{self, Spares};

/// The most one splice moves: the kernel's default pipe capacity (16
/// pages), so no `F_SETPIPE_SZ` and no pressure on the per-user pipe quota.
const CHUNK: usize = 64 * 1024;
/// Empty pipes a thread keeps for the next bulk direction.
const SPARE: usize = 64;

thread_local! {
    static PIPES: Spares<Pipe, SPARE> = const { Spares::new() };
}

/// Why a splicing direction stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No pipe, or this socket cannot splice; nothing was moved: copy instead.
    #[error("cannot splice: {0}")]
    Unsupported(io::Error),
    /// Reading the source socket failed (e.g. it was reset).
    #[error(transparent)]
    Read(io::Error),
    /// Writing the destination socket failed.
    #[error(transparent)]
    Write(io::Error),
}

/// Both ends of one pipe, and how many bytes sit in it.
struct Pipe {
    rx: OwnedFd,
    tx: OwnedFd,
    held: usize,
}

/// Moves bytes from `from` to `to` until EOF on `from` (Ok) or a failure;
/// `moved` hears of each chunk delivered. The caller passes EOF on. A pipe
/// is held only while bytes flow: an idle direction gives it back.
pub async fn one_way(
    from: &TcpStream,
    to: &TcpStream,
    moved: &mut impl FnMut(usize),
) -> Result<(), Error> {
    let mut first = true;
    loop {
        // Waits within tokio's cooperative budget, like the copy loop.
        poll_fn(|cx| from.poll_read_ready(cx)).await.map_err(Error::Read)?;
        // Nothing sits in any pipe here: without one, copying can go on.
        let mut pipe = Pipe::take().map_err(Error::Unsupported)?;
        loop {
            let n = match fill(from, &pipe) {
                Ok(0) => {
                    pipe.give();
                    return Ok(());
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if first && is_unsupported(&e) => return Err(Error::Unsupported(e)),
                Err(e) => return Err(Error::Read(e)),
            };
            first = false;
            pipe.held = n;
            while pipe.held > 0 {
                pipe.held -= drain(&pipe, to).await.map_err(Error::Write)?;
            }
            moved(n);
        }
        pipe.give();
    }
}

/// Socket → pipe, without waiting; WouldBlock clears the socket's
/// readiness. The pipe is empty, so EAGAIN can only mean the socket has
/// nothing.
fn fill(from: &TcpStream, pipe: &Pipe) -> io::Result<usize> {
    from.try_io(Interest::READABLE, || {
        splice(from, None, &pipe.tx, None, CHUNK, SpliceFlags::MOVE | SpliceFlags::NONBLOCK)
            .map_err(io::Error::from)
    })
}

/// Pipe → socket, waiting for room.
async fn drain(pipe: &Pipe, to: &TcpStream) -> io::Result<usize> {
    to.async_io(Interest::WRITABLE, || {
        splice(&pipe.rx, None, to, None, pipe.held, SpliceFlags::MOVE | SpliceFlags::NONBLOCK)
            .map_err(io::Error::from)
    })
    .await
}

fn is_unsupported(e: &io::Error) -> bool {
    matches!(Errno::from_io_error(e), Some(Errno::INVAL | Errno::NOSYS))
}

// === impl Pipe ===

impl Pipe {
    /// A spare pipe, or a new one (non-blocking, close-on-exec).
    fn take() -> io::Result<Self> {
        if let Some(pipe) = spare::take(&PIPES) {
            return Ok(pipe);
        }
        let (rx, tx) = pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
        Ok(Self { rx, tx, held: 0 })
    }

    /// Back to the spares if empty; closed otherwise.
    fn give(self) {
        if self.held == 0 {
            spare::give(&PIPES, self);
        }
    }
}
