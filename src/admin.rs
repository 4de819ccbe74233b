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
use tokio::sync::Semaphore;
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
                let ctx = ctx.clone();
                async move { Ok::<_, Infallible>(respond(req, role, ctx).await) }
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

async fn respond(req: Request<Incoming>, role: Role, ctx: Arc<Context>) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match (role, req.uri().path()) {
        (Role::Health, path @ ("/healthz" | "/livez")) => {
            let probe = if path == "/livez" { Probe::Livez } else { Probe::Healthz };
            let (status, body) = ctx.health.answer(probe);
            (status, "application/json", body)
        }
        (Role::Metrics, "/metrics") => {
            let page = rendered(ctx, |ctx| ctx.metrics.render()).await;
            page.map_or_else(failed, |body| (StatusCode::OK, "text/plain; version=0.0.4", body))
        }
        (Role::Metrics, "/debug/routes") => {
            let page = rendered(ctx, |ctx| {
                let routes = crate::render::routes(&ctx.table.load_full(), &ctx.balancer);
                serde_json::to_string_pretty(&routes).unwrap_or_default() + "\n"
            });
            page.await.map_or_else(failed, |body| (StatusCode::OK, "application/json", body))
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

/// A page rendered on a blocking thread, one page at a time. At 5,000
/// Services `/metrics` is 20 MB of text and some 140 ms of CPU: on a
/// runtime worker that would stall every connection the worker serves for
/// as long, at each scrape. One at a time, a flood of scrapers waits for
/// its turn without taking a thread each. The turn is held by the
/// rendering itself, which goes on when its scraper hangs up: a scraper
/// that connects, asks and leaves cannot start a second one. `None` if
/// rendering panicked.
async fn rendered(ctx: Arc<Context>, page: fn(&Context) -> String) -> Option<String> {
    static TURN: Semaphore = Semaphore::const_new(1);
    let turn = TURN.acquire().await.ok()?;
    let render = move || {
        let _turn = turn;
        page(&ctx)
    };
    tokio::task::spawn_blocking(render).await.ok()
}

fn failed() -> (StatusCode, &'static str, String) {
    (StatusCode::INTERNAL_SERVER_ERROR, "text/plain", "rendering failed\n".to_owned())
}
