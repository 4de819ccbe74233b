//! A gRPC pod and its client for the HTTP-mode tests, both real tonic:
//! the pod is tonic's server (HTTP/2 with prior knowledge, as the proxy
//! speaks to `appProtocol: grpc` pods), the client a tonic channel. The
//! service, `test.Echo`, is written by hand with prost messages derived
//! by hand, so the tests need no protoc and no build script.
//!
//! `test.Echo` has three methods, each answering with the pod's name:
//! - `Say` (unary): one [`Reply`] with `seq` 0 and the request's padding;
//! - `Count` (server streaming): `count` replies, `seq` 0, 1, ..., each
//!   carrying `size` bytes of padding, then the status OK;
//! - `Chat` (bidirectional streaming): a reply to each request as it
//!   arrives, its `seq` the request's `count`, then OK when the client's
//!   stream ends.
//!
//! A [`Hello`] with `fail` set ends either call with [`failure`]: `Say`
//! at once (a trailers-only response), `Count` after its replies (the
//! status in trailers after the messages).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt as _;
use hyper::http::uri::PathAndQuery;
use tokio::runtime::Runtime;
use tonic::metadata::MetadataValue;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint, Server};
use tonic::{Code, Status, Streaming};
use tonic_prost::ProstCodec;

/// The unary method's path.
pub const SAY: &str = "/test.Echo/Say";
/// The server-streaming method's path.
pub const COUNT: &str = "/test.Echo/Count";
/// The bidirectional-streaming method's path.
pub const CHAT: &str = "/test.Echo/Chat";

/// The failure a pod answers a [`Hello`] with `fail` set with.
pub const FAILURE_CODE: Code = Code::NotFound;
pub const FAILURE_MESSAGE: &str = "no such thing";
/// Its metadata: one ASCII entry and one binary entry (`-bin`, sent
/// base64-encoded), so both kinds are seen to travel.
pub const FAILURE_REASON: (&str, &str) = ("x-reason", "test-said-so");
pub const FAILURE_DETAIL: (&str, &[u8]) = ("x-detail-bin", &[0, 1, 2, 0xfe, 0xff]);

/// A request to `test.Echo`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Hello {
    #[prost(string, tag = "1")]
    pub text: String,
    /// How many replies `Count` streams.
    #[prost(uint32, tag = "2")]
    pub count: u32,
    /// Bytes of padding in each reply of `Count`.
    #[prost(uint32, tag = "3")]
    pub size: u32,
    /// End the call with [`failure`].
    #[prost(bool, tag = "4")]
    pub fail: bool,
    /// Bytes `Say` sends back as they came.
    #[prost(bytes = "vec", tag = "5")]
    pub padding: Vec<u8>,
}

/// An answer of `test.Echo`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Reply {
    /// The name of the pod that answered.
    #[prost(string, tag = "1")]
    pub pod: String,
    /// The request's text.
    #[prost(string, tag = "2")]
    pub text: String,
    /// The reply's place in its stream.
    #[prost(uint32, tag = "3")]
    pub seq: u32,
    #[prost(bytes = "vec", tag = "4")]
    pub padding: Vec<u8>,
}

/// A running gRPC pod; stops when dropped.
pub struct GrpcPod {
    pub addr: SocketAddr,
    /// `Count` streams not dropped yet.
    streams: Arc<AtomicUsize>,
    _runtime: Runtime,
}

/// What every call of a pod shares.
#[derive(Clone)]
struct Pod {
    name: Arc<str>,
    streams: Arc<AtomicUsize>,
}

// === impl GrpcPod ===

impl GrpcPod {
    /// Serves `test.Echo` on `ip:<any port>`; every reply names `name`.
    pub fn start(ip: Ipv4Addr, name: &str) -> GrpcPod {
        let runtime = runtime();
        let listener =
            runtime.block_on(tokio::net::TcpListener::bind((ip, 0))).expect("bind the gRPC pod");
        let addr = listener.local_addr().expect("addr");
        let streams = Arc::new(AtomicUsize::new(0));
        let pod = Pod { name: name.into(), streams: streams.clone() };
        let router = tower::service_fn(move |request| {
            let pod = pod.clone();
            async move { Ok::<_, Infallible>(route(pod, request).await) }
        });
        let server = Server::builder().serve_with_incoming(router, TcpIncoming::from(listener));
        runtime.spawn(server);
        GrpcPod { addr, streams, _runtime: runtime }
    }

    /// `Count` streams the pod holds: begun and not yet dropped (ended,
    /// or cancelled by a reset of their HTTP/2 stream).
    pub fn live_streams(&self) -> usize {
        self.streams.load(Ordering::Relaxed)
    }
}

/// A small runtime for a pod, or for a test's client calls.
pub fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime")
}

type HttpRequest = hyper::Request<tonic::body::Body>;
type HttpResponse = hyper::Response<tonic::body::Body>;

