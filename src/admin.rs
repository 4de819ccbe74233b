//! Stage 8, admin: `/healthz` and `/livez` (kube-proxy's semantics and
//! body) on the health address; `/metrics` and `/debug/routes` on the
//! metrics address.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tracing::debug;

use crate::context::Context;
use crate::health::Probe;

/// A startup failure of the admin servers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot listen on {flag} {addr}: {error}")]
    Bind { flag: &'static str, addr: SocketAddr, error: io::Error },
}

/// Which endpoints a server answers.
#[derive(Clone, Copy, Debug)]
enum Role {
    Health,
    Metrics,
}

/// Binds the health and metrics addresses now (so a taken port is a startup
/// error) and serves them in the background.
pub async fn start(
    health_addr: SocketAddr,
    metrics_addr: SocketAddr,
    ctx: Arc<Context>,
) -> Result<(SocketAddr, SocketAddr), Error> {
    let health_listener = bind("--healthz-bind-address", health_addr).await?;
    let metrics_listener = bind("--metrics-bind-address", metrics_addr).await?;
    let local = |l: &TcpListener, addr| l.local_addr().unwrap_or(addr);
    let bound = (local(&health_listener, health_addr), local(&metrics_listener, metrics_addr));
    tokio::spawn(serve(health_listener, Role::Health, ctx.clone()));
    tokio::spawn(serve(metrics_listener, Role::Metrics, ctx));
    Ok(bound)
}

async fn bind(flag: &'static str, addr: SocketAddr) -> Result<TcpListener, Error> {
    TcpListener::bind(addr).await.map_err(|error| Error::Bind { flag, addr, error })
}

async fn serve(listener: TcpListener, role: Role, ctx: Arc<Context>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors (or worse): pause, never spin.
                debug!(error = %e, out_of_fds = crate::listener::is_out_of_descriptors(&e), "admin accept");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let response = respond(&req, role, &ctx);
                async move { Ok::<_, Infallible>(response) }
            });
            // A client that never finishes its request head is dropped.
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                debug!(error = %e, "admin connection");
            }
        });
    }
}

fn respond(req: &Request<Incoming>, role: Role, ctx: &Context) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match (role, req.uri().path()) {
        (Role::Health, path @ ("/healthz" | "/livez")) => {
            let probe = if path == "/livez" { Probe::Livez } else { Probe::Healthz };
            let (status, body) = ctx.health.answer(probe);
            (status, "application/json", body)
        }
        (Role::Metrics, "/metrics") => {
            (StatusCode::OK, "text/plain; version=0.0.4", ctx.metrics.render())
        }
        (Role::Metrics, "/debug/routes") => {
            let routes = crate::render::routes(&ctx.table.load_full(), &ctx.balancer);
            let body = serde_json::to_string_pretty(&routes).unwrap_or_default();
            (StatusCode::OK, "application/json", body + "\n")
        }
        _ => (StatusCode::NOT_FOUND, "text/plain", "404 page not found\n".to_owned()),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response.headers_mut().insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}
