//! Client side of the `run` tests: unique loopback addresses, bounded
//! client sockets, polling with a deadline, and a stream hash.
//!
//! Every address a test uses is its own: tests run in parallel (threads of
//! one process, and several test processes), so each address comes from
//! [`fresh_ip`] and nothing is shared but `127.0.0.1`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpStream};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use socket2::{Domain, SockAddr, SockRef, Socket, Type};

/// Every blocking socket operation of a test client is bounded by this.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a client waits for its TCP handshake with the proxy.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Second octets the allocator hands out (`127.128.0.0`–`127.250.255.255`):
/// clear of `127.0.0.1`, the demo's `127.0.1.x` / `127.96.x.x` and the other
/// test suites' `127.0.x.x` / `127.10.x.x`.
const FIRST_OCTET2: u32 = 128;
const OCTETS2: u32 = 123;
const SPACE: u32 = OCTETS2 * 65_536;

/// A loopback address no other test (in this process or, with
/// overwhelming odds, another) uses: a per-process random base plus a
/// counter, never `.0` or `.255` in the last octet.
pub fn fresh_ip() -> Ipv4Addr {
    static BASE: OnceLock<u32> = OnceLock::new();
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = *BASE.get_or_init(|| {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let seed = (u64::from(std::process::id()) << 32) ^ (nanos as u64);
        (splitmix(seed) % u64::from(SPACE)) as u32
    });
    loop {
        let n = (base + NEXT.fetch_add(1, Ordering::Relaxed)) % SPACE;
        let [_, _, c, d] = n.to_be_bytes();
        if d == 0 || d == 255 {
            continue;
        }
        return Ipv4Addr::new(127, (FIRST_OCTET2 + n / 65_536) as u8, c, d);
    }
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// `ip:port` as a socket address.
pub fn addr(ip: Ipv4Addr, port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(ip, port))
}

/// A NodePort (30000–32767) that no concurrent test picks: derived from a
/// fresh address, so two tests almost never share one, and a shared one is
/// harmless anyway since each test binds it on a node address of its own.
pub fn fresh_node_port() -> u16 {
    let [_, b, c, d] = fresh_ip().octets();
    let n = (u32::from(b) << 16) | (u32::from(c) << 8) | u32::from(d);
    30_000 + (n % 2_768) as u16
}

/// Puts the test's timeouts on a connected stream.
pub fn bounded(stream: TcpStream) -> io::Result<TcpStream> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Connects to `to` with every operation bounded.
pub fn connect(to: SocketAddr) -> io::Result<TcpStream> {
    bounded(TcpStream::connect_timeout(&to, CONNECT_TIMEOUT)?)
}

/// Connects to `to` from the source address `from` (any port): how a test
/// plays several client IPs, for session affinity.
pub fn connect_from(from: Ipv4Addr, to: SocketAddr) -> io::Result<TcpStream> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.bind(&SockAddr::from(addr(from, 0)))?;
    socket.connect_timeout(&SockAddr::from(to), CONNECT_TIMEOUT)?;
    bounded(socket.into())
}

/// Reads until EOF (or an error, or [`IO_TIMEOUT`] of silence).
pub fn read_to_end(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Connects and reads what the endpoint says until it closes: the name of
/// an `Endpoint::name` server.
pub fn fetch(to: SocketAddr) -> io::Result<String> {
    let mut stream = connect(to)?;
    text(read_to_end(&mut stream)?)
}

/// [`fetch`] from the source address `from`.
pub fn fetch_from(from: Ipv4Addr, to: SocketAddr) -> io::Result<String> {
    let mut stream = connect_from(from, to)?;
    text(read_to_end(&mut stream)?)
}

/// Sends `message`, half-closes, and checks the echo comes back whole.
pub fn echo(to: SocketAddr, message: &[u8]) -> io::Result<()> {
    let mut stream = connect(to)?;
    stream.write_all(message)?;
    stream.shutdown(Shutdown::Write)?;
    let back = read_to_end(&mut stream)?;
    if back == message {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "echo returned {:?}, sent {:?}",
            String::from_utf8_lossy(&back),
            String::from_utf8_lossy(message)
        )))
    }
}

