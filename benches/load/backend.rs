//! The three endpoints every proxy forwards to: HTTP/1.1 keep-alive
//! responders on `127.77.0.2`–`.4`, on a runtime of their own. Each reads a
//! request up to its blank line and answers a fixed response with a
//! Content-Length: 3 bytes for `/ok`, 1 MiB for `/1m`; `Connection: close`
//! is honoured (answer, then FIN). An `X-Backend: bN` header lets the
//! bench check that a proxy spreads new connections over all three.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::runtime::Runtime;

/// The small response's path and body.
pub const SMALL_PATH: &str = "/ok";
pub const SMALL_BODY: &[u8] = b"ok\n";
/// The bulk response's path and size.
pub const BULK_PATH: &str = "/1m";
pub const BULK_SIZE: usize = 1 << 20;

/// A request head longer than this is not ours: the connection is dropped.
const MAX_HEAD: usize = 16 * 1024;

/// The running endpoints; they stop with their runtime when dropped.
pub struct Backends {
    pub addrs: Vec<SocketAddr>,
    counts: Arc<Counts>,
    _runtime: Runtime,
}

#[derive(Default)]
struct Counts {
    accepted: AtomicU64,
    /// Connections accepted and not yet closed (the idle test waits on it).
    open: AtomicI64,
}

/// The prebuilt answers of one endpoint.
struct Answers {
    small: Vec<u8>,
    small_close: Vec<u8>,
    bulk_head: Vec<u8>,
    bulk_close_head: Vec<u8>,
    bulk_body: Arc<[u8]>,
}

// === impl Backends ===

impl Backends {
    /// Binds the three endpoints on ephemeral ports of `127.77.0.2`–`.4`
    /// and serves them on `runtime`, which they keep.
    pub fn start(runtime: Runtime) -> Result<Backends> {
        let counts = Arc::new(Counts::default());
        let body: Arc<[u8]> = (0..BULK_SIZE).map(|i| (i % 251) as u8).collect();
        let mut addrs = Vec::new();
        let _enter = runtime.enter();
        for i in 0..3u8 {
            let listener = listen(SocketAddr::from((Ipv4Addr::new(127, 77, 0, 2 + i), 0)))?;
            addrs.push(listener.local_addr()?);
            let answers = Arc::new(Answers::new(i, body.clone()));
            runtime.spawn(accept_loop(listener, answers, counts.clone()));
        }
        Ok(Backends { addrs, counts, _runtime: runtime })
    }

    /// Connections accepted so far, all endpoints together.
    pub fn accepted(&self) -> u64 {
        self.counts.accepted.load(Ordering::Relaxed)
    }

    /// Connections open now, all endpoints together.
    pub fn open(&self) -> i64 {
        self.counts.open.load(Ordering::Relaxed)
    }
}

/// A listener with a deep backlog: the idle test opens thousands of
/// connections in bursts.
fn listen(addr: SocketAddr) -> Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr).with_context(|| format!("bind endpoint {addr}"))?;
    Ok(socket.listen(4096)?)
}

async fn accept_loop(listener: TcpListener, answers: Arc<Answers>, counts: Arc<Counts>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                counts.accepted.fetch_add(1, Ordering::Relaxed);
                counts.open.fetch_add(1, Ordering::Relaxed);
                let (answers, counts) = (answers.clone(), counts.clone());
                tokio::spawn(async move {
                    let _ = serve(stream, &answers).await;
                    counts.open.fetch_sub(1, Ordering::Relaxed);
                });
            }
            // Out of descriptors, say: back off instead of spinning.
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// Answers requests on one connection until the client closes it or asks
/// for `Connection: close`.
async fn serve(mut stream: TcpStream, answers: &Answers) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        while let Some(end) = find_head_end(&buf) {
            let (bulk, close) = classify(&buf[..end]);
            buf.drain(..end);
            answers.write(&mut stream, bulk, close).await?;
            if close {
                return stream.shutdown().await;
            }
        }
        if buf.len() > MAX_HEAD {
            return Ok(());
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The offset just past the first `\r\n\r\n`.
pub fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// (asks for the bulk body, asks to close) of one request head.
fn classify(head: &[u8]) -> (bool, bool) {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let path = lines.next().and_then(|l| l.split_whitespace().nth(1)).unwrap_or("");
    let close = lines.any(|l| {
        l.split_once(':').is_some_and(|(name, value)| {
            name.trim().eq_ignore_ascii_case("connection")
                && value.trim().eq_ignore_ascii_case("close")
        })
    });
    (path == BULK_PATH, close)
}

// === impl Answers ===

impl Answers {
    fn new(index: u8, bulk_body: Arc<[u8]>) -> Answers {
        let head = |len: usize, close: bool| {
            let connection = if close { "Connection: close\r\n" } else { "" };
            format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nX-Backend: b{index}\r\n{connection}\r\n")
                .into_bytes()
        };
        let small = |close| [head(SMALL_BODY.len(), close), SMALL_BODY.to_vec()].concat();
        Answers {
            small: small(false),
            small_close: small(true),
            bulk_head: head(BULK_SIZE, false),
            bulk_close_head: head(BULK_SIZE, true),
            bulk_body,
        }
    }

    async fn write(&self, stream: &mut TcpStream, bulk: bool, close: bool) -> std::io::Result<()> {
        match (bulk, close) {
            (false, false) => stream.write_all(&self.small).await,
            (false, true) => stream.write_all(&self.small_close).await,
            (true, _) => {
                let head = if close { &self.bulk_close_head } else { &self.bulk_head };
                stream.write_all(head).await?;
                stream.write_all(&self.bulk_body).await
            }
        }
    }
}
