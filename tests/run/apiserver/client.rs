//! A minimal blocking HTTP/1.1 client for testing the fake API server from
//! the outside, on plain TCP or rustls: one request per connection, chunked
//! bodies decoded as they arrive, so a WATCH reads event by event. Every
//! read is bounded by a deadline.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use serde_json::Value;

/// How long any one exchange may take.
pub const DEADLINE: Duration = Duration::from_secs(5);

/// Where to connect and how.
pub struct Client {
    addr: SocketAddr,
    token: Option<String>,
    tls: Option<Arc<ClientConfig>>,
}

/// A response with its body read whole.
#[derive(Debug)]
pub struct Reply {
    pub code: u16,
    pub content_type: String,
    pub body: Value,
}

/// A response being read: a WATCH stream.
pub struct Stream {
    reader: BufReader<Box<dyn Conn>>,
    pub code: u16,
    chunked: bool,
    pending: Vec<u8>,
    done: bool,
}

/// How a stream ended.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// The terminating chunk: the server closed the watch.
    Clean,
    /// EOF or an error before it: the connection was cut.
    Cut,
}

trait Conn: Read + Write + Send {
    fn set_timeout(&self, timeout: Duration);
}

// === impl Client ===

impl Client {
    pub fn plain(addr: SocketAddr) -> Client {
        Client { addr, token: None, tls: None }
    }

    /// HTTPS trusting only `ca_pem`.
    pub fn tls(addr: SocketAddr, ca_pem: &str) -> Client {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(cert.expect("a PEM certificate")).expect("a CA certificate");
        }
        #[allow(deprecated)] // ring, as the server: see support/apiserver/tls.rs
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Client { addr, token: None, tls: Some(Arc::new(config)) }
    }

    pub fn with_token(mut self, token: &str) -> Client {
        self.token = Some(token.to_owned());
        self
    }

    /// `GET target`, read to the end; the body parsed as JSON.
    pub fn get(&self, target: &str) -> Reply {
        self.request("GET", target)
    }

    pub fn request(&self, method: &str, target: &str) -> Reply {
        let mut stream = self.open(method, target).unwrap_or_else(|e| panic!("{target}: {e}"));
        let content_type = stream.content_type.clone();
        let mut body = Vec::new();
        while let Some(line) = stream.stream.raw_line(Instant::now() + DEADLINE) {
            body.extend(line);
        }
        let body = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("{target}: body is not JSON ({e}): {body:?}"));
        Reply { code: stream.stream.code, content_type, body }
    }

    /// `GET target` with the body left to read as a stream.
    pub fn watch(&self, target: &str) -> Stream {
        let opened = self.open("GET", target).unwrap_or_else(|e| panic!("{target}: {e}"));
        assert_eq!(opened.content_type, "application/json", "{target}");
        opened.stream
    }

    /// Whether a TCP connection to the server is accepted now.
    pub fn connects(&self) -> bool {
        TcpStream::connect_timeout(&self.addr, DEADLINE).is_ok()
    }

    fn open(&self, method: &str, target: &str) -> io::Result<Opened> {
        let tcp = TcpStream::connect_timeout(&self.addr, DEADLINE)?;
        let mut conn: Box<dyn Conn> = match &self.tls {
            None => Box::new(tcp),
            Some(config) => {
                let name = ServerName::from(self.addr.ip());
                let tls =
                    ClientConnection::new(Arc::clone(config), name).map_err(io::Error::other)?;
                Box::new(StreamOwned::new(tls, tcp))
            }
        };
        conn.set_timeout(DEADLINE);
        let auth = self.token.as_ref().map(|t| format!("Authorization: Bearer {t}\r\n"));
        let head = format!(
            "{method} {target} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\n{}Connection: close\r\n\r\n",
            self.addr,
            auth.unwrap_or_default()
        );
        conn.write_all(head.as_bytes())?;
        conn.flush()?;
        Opened::read_head(BufReader::new(conn))
    }
}

struct Opened {
    stream: Stream,
    content_type: String,
}

