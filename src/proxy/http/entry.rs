//! One request's line in the access log (`--http-access-log`), as JSON:
//! when it arrived, from whom, what it asked, which Service port and
//! endpoint served it, the status the client got (the proxy's own answers
//! with their reason), the body bytes each way and how long it took, from
//! its head in to its response's end. Only built when the log is on.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper::{Request, header};
use serde::Serialize;

use crate::access::AccessLog;
use crate::metrics::PortStats;

/// A request's line, filled in as the request goes.
#[derive(Debug)]
pub struct Entry {
    log: Arc<AccessLog>,
    time: SystemTime,
    client: SocketAddr,
    protocol: &'static str,
    method: String,
    authority: String,
    path: String,
    /// Body bytes from the client, counted as they pass.
    received: Arc<AtomicU64>,
    /// Body bytes to the client.
    pub sent: u64,
    pub endpoint: Option<SocketAddr>,
    /// Why the proxy answered itself.
    pub error: Option<&'static str>,
}

/// The line as written.
#[derive(Serialize)]
struct Line<'a> {
    time: String,
    client: String,
    protocol: &'a str,
    method: &'a str,
    authority: &'a str,
    path: &'a str,
    namespace: &'a str,
    service: &'a str,
    port: &'a str,
    status: u16,
    endpoint: Option<String>,
    error: Option<&'a str>,
    received: u64,
    sent: u64,
    duration: f64,
}

/// A request body counting its bytes into an [`Entry`].
pub struct Counted<B> {
    body: B,
    count: Arc<AtomicU64>,
}

// === impl Entry ===

impl Entry {
    /// The line of `request`, from `client`, arrived now.
    pub fn new(log: &Arc<AccessLog>, client: SocketAddr, request: &Request<Incoming>) -> Self {
        let uri = request.uri();
        let host = || request.headers().get(header::HOST).and_then(|h| h.to_str().ok());
        let authority = uri.authority().map(|a| a.as_str()).or_else(host).unwrap_or_default();
        Self {
            log: log.clone(),
            time: SystemTime::now(),
            client,
            protocol: match request.version() {
                hyper::Version::HTTP_2 => "HTTP/2",
                hyper::Version::HTTP_10 => "HTTP/1.0",
                _ => "HTTP/1.1",
            },
            method: request.method().as_str().to_owned(),
            authority: authority.to_owned(),
            path: uri.path_and_query().map_or("/", |p| p.as_str()).to_owned(),
            received: Arc::default(),
            sent: 0,
            endpoint: None,
            error: None,
        }
    }

    /// `body`, its bytes counted into this line.
    pub fn count(&self, body: Incoming) -> Counted<Incoming> {
        Counted { body, count: self.received.clone() }
    }

    /// Writes the line: the response with `status` ended after `took`,
    /// counted into `stats`' Service port.
    pub fn write(&self, stats: &PortStats, status: u16, took: Duration) {
        let line = Line {
            time: humantime::format_rfc3339_millis(self.time).to_string(),
            client: self.client.to_string(),
            protocol: self.protocol,
            method: &self.method,
            authority: &self.authority,
            path: &self.path,
            namespace: &stats.key.service.namespace,
            service: &stats.key.service.name,
            port: &stats.key.port,
            status,
            endpoint: self.endpoint.map(|e| e.to_string()),
            error: self.error,
            received: self.received.load(Ordering::Relaxed),
            sent: self.sent,
            duration: took.as_secs_f64(),
        };
        if let Ok(mut text) = serde_json::to_vec(&line) {
            text.push(b'\n');
            self.log.push(text);
        }
    }
}

// === impl Counted ===

impl<B: HttpBody<Data = Bytes> + Unpin> HttpBody for Counted<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.count.fetch_add(data.len() as u64, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
