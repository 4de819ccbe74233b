//! An HTTP endpoint for the HTTP-mode tests: hyper serving HTTP/1.1 and
//! h2c on one socket (as the proxy does), answering every request with its
//! name, the protocol it was spoken to in, and the request's head, so a
//! test sees what the proxy forwarded.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::runtime::Runtime;

/// A running HTTP endpoint; stops when dropped.
pub struct HttpEndpoint {
    pub addr: SocketAddr,
    served: Arc<AtomicUsize>,
    _runtime: Runtime,
}

impl HttpEndpoint {
    /// Serves on `ip:<any port>`; every answer starts with `name`.
    pub fn start(ip: Ipv4Addr, name: &str) -> HttpEndpoint {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind((ip, 0)))
            .expect("bind the HTTP endpoint");
        let addr = listener.local_addr().expect("addr");
        let name = name.to_owned();
        let served = Arc::new(AtomicUsize::new(0));
        let count = served.clone();
        runtime.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (name, count) = (name.clone(), count.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        count.fetch_add(1, Ordering::Relaxed);
                        answer(name.clone(), request)
                    });
                    let builder = auto::Builder::new(TokioExecutor::new());
                    let _ = builder.serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
        HttpEndpoint { addr, served, _runtime: runtime }
    }

    /// Requests answered so far.
    pub fn served(&self) -> usize {
        self.served.load(Ordering::Relaxed)
    }
}

/// `NAME\n`, then `version: ...`, `method: ...`, `uri: ...` and every
/// header as `name: value`, one per line; the request body is read frame
/// by frame (never held whole) and its length and FNV-1a hash written as
/// `body: N` and `hash: H`. `/slow/MS` answers after MS milliseconds;
/// `/bytes/N` answers N bytes, streamed.
async fn answer(name: String, request: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let path = request.uri().path().to_owned();
    if let Some(ms) = path.strip_prefix("/slow/").and_then(|m| m.parse().ok()) {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
    if let Some(n) = path.strip_prefix("/bytes/").and_then(|n| n.parse::<u64>().ok()) {
        return Ok(Response::new(zeros(n)));
    }
    let mut text = format!(
        "{name}\nversion: {:?}\nmethod: {}\nuri: {}\n",
        request.version(),
        request.method(),
        request.uri()
    );
    for (key, value) in request.headers() {
        text.push_str(&format!("{key}: {}\n", value.to_str().unwrap_or("?")));
    }
    let (mut length, mut hash) = (0u64, FNV_OFFSET);
    let mut body = request.into_body();
    while let Some(Ok(frame)) = body.frame().await {
        if let Ok(data) = frame.into_data() {
            length += data.len() as u64;
            hash = fnv(hash, &data);
        }
    }
    text.push_str(&format!("body: {length}\nhash: {hash:016x}\n"));
    Ok(Response::new(Full::new(Bytes::from(text)).map_err(|never| match never {}).boxed()))
}

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// `n` zero bytes, 64 KiB at a time.
fn zeros(n: u64) -> Body {
    let chunk = Bytes::from(vec![0u8; 64 * 1024]);
    let frames = futures_util::stream::unfold(n, move |left| {
        let chunk = chunk.clone();
        async move {
            (left > 0).then(|| {
                let take = left.min(chunk.len() as u64);
                let data = chunk.slice(..take as usize);
                (Ok::<_, Infallible>(hyper::body::Frame::data(data)), left - take)
            })
        }
    });
    http_body_util::StreamBody::new(frames).boxed()
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a over `bytes`, from `hash`.
pub fn fnv(mut hash: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// FNV-1a of `bytes`, as the endpoint writes it.
pub fn hash_of(bytes: &[u8]) -> String {
    format!("{:016x}", fnv(FNV_OFFSET, bytes))
}

/// The first line of an answer: the endpoint's name.
pub fn name_of(answer: &str) -> &str {
    answer.lines().next().unwrap_or_default()
}

/// The value of `field` in an answer (`version`, a header name, ...).
pub fn field<'a>(answer: &'a str, field: &str) -> Option<&'a str> {
    answer.lines().find_map(|l| l.strip_prefix(field)?.strip_prefix(": "))
}