impl Opened {
    fn read_head(mut reader: BufReader<Box<dyn Conn>>) -> io::Result<Opened> {
        let mut status = String::new();
        reader.read_line(&mut status)?;
        let code = status.split_whitespace().nth(1).and_then(|c| c.parse().ok());
        let code = code.ok_or_else(|| io::Error::other(format!("bad status line {status:?}")))?;
        let (mut chunked, mut content_type) = (false, String::new());
        loop {
            let mut line = String::new();
            reader.read_line(&mut line)?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').unwrap_or((line, ""));
            match name.to_ascii_lowercase().as_str() {
                "transfer-encoding" => chunked = value.trim().eq_ignore_ascii_case("chunked"),
                "content-type" => content_type = value.trim().to_owned(),
                _ => {}
            }
        }
        let stream = Stream { reader, code, chunked, pending: Vec::new(), done: false };
        Ok(Opened { stream, content_type })
    }
}

// === impl Stream ===

impl Stream {
    /// The next event, `None` at the end of the stream; panics when none
    /// comes before `within`.
    pub fn next(&mut self, within: Duration) -> Option<Value> {
        let line = self.raw_line(Instant::now() + within)?;
        Some(serde_json::from_slice(&line).unwrap_or_else(|e| panic!("event {line:?}: {e}")))
    }

    /// The next event that is not a BOOKMARK.
    pub fn next_change(&mut self, within: Duration) -> Option<Value> {
        let until = Instant::now() + within;
        loop {
            let event = self.next(until.saturating_duration_since(Instant::now()))?;
            if event["type"] != "BOOKMARK" {
                return Some(event);
            }
        }
    }

    /// Reads to the end of the stream (panics past `within`) and says how
    /// it ended.
    pub fn end(&mut self, within: Duration) -> End {
        let until = Instant::now() + within;
        loop {
            match self.fill(until) {
                Ok(true) => self.pending.clear(),
                Ok(false) => return End::Clean,
                Err(e) if is_timeout(&e) => panic!("the stream did not end within {within:?}"),
                Err(_) => return End::Cut,
            }
        }
    }

    /// The next line of the body (without its newline), or the rest of a
    /// body that does not end in one; `None` at its end.
    fn raw_line(&mut self, until: Instant) -> Option<Vec<u8>> {
        loop {
            if let Some(at) = self.pending.iter().position(|b| *b == b'\n') {
                let line = self.pending.drain(..=at).take(at).collect();
                return Some(line);
            }
            match self.fill(until) {
                Ok(true) => {}
                Ok(false) if self.pending.is_empty() => return None,
                Ok(false) => return Some(std::mem::take(&mut self.pending)),
                Err(e) if is_timeout(&e) => panic!("no complete line before the deadline"),
                Err(_) => return None,
            }
        }
    }

    /// Reads more of the body into `pending`: false at its clean end; an
    /// error when the connection was cut or the deadline passed.
    fn fill(&mut self, until: Instant) -> io::Result<bool> {
        if self.done {
            return Ok(false);
        }
        let left = until.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
        self.reader.get_ref().set_timeout(left);
        if !self.chunked {
            let mut buf = [0; 64 * 1024];
            let n = self.reader.read(&mut buf)?;
            self.pending.extend_from_slice(&buf[..n]);
            self.done = n == 0;
            return Ok(n > 0);
        }
        let mut size = String::new();
        if self.reader.read_line(&mut size)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let size = usize::from_str_radix(size.trim(), 16).map_err(io::Error::other)?;
        let mut chunk = vec![0; size + 2];
        self.reader.read_exact(&mut chunk)?;
        chunk.truncate(size);
        self.pending.extend(chunk);
        self.done = size == 0;
        Ok(size > 0)
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

impl Conn for TcpStream {
    fn set_timeout(&self, timeout: Duration) {
        let _ = self.set_read_timeout(Some(timeout));
        let _ = self.set_write_timeout(Some(timeout));
    }
}

impl Conn for StreamOwned<ClientConnection, TcpStream> {
    fn set_timeout(&self, timeout: Duration) {
        self.sock.set_timeout(timeout);
    }
}
