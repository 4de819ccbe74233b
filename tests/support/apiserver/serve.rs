//! The network side: a listener on the fake's runtime, one task per
//! connection (TLS first when asked), HTTP/1.1 by hyper, and per request:
//! record it, check the bearer token, route it. Stopping ends the accept
//! loop and aborts every connection task, so open watches end mid-stream
//! as they do when an API server restarts.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::{ACCEPT, AUTHORIZATION};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request as HttpRequest};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use super::route::{Route, route};
use super::status::{self, Reply, Status};
use super::{Request, Shared, discovery, list, query, watch};

/// A listener being served; [`Running::stop`] ends it.
pub(super) struct Running {
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

// === impl Running ===

impl Running {
    /// Closes the listener and every connection, and waits until they are.
    pub(super) async fn stop(self) {
        let _ = self.shutdown.send(());
        let _ = self.task.await;
    }
}

/// Binds `addr` (port 0 for any); SO_REUSEADDR, so the same port binds
/// again right after a stop.
pub(super) fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Serves `listener` on `runtime` until stopped.
pub(super) fn spawn(
    runtime: &Handle,
    listener: TcpListener,
    shared: Arc<Shared>,
    tls: Option<TlsAcceptor>,
) -> Running {
    let (shutdown, stopped) = oneshot::channel();
    let task = runtime.spawn(accept_loop(listener, shared, tls, stopped));
    Running { shutdown, task }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    tls: Option<TlsAcceptor>,
    mut stopped: oneshot::Receiver<()>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    connections.spawn(connection(stream, Arc::clone(&shared), tls.clone()));
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    connections.shutdown().await;
}

async fn connection(stream: TcpStream, shared: Arc<Shared>, tls: Option<TlsAcceptor>) {
    let _ = stream.set_nodelay(true);
    match tls {
        None => http(stream, shared).await,
        Some(acceptor) => {
            if let Ok(stream) = acceptor.accept(stream).await {
                http(stream, shared).await;
            }
        }
    }
}

async fn http<S>(stream: S, shared: Arc<Shared>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| {
        let shared = Arc::clone(&shared);
        async move { Ok::<_, Infallible>(handle(&shared, &req).await) }
    });
    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
}

async fn handle(shared: &Arc<Shared>, req: &HttpRequest<Incoming>) -> Reply {
    let request = Request::of(req);
    shared.requests.lock().push(request.clone());
    let tokens = shared.tokens.lock().clone();
    if !tokens.is_empty() && !request.token.as_ref().is_some_and(|t| tokens.contains(t)) {
        return Status::unauthorized().reply();
    }
    if req.method() != Method::GET {
        return Status::method_not_allowed().reply();
    }
    dispatch(shared, &request).await
}

async fn dispatch(shared: &Arc<Shared>, request: &Request) -> Reply {
    let params = &request.query;
    match route(&request.path) {
        Route::Version => status::ok(&discovery::version()),
        Route::LegacyGroup => status::ok(&discovery::api_versions(shared.addr)),
        Route::Groups => status::ok(&discovery::group_list()),
        Route::Group => status::ok(&discovery::group()),
        Route::Resources(kind) => status::ok(&discovery::resources(kind)),
        Route::Collection { kind, namespace } if query::flag(params, "watch") => {
            watch::watch(shared, kind, namespace.as_deref(), params)
        }
        Route::Collection { kind, namespace } => {
            list::list(shared, kind, namespace.as_deref(), params).await
        }
        Route::Object { kind, namespace, name } => list::get(shared, kind, &namespace, &name),
        Route::Unknown => Status::no_such_path().reply(),
    }
}

// === impl Request ===

impl Request {
    fn of(req: &HttpRequest<Incoming>) -> Request {
        let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
        let token =
            header(AUTHORIZATION).and_then(|a| a.strip_prefix("Bearer ")).map(str::to_owned);
        Request {
            method: req.method().to_string(),
            path: req.uri().path().to_owned(),
            query: query::parse(req.uri().query()),
            token,
            accept: header(ACCEPT).map(str::to_owned),
        }
    }
}
