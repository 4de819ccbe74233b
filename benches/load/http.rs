//! The client side of one HTTP/1.1 exchange with the endpoints (through a
//! proxy): write a request, read the response head, drain the body by its
//! Content-Length. Only what the bench's own endpoints send is understood.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::backend::find_head_end;

/// Bound on one connect, and on one whole exchange.
pub const TIMEOUT: Duration = Duration::from_secs(2);

/// What the response head said.
#[derive(Clone, Copy, Debug)]
pub struct Head {
    pub status: u16,
    pub length: usize,
    /// The `N` of `X-Backend: bN`.
    pub backend: Option<u8>,
}

/// `GET path`, keep-alive or `Connection: close`.
pub fn request(path: &str, close: bool) -> Vec<u8> {
    let connection = if close { "Connection: close\r\n" } else { "" };
    format!("GET {path} HTTP/1.1\r\nHost: load\r\n{connection}\r\n").into_bytes()
}

/// A TCP connection with Nagle off, within [`TIMEOUT`].
pub async fn connect(to: SocketAddr) -> io::Result<TcpStream> {
    let stream = tokio::time::timeout(TIMEOUT, TcpStream::connect(to))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Writes `request` and reads one whole response; `scratch` is the read
/// buffer (its size bounds the head). The body is read and dropped.
pub async fn exchange(
    stream: &mut TcpStream,
    request: &[u8],
    scratch: &mut [u8],
) -> io::Result<Head> {
    stream.write_all(request).await?;
    let mut got = 0;
    let end = loop {
        if got == scratch.len() {
            return Err(io::Error::other("response head too long"));
        }
        let n = stream.read(&mut scratch[got..]).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        got += n;
        if let Some(end) = find_head_end(&scratch[..got]) {
            break end;
        }
    };
    let head = parse_head(&scratch[..end])?;
    let mut body = got - end;
    if body > head.length {
        return Err(io::Error::other("more bytes than the Content-Length"));
    }
    while body < head.length {
        let want = (head.length - body).min(scratch.len());
        let n = stream.read(&mut scratch[..want]).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        body += n;
    }
    Ok(head)
}

/// Reads until the peer's FIN; an error if any byte comes first.
pub async fn expect_eof(stream: &mut TcpStream, scratch: &mut [u8]) -> io::Result<()> {
    match stream.read(scratch).await? {
        0 => Ok(()),
        _ => Err(io::Error::other("bytes after the response")),
    }
}

/// One `GET path` on a new connection with `Connection: close`: the head
/// and the whole body, read to the FIN, within [`TIMEOUT`].
pub async fn fetch(to: SocketAddr, path: &str) -> io::Result<(Head, Vec<u8>)> {
    let work = async {
        let mut stream = connect(to).await?;
        stream.write_all(&request(path, true)).await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        let end = find_head_end(&answer).ok_or_else(|| io::Error::other("no response head"))?;
        let head = parse_head(&answer[..end])?;
        Ok((head, answer.split_off(end)))
    };
    tokio::time::timeout(TIMEOUT, work)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no full answer"))?
}

fn parse_head(head: &[u8]) -> io::Result<Head> {
    let bad = || io::Error::other(format!("bad response head {:?}", String::from_utf8_lossy(head)));
    let text = std::str::from_utf8(head).map_err(|_| bad())?;
    let mut lines = text.split("\r\n");
    let status = lines.next().and_then(|l| l.split_whitespace().nth(1)?.parse().ok());
    let mut parsed = Head { status: status.ok_or_else(bad)?, length: 0, backend: None };
    for (name, value) in lines.filter_map(|l| l.split_once(':')) {
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            parsed.length = value.parse().map_err(|_| bad())?;
        } else if name.eq_ignore_ascii_case("x-backend") {
            parsed.backend = value.strip_prefix('b').and_then(|n| n.parse().ok());
        }
    }
    Ok(parsed)
}
