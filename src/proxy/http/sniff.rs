//! Which HTTP a client speaks, told from its first bytes before hyper
//! reads them, so its connection is served by hyper's HTTP/1.1 or HTTP/2
//! server directly. hyper-util's auto server tells them apart by reading
//! the first 24 bytes and replaying them, which makes hyper's first read
//! grow its buffer from 8 to 16 KiB and copy it: a third of the memory an
//! idle kept-alive connection touches. Peeking costs no buffer.

use std::io;

use tokio::net::TcpStream;

/// What a client's first bytes say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Speaks {
    Http1,
    /// The HTTP/2 preface (`PRI * HTTP/2.0`): h2c with prior knowledge.
    H2,
    /// Too few bytes to tell (`P` could start `POST` or `PRI`): hyper-util's
    /// auto server decides.
    Unsure,
}

/// The client's protocol, once its first bytes arrived; `None` when it
/// closed without sending any.
pub async fn speaks(stream: &TcpStream) -> io::Result<Option<Speaks>> {
    let mut first = [0; 4];
    let n = stream.peek(&mut first).await?;
    Ok(match &first[..n] {
        [] => None,
        b"PRI " => Some(Speaks::H2),
        start if b"PRI ".starts_with(start) => Some(Speaks::Unsure),
        _ => Some(Speaks::Http1),
    })
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt as _;
    use tokio::net::{TcpListener, TcpStream};

    use super::{Speaks, speaks};

    /// What `speaks` says of a client that sent `first`.
    async fn of(first: &[u8]) -> Option<Speaks> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        client.write_all(first).await.unwrap();
        if first.is_empty() {
            drop(client);
        }
        speaks(&server).await.unwrap()
    }

    #[tokio::test]
    async fn the_first_bytes_tell_http1_from_h2_and_nothing_is_consumed() {
        assert_eq!(of(b"GET / HTTP/1.1\r\n").await, Some(Speaks::Http1));
        assert_eq!(of(b"POST / HTTP/1.1\r\n").await, Some(Speaks::Http1));
        assert_eq!(of(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await, Some(Speaks::H2));
        assert_eq!(of(b"PR").await, Some(Speaks::Unsure));
        assert_eq!(of(b"").await, None);
    }
}