/// `GET /` over HTTP/1.1 with `Connection: close`; the status line and
/// body of the answer.
pub fn http_get(to: SocketAddr) -> io::Result<(String, String)> {
    let mut stream = connect(to)?;
    let request = format!("GET / HTTP/1.1\r\nHost: {to}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes())?;
    let answer = text(read_to_end(&mut stream)?)?;
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .ok_or_else(|| io::Error::other(format!("not an HTTP answer: {answer:?}")))?;
    let status = head.lines().next().unwrap_or_default().to_owned();
    Ok((status, body.to_owned()))
}

/// The bytes as UTF-8, or an error naming them.
pub fn text(bytes: Vec<u8>) -> io::Result<String> {
    String::from_utf8(bytes).map_err(|e| io::Error::other(format!("not UTF-8: {e}")))
}

/// Retries `attempt` every few milliseconds until it succeeds; panics with
/// the last error past `deadline`. `what` names the wait in the panic.
pub fn eventually<T, E: std::fmt::Display>(
    what: &str,
    deadline: Duration,
    mut attempt: impl FnMut() -> Result<T, E>,
) -> T {
    let until = Instant::now() + deadline;
    loop {
        match attempt() {
            Ok(value) => return value,
            Err(e) if Instant::now() >= until => {
                panic!("{what}: still failing after {deadline:?}: {e}")
            }
            Err(_) => thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// True when `to` refuses connections (nothing listens there).
pub fn refuses(to: SocketAddr) -> bool {
    matches!(
        TcpStream::connect_timeout(&to, CONNECT_TIMEOUT),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused
    )
}

/// Closes `stream` with a reset (SO_LINGER 0) instead of a FIN.
pub fn reset(stream: TcpStream) {
    let _ = SockRef::from(&stream).set_linger(Some(Duration::ZERO));
    drop(stream);
}

/// An order-sensitive 64-bit hash of a byte stream that does not depend on
/// how the stream was cut into reads: both ends of a transfer compute it
/// and compare. Word-at-a-time, so a debug build still hashes hundreds of
/// MiB in a second or so.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamHash {
    state: u64,
    len: u64,
    pending: [u8; 8],
    npending: usize,
}

const PRIME: u64 = 0x0000_0100_0000_01b3;

// === impl StreamHash ===

impl StreamHash {
    pub fn new() -> StreamHash {
        StreamHash { state: 0xcbf2_9ce4_8422_2325, ..StreamHash::default() }
    }

    pub fn update(&mut self, mut bytes: &[u8]) {
        self.len += bytes.len() as u64;
        if self.npending > 0 {
            let take = (8 - self.npending).min(bytes.len());
            self.pending[self.npending..self.npending + take].copy_from_slice(&bytes[..take]);
            self.npending += take;
            bytes = &bytes[take..];
            if self.npending < 8 {
                return;
            }
            self.mix(u64::from_le_bytes(self.pending));
            self.npending = 0;
        }
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            self.mix(u64::from_le_bytes(word.try_into().unwrap()));
        }
        let rest = words.remainder();
        self.pending[..rest.len()].copy_from_slice(rest);
        self.npending = rest.len();
    }

    fn mix(&mut self, word: u64) {
        self.state = (self.state ^ word).wrapping_mul(PRIME).rotate_left(29);
    }

    /// The hash and the number of bytes hashed.
    pub fn finish(&self) -> (u64, u64) {
        let mut h = *self;
        for &b in &self.pending[..self.npending] {
            h.mix(u64::from(b));
        }
        h.mix(self.len);
        (splitmix(h.state), self.len)
    }
}

/// A deterministic pseudo-random byte stream (xorshift64*), so a transfer
/// is not a run of identical bytes a buggy copy could fake.
pub struct Pattern(u64);

// === impl Pattern ===

impl Pattern {
    pub fn new(seed: u64) -> Pattern {
        Pattern(splitmix(seed) | 1)
    }

    /// Fills `buf` (a multiple of 8 bytes long) with the next bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for word in buf.chunks_exact_mut(8) {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            word.copy_from_slice(&self.0.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
        }
    }
}

/// Sends `total` bytes of `Pattern::new(seed)` through `to` (an echo) while
/// reading the echo back; the hashes of what was sent and what came back.
pub fn stream_through(
    to: SocketAddr,
    seed: u64,
    total: u64,
) -> io::Result<((u64, u64), (u64, u64))> {
    const CHUNK: usize = 64 * 1024;
    let stream = connect(to)?;
    let mut writer = stream.try_clone()?;
    let sender = thread::spawn(move || -> io::Result<(u64, u64)> {
        let mut pattern = Pattern::new(seed);
        let mut hash = StreamHash::new();
        let mut buf = vec![0u8; CHUNK];
        let mut left = total;
        while left > 0 {
            let n = left.min(CHUNK as u64) as usize;
            pattern.fill(&mut buf);
            hash.update(&buf[..n]);
            writer.write_all(&buf[..n])?;
            left -= n as u64;
        }
        writer.shutdown(Shutdown::Write)?;
        Ok(hash.finish())
    });
    let mut reader = stream;
    let mut hash = StreamHash::new();
    let mut buf = vec![0u8; CHUNK];
    let received = loop {
        match reader.read(&mut buf) {
            Ok(0) => break Ok(hash.finish()),
            Ok(n) => hash.update(&buf[..n]),
            Err(e) => break Err(e),
        }
    };
    if received.is_err() {
        // Unblock the sender before joining it.
        let _ = reader.shutdown(Shutdown::Both);
    }
    let sent = sender.join().map_err(|_| io::Error::other("sender thread panicked"))??;
    Ok((sent, received?))
}
