//! Endpoints for the `run` tests: small std-thread servers on a loopback
//! address of their own, and the two broken kinds (refused, blackholed).
//!
//! An [`Endpoint`] binds `ip:0` (the tests write the port it got into the
//! manifests), serves each connection on its own thread, and stops
//! accepting when dropped. Every accepted socket has read and write
//! timeouts, so no server thread outlives its test for long.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use socket2::{Domain, SockAddr, Socket, Type};

use super::net::{self, StreamHash};

/// Stack of a connection thread: the handlers are small, and a test may
/// hold a thousand connections at once.
const STACK: usize = 128 * 1024;

/// A running server; stops accepting when dropped.
pub struct Endpoint {
    pub addr: SocketAddr,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct Stats {
    accepted: AtomicUsize,
    live: AtomicUsize,
    peak: AtomicUsize,
}

/// How a connection ended, as the endpoint saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    /// A clean EOF after these bytes.
    Eof(Vec<u8>),
    /// A reset (ECONNRESET) after these bytes.
    Reset(Vec<u8>),
    /// Any other error.
    Error(String),
}

// === impl Endpoint ===

impl Endpoint {
    /// Serves every connection to `ip:<any port>` with `handler`, on its
    /// own thread.
    pub fn spawn<H>(ip: Ipv4Addr, handler: H) -> Endpoint
    where
        H: Fn(TcpStream) + Send + Sync + 'static,
    {
        Endpoint::spawn_on(net::addr(ip, 0), handler)
    }

    /// [`Self::spawn`] on `at`, of either family (`[::1]:0`, or a port
    /// another endpoint already has on another address).
    pub fn spawn_on<H>(at: SocketAddr, handler: H) -> Endpoint
    where
        H: Fn(TcpStream) + Send + Sync + 'static,
    {
        let listener = listen(at).unwrap_or_else(|e| panic!("endpoint cannot listen on {at}: {e}"));
        let addr = listener.local_addr().expect("endpoint address");
        let stats = Arc::new(Stats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let handler = Arc::new(handler);
        let accept = {
            let (stats, stop) = (Arc::clone(&stats), Arc::clone(&stop));
            thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream.and_then(net::bounded) else { continue };
                    stats.accepted.fetch_add(1, Ordering::SeqCst);
                    let live = stats.live.fetch_add(1, Ordering::SeqCst) + 1;
                    stats.peak.fetch_max(live, Ordering::SeqCst);
                    let (stats, handler) = (Arc::clone(&stats), Arc::clone(&handler));
                    let spawned = thread::Builder::new().stack_size(STACK).spawn(move || {
                        handler(stream);
                        stats.live.fetch_sub(1, Ordering::SeqCst);
                    });
                    assert!(spawned.is_ok(), "endpoint {addr}: cannot start a thread");
                }
            })
        };
        Endpoint { addr, stats, stop, accept: Some(accept) }
    }

    /// Echoes every byte until EOF, then half-closes its side too.
    pub fn echo(ip: Ipv4Addr) -> Endpoint {
        Endpoint::spawn(ip, |mut stream| {
            let mut reader = stream.try_clone().expect("clone");
            let _ = io::copy(&mut reader, &mut stream);
            let _ = stream.shutdown(Shutdown::Write);
        })
    }

    /// Writes `name` and closes, without reading.
    pub fn name(ip: Ipv4Addr, name: &str) -> Endpoint {
        Endpoint::name_on(net::addr(ip, 0), name)
    }

    /// [`Self::name`] on `at`, of either family.
    pub fn name_on(at: SocketAddr, name: &str) -> Endpoint {
        let name = name.to_owned();
        Endpoint::spawn_on(at, move |mut stream| {
            let _ = stream.write_all(name.as_bytes());
        })
    }

    /// An HTTP/1.1 server answering every request with
    /// `Hello, k8s! from NAME` and closing.
    pub fn http_hello(ip: Ipv4Addr, name: &str) -> Endpoint {
        let body = format!("Hello, k8s! from {name}");
        Endpoint::spawn(ip, move |mut stream| {
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                match stream.read(&mut byte) {
                    Ok(1) => head.push(byte[0]),
                    _ => return,
                }
            }
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(answer.as_bytes());
        })
    }

    /// Reads to EOF, then answers `got N bytes: DATA` and closes: the
    /// reply only exists if the client's half-close reached it.
    pub fn reply_after_eof(ip: Ipv4Addr) -> Endpoint {
        Endpoint::spawn(ip, |mut stream| {
            let Ok(data) = net::read_to_end(&mut stream) else { return };
            let reply = format!("got {} bytes: {}", data.len(), String::from_utf8_lossy(&data));
            let _ = stream.write_all(reply.as_bytes());
        })
    }

    /// Writes `banner`, half-closes, then reads what the client still
    /// sends until it closes, and reports how that ended.
    pub fn banner_then_read(ip: Ipv4Addr, banner: &str) -> (Endpoint, Receiver<Ending>) {
        let banner = banner.to_owned();
        let (tx, rx) = mpsc::channel();
        let endpoint = Endpoint::spawn(ip, move |mut stream| {
            let _ = stream.write_all(banner.as_bytes());
            let _ = stream.shutdown(Shutdown::Write);
            report(&tx, read_ending(&mut stream));
        });
        (endpoint, rx)
    }

    /// Echoes until the connection ends, and reports how it ended.
    pub fn echo_reporting(ip: Ipv4Addr) -> (Endpoint, Receiver<Ending>) {
        let (tx, rx) = mpsc::channel();
        let endpoint = Endpoint::spawn(ip, move |mut stream| {
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            let ending = loop {
                match stream.read(&mut buf) {
                    Ok(0) => break Ending::Eof(seen),
                    Ok(n) => {
                        seen.extend_from_slice(&buf[..n]);
                        if stream.write_all(&buf[..n]).is_err() {
                            break read_ending(&mut stream);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                        break Ending::Reset(seen);
                    }
                    Err(e) => break Ending::Error(e.to_string()),
                }
            };
            report(&tx, ending);
        });
        (endpoint, rx)
    }

    /// Accepts, then resets the connection (SO_LINGER 0) after `delay`.
    pub fn reset_after(ip: Ipv4Addr, delay: Duration) -> Endpoint {
        Endpoint::spawn(ip, move |stream| {
            thread::sleep(delay);
            net::reset(stream);
        })
    }

    /// Echoes and hashes what it receives; reports `(hash, len)` of the
    /// stream at EOF, so both ends of a transfer check it.
    pub fn echo_hashing(ip: Ipv4Addr) -> (Endpoint, Receiver<(u64, u64)>) {
        let (tx, rx) = mpsc::channel();
        let endpoint = Endpoint::spawn(ip, move |mut stream| {
            let mut hash = StreamHash::new();
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match stream.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        hash.update(&buf[..n]);
                        if stream.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                    Err(_) => return,
                }
            }
            let _ = stream.shutdown(Shutdown::Write);
            report(&tx, hash.finish());
        });
        (endpoint, rx)
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.stats.accepted.load(Ordering::SeqCst)
    }

    /// The most connections open at once so far.
    pub fn peak(&self) -> usize {
        self.stats.peak.load(Ordering::SeqCst)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

/// A listener on `at` with a deep accept queue: a test that
/// opens a thousand connections at once must not see SYNs dropped by its
/// own endpoint (std's `bind` listens with a backlog of 128).
fn listen(at: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(at), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&SockAddr::from(at))?;
    socket.listen(4096)?;
    Ok(socket.into())
}