/// What generated code's router does: the method by path, tonic's
/// `server::Grpc` for the framing, codec and status.
async fn route(pod: Pod, request: HttpRequest) -> HttpResponse {
    let mut grpc = tonic::server::Grpc::new(ProstCodec::<Reply, Hello>::default());
    match request.uri().path() {
        SAY => grpc.unary(tower::service_fn(move |hello| say(pod.clone(), hello)), request).await,
        COUNT => {
            let count = tower::service_fn(move |hello| count(pod.clone(), hello));
            grpc.server_streaming(count, request).await
        }
        CHAT => {
            grpc.streaming(tower::service_fn(move |hellos| chat(pod.clone(), hellos)), request)
                .await
        }
        _ => Status::unimplemented("test.Echo has Say, Count and Chat").into_http(),
    }
}

async fn say(pod: Pod, request: tonic::Request<Hello>) -> Result<tonic::Response<Reply>, Status> {
    let hello = request.into_inner();
    if hello.fail {
        return Err(failure());
    }
    let reply =
        Reply { pod: pod.name.to_string(), text: hello.text, seq: 0, padding: hello.padding };
    Ok(tonic::Response::new(reply))
}

type Replies = futures_util::stream::BoxStream<'static, Result<Reply, Status>>;

/// `count` replies made as they are sent (a long stream costs no memory),
/// then [`failure`] if asked; counted in `streams` until dropped.
async fn count(
    pod: Pod,
    request: tonic::Request<Hello>,
) -> Result<tonic::Response<Replies>, Status> {
    let hello = request.into_inner();
    let live = Live::new(pod.streams.clone());
    let name = pod.name.to_string();
    let replies = futures_util::stream::iter(0..hello.count).map(move |seq| {
        let _held = &live; // the stream owns the count: dropped with it
        let padding = vec![seq as u8; hello.size as usize];
        Ok(Reply { pod: name.clone(), text: hello.text.clone(), seq, padding })
    });
    let end = hello.fail.then(failure).map(Err);
    Ok(tonic::Response::new(replies.chain(futures_util::stream::iter(end)).boxed()))
}

/// One count in a gauge for as long as it lives.
struct Live(Arc<AtomicUsize>);

// === impl Live ===

impl Live {
    fn new(gauge: Arc<AtomicUsize>) -> Live {
        gauge.fetch_add(1, Ordering::Relaxed);
        Live(gauge)
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

type Chat = futures_util::stream::BoxStream<'static, Result<Reply, Status>>;

async fn chat(
    pod: Pod,
    request: tonic::Request<Streaming<Hello>>,
) -> Result<tonic::Response<Chat>, Status> {
    let replies = request.into_inner().map(move |hello| {
        let Hello { text, count, size, .. } = hello?;
        let padding = vec![count as u8; size as usize];
        Ok(Reply { pod: pod.name.to_string(), text, seq: count, padding })
    });
    Ok(tonic::Response::new(replies.boxed()))
}

/// NOT_FOUND "no such thing", with [`FAILURE_REASON`] and
/// [`FAILURE_DETAIL`] as metadata.
pub fn failure() -> Status {
    let mut status = Status::new(FAILURE_CODE, FAILURE_MESSAGE);
    let (key, value) = FAILURE_REASON;
    status.metadata_mut().insert(key, value.parse().expect("ASCII metadata"));
    let (key, value) = FAILURE_DETAIL;
    status.metadata_mut().insert_bin(key, MetadataValue::from_bytes(value));
    status
}

/// A tonic channel to `to`: one HTTP/2 connection (prior knowledge),
/// every call on it bounded.
pub async fn channel(to: SocketAddr) -> Result<Channel, tonic::transport::Error> {
    Endpoint::from_shared(format!("http://{to}"))?
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(10))
        .connect()
        .await
}

/// A `test.Echo` client on a channel, as generated code would write it.
#[derive(Clone)]
pub struct EchoClient {
    grpc: tonic::client::Grpc<Channel>,
}

// === impl EchoClient ===

impl EchoClient {
    pub fn new(channel: Channel) -> EchoClient {
        EchoClient { grpc: tonic::client::Grpc::new(channel) }
    }

    /// The unary `Say`.
    pub async fn say(&mut self, hello: Hello) -> Result<tonic::Response<Reply>, Status> {
        self.ready().await?;
        let path = PathAndQuery::from_static(SAY);
        self.grpc.unary(tonic::Request::new(hello), path, ProstCodec::default()).await
    }

    /// The server-streaming `Count`.
    pub async fn count(
        &mut self,
        hello: Hello,
    ) -> Result<tonic::Response<Streaming<Reply>>, Status> {
        self.ready().await?;
        let path = PathAndQuery::from_static(COUNT);
        self.grpc.server_streaming(tonic::Request::new(hello), path, ProstCodec::default()).await
    }

    /// The bidirectional `Chat`: `hellos` go out as the stream yields
    /// them; the replies come back as the pod sends them.
    pub async fn chat(
        &mut self,
        hellos: impl futures_util::Stream<Item = Hello> + Send + 'static,
    ) -> Result<tonic::Response<Streaming<Reply>>, Status> {
        self.ready().await?;
        let path = PathAndQuery::from_static(CHAT);
        self.grpc.streaming(tonic::Request::new(hellos), path, ProstCodec::default()).await
    }

    async fn ready(&mut self) -> Result<(), Status> {
        self.grpc.ready().await.map_err(|e| Status::unknown(format!("channel not ready: {e}")))
    }
}

/// A `Say` request with `text`.
pub fn hello(text: &str) -> Hello {
    Hello { text: text.to_owned(), ..Hello::default() }
}
