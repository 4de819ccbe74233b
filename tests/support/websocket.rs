//! A WebSocket pod and its client for the HTTP-mode tests, both real
//! tungstenite: the pod accepts the handshake on a plain TCP listener,
//! names itself in an `x-pod` header of its 101, speaks first (a welcome
//! naming it, as chat and push servers do: bytes after the 101 before the
//! client says anything), echoes every text and binary message, and
//! answers the close handshake; the client connects a TCP stream of its
//! own (a frontend), does the handshake on it and reads the welcome.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use tokio::net::TcpStream;
use tokio::runtime::Runtime;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Error, Message};

/// The header of the pod's 101 that names it.
pub const POD_HEADER: &str = "x-pod";

/// The pod's first message, before its name.
pub const WELCOME: &str = "welcome to ";

/// A running WebSocket echo pod; stops when dropped.
pub struct WebSocketPod {
    pub addr: SocketAddr,
    /// Sessions that ended with the client's Close frame answered.
    closed: Arc<AtomicUsize>,
    _runtime: Runtime,
}

// === impl WebSocketPod ===

impl WebSocketPod {
    /// Serves on `ip:<any port>`; every 101 names `name`.
    pub fn start(ip: Ipv4Addr, name: &str) -> WebSocketPod {
        let runtime = super::grpc::runtime();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind((ip, 0)))
            .expect("bind the WebSocket pod");
        let addr = listener.local_addr().expect("addr");
        let name = HeaderValue::from_str(name).expect("a header value");
        let closed = Arc::new(AtomicUsize::new(0));
        let count = closed.clone();
        runtime.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (name, count) = (name.clone(), count.clone());
                tokio::spawn(async move {
                    if let Ok(true) = session(stream, name).await {
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        });
        WebSocketPod { addr, closed, _runtime: runtime }
    }

    /// How many sessions ended with a clean close handshake.
    pub fn closed_cleanly(&self) -> usize {
        self.closed.load(Ordering::Relaxed)
    }
}

/// One client: the handshake, the welcome, then every data message
/// echoed until the client's Close (tungstenite answers it) and the end of
/// the stream. True when the session ended that way.
async fn session(stream: TcpStream, name: HeaderValue) -> Result<bool, Error> {
    let welcome = format!("{WELCOME}{}", name.to_str().unwrap_or_default());
    // The signature is tungstenite's `Callback`: its error is a response.
    #[allow(clippy::result_large_err)]
    let named = |_: &Request, mut response: Response| {
        response.headers_mut().insert(POD_HEADER, name);
        Ok(response)
    };
    let mut socket = tokio_tungstenite::accept_hdr_async(stream, named).await?;
    socket.send(Message::text(welcome)).await?;
    let mut closed = false;
    while let Some(message) = socket.next().await {
        match message? {
            echo @ (Message::Text(_) | Message::Binary(_)) => socket.send(echo).await?,
            Message::Close(_) => closed = true,
            _ => {}
        }
    }
    Ok(closed)
}

/// A client session through a frontend.
pub type Client = WebSocketStream<TcpStream>;

/// Connects to `to`, opens a WebSocket on `/chat` and reads the welcome:
/// the session and the name of the pod that accepted it. An error unless
/// the 101's `x-pod` and the welcome name the same pod.
pub async fn connect(to: SocketAddr) -> Result<(Client, String), Error> {
    let connect = tokio::time::timeout(Duration::from_secs(3), TcpStream::connect(to));
    let stream = connect.await.map_err(|_| timed_out())??;
    stream.set_nodelay(true)?;
    let handshake = tokio_tungstenite::client_async("ws://web.default/chat", stream);
    let (mut client, response) = tokio::time::timeout(Duration::from_secs(10), handshake)
        .await
        .map_err(|_| timed_out())??;
    let pod = response.headers().get(POD_HEADER).and_then(|v| v.to_str().ok());
    let pod = pod.unwrap_or_default().to_owned();
    match next(&mut client).await? {
        Message::Text(welcome) if welcome.as_str() == format!("{WELCOME}{pod}") => {
            Ok((client, pod))
        }
        other => Err(Error::Io(std::io::Error::other(format!(
            "{POD_HEADER}: {pod:?}, then not its welcome: {other:?}"
        )))),
    }
}

/// The next message on `client` within 10 s.
pub async fn next(client: &mut Client) -> Result<Message, Error> {
    match tokio::time::timeout(Duration::from_secs(10), client.next()).await {
        Ok(Some(message)) => message,
        Ok(None) => Err(Error::ConnectionClosed),
        Err(_) => Err(timed_out()),
    }
}

fn timed_out() -> Error {
    Error::Io(std::io::ErrorKind::TimedOut.into())
}