fn report<T>(tx: &Sender<T>, value: T) {
    let _ = tx.send(value);
}

/// Reads to the end of the stream; how it ended.
fn read_ending(stream: &mut TcpStream) -> Ending {
    let mut seen = Vec::new();
    match stream.read_to_end(&mut seen) {
        Ok(_) => Ending::Eof(seen),
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Ending::Reset(seen),
        Err(e) => Ending::Error(e.to_string()),
    }
}

/// An `ip:port` where nothing listens: bound once to learn a free port,
/// then released. Connecting there is refused.
pub fn refused_addr(ip: Ipv4Addr) -> SocketAddr {
    let listener = TcpListener::bind(net::addr(ip, 0)).expect("bind for a refused address");
    let addr = listener.local_addr().expect("address");
    drop(listener);
    assert!(net::refuses(addr), "{addr} should refuse connections");
    addr
}

/// A listener that never accepts and whose accept queue is full, so the
/// kernel drops new SYNs: connecting there hangs until the client's
/// timeout, as to a dead host.
pub struct Blackhole {
    pub addr: SocketAddr,
    _listener: Socket,
    _queued: Vec<TcpStream>,
}

// === impl Blackhole ===

impl Blackhole {
    pub fn new(ip: Ipv4Addr) -> Blackhole {
        let listener = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
        listener.bind(&SockAddr::from(net::addr(ip, 0))).expect("bind blackhole");
        listener.listen(0).expect("listen(0)");
        let addr =
            listener.local_addr().ok().and_then(|a| a.as_socket()).expect("blackhole address");
        // Fill the accept queue: connections complete until it is full,
        // then SYNs are dropped and a connect times out.
        let probe = Duration::from_millis(200);
        let mut queued = Vec::new();
        for _ in 0..16 {
            match TcpStream::connect_timeout(&addr, probe) {
                Ok(stream) => queued.push(stream),
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    return Blackhole { addr, _listener: listener, _queued: queued };
                }
                Err(e) => panic!("filling the blackhole {addr}: {e}"),
            }
        }
        panic!("{addr}: still accepting SYNs after {} queued connections", queued.len())
    }
}
