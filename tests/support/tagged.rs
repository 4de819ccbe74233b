//! Echo endpoints that say who they are, for the reload and signal tests:
//! each greets a new connection with `NAME\n`, then echoes every byte, so
//! a client learns which endpoint it reached and still checks its bytes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use super::endpoint::Endpoint;
use super::manifests::{pod_at, simple_service};
use super::net::{self, Pattern, fresh_ip};

/// The ServicePort of every Service [`service_of`] writes.
pub const PORT: u16 = 8080;

/// How long a [`Named`] endpoint waits on a silent connection before it
/// gives up on it: longer than any test keeps a live connection idle.
pub const IDLE: Duration = Duration::from_secs(120);

/// A named echo server on a fresh loopback address; stops when dropped.
pub struct Named {
    pub name: String,
    pub endpoint: Endpoint,
}

// === impl Named ===

impl Named {
    /// Greets with `name` (also its Pod's name: a DNS label), then echoes.
    /// A connection may sit idle for up to [`IDLE`].
    pub fn echo(name: &str) -> Named {
        let greeting = format!("{name}\n");
        let endpoint = Endpoint::spawn(fresh_ip(), move |mut stream| {
            if stream.set_read_timeout(Some(IDLE)).is_err()
                || stream.write_all(greeting.as_bytes()).is_err()
            {
                return;
            }
            let mut reader = stream.try_clone().expect("clone");
            let _ = io::copy(&mut reader, &mut stream);
            let _ = stream.shutdown(Shutdown::Write);
        });
        Named { name: name.to_owned(), endpoint }
    }

    pub fn addr(&self) -> SocketAddr {
        self.endpoint.addr
    }

    /// Its Pod, labelled `app: APP`, exposing the port named `tcp`.
    pub fn pod(&self, app: &str) -> String {
        pod_at(&self.name, app, self.addr())
    }
}

/// A client connection through the proxy to a [`Named`] endpoint.
pub struct Conn {
    stream: TcpStream,
    /// The endpoint's name, from its greeting.
    pub name: String,
    exchanges: u64,
}

// === impl Conn ===

impl Conn {
    /// Connects to `to` and reads the greeting.
    pub fn open(to: SocketAddr) -> io::Result<Conn> {
        let mut stream = net::connect(to)?;
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while line.last() != Some(&b'\n') {
            match stream.read(&mut byte)? {
                0 => return Err(io::Error::other(format!("closed after greeting {line:?}"))),
                _ => line.push(byte[0]),
            }
        }
        line.pop();
        Ok(Conn { stream, name: net::text(line)?, exchanges: 0 })
    }

    /// Sends the next message of this connection (8 to 512 pseudo-random
    /// bytes) and checks the echo is exactly it.
    pub fn exchange(&mut self) -> io::Result<()> {
        let n = self.exchanges;
        self.exchanges += 1;
        let mut message = vec![0u8; 8 * (1 + (n as usize * 7) % 64)];
        Pattern::new(n ^ (u64::from(self.stream.local_addr()?.port()) << 32)).fill(&mut message);
        self.stream.write_all(&message)?;
        let mut back = vec![0u8; message.len()];
        self.stream.read_exact(&mut back)?;
        if back == message {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "exchange {n} with {}: echo differs from the {} bytes sent",
                self.name,
                message.len()
            )))
        }
    }

    /// Exchanges completed so far.
    pub fn exchanges(&self) -> u64 {
        self.exchanges
    }

    /// Half-closes and checks the endpoint then closes too, with nothing
    /// left unechoed: the connection ended cleanly, end to end.
    pub fn finish(mut self) -> io::Result<()> {
        self.stream.shutdown(Shutdown::Write)?;
        let rest = net::read_to_end(&mut self.stream)?;
        if rest.is_empty() {
            Ok(())
        } else {
            Err(io::Error::other(format!("{} stray bytes before EOF", rest.len())))
        }
    }

    /// The underlying socket.
    pub fn stream(&mut self) -> &mut TcpStream {
        &mut self.stream
    }
}

/// One short connection: open, one exchange, finish. The endpoint's name.
pub fn visit(to: SocketAddr) -> io::Result<String> {
    let mut conn = Conn::open(to)?;
    conn.exchange()?;
    let name = conn.name.clone();
    conn.finish()?;
    Ok(name)
}

/// [`visit`], as an error unless it reached `expected`: a readiness probe.
pub fn visit_expecting(to: SocketAddr, expected: &str) -> io::Result<()> {
    match visit(to)? {
        name if name == expected => Ok(()),
        name => Err(io::Error::other(format!("reached {name}, expected {expected}"))),
    }
}

/// Service `name` at `ip:PORT` selecting the Pods `app: NAME`, and the Pods
/// of `endpoints`.
pub fn service_of(name: &str, ip: Ipv4Addr, endpoints: &[&Named]) -> String {
    let mut yaml = simple_service(name, ip, PORT, true);
    for endpoint in endpoints {
        yaml.push_str(&endpoint.pod(name));
    }
    yaml
}

/// Opens new connections to `to` until one reaches `name`; how long that
/// took. Panics on a failed connection or past `deadline`.
pub fn wait_reaching(to: SocketAddr, name: &str, deadline: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let reached = visit(to).unwrap_or_else(|e| panic!("a new connection to {to} failed: {e}"));
        if reached == name {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < deadline,
            "{to} still reaches {reached}, not {name}, after {deadline:?}"
        );
        thread::sleep(Duration::from_millis(5));
    }
}

/// `count` new connections to `to`, every one reaching one of `names`.
pub fn assert_all_reach(to: SocketAddr, names: &[&str], count: usize) {
    for i in 0..count {
        let reached = visit(to).unwrap_or_else(|e| panic!("connection {i} to {to}: {e}"));
        assert!(
            names.contains(&reached.as_str()),
            "connection {i} to {to} reached {reached}, not one of {names:?}"
        );
    }
}
