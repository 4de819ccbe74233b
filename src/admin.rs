//! Stage 7, admin: `/healthz` and `/livez` (kube-proxy's semantics and
//! body) on the health address; `/metrics` and `/debug/routes` on the
//! metrics address.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tracing::debug;

use crate::proxy::Context;

pub mod probe;

/// What `/healthz` reports.
#[derive(Debug, Default)]
pub struct Health {
    /// When the last Snapshot was published; `None` before the first.
    updated: Mutex<Option<SystemTime>>,
    /// Set on SIGTERM: the node is leaving, load balancers must stop
    /// sending new connections.
    draining: AtomicBool,
}

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

// === impl Health ===

impl Health {
    pub fn published(&self) {
        *self.updated.lock() = Some(SystemTime::now());
    }

    pub fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// True once a Snapshot is published and until the drain starts.
    pub fn healthy(&self) -> bool {
        self.updated.lock().is_some() && !self.draining.load(Ordering::Relaxed)
    }

    fn answer(&self) -> (StatusCode, String) {
        let now = SystemTime::now();
        let updated = *self.updated.lock();
        let status = if self.healthy() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
        // Before the first Snapshot: Go's zero time, as kube-proxy writes
        // its never-set `lastUpdated`, so the field always parses.
        let last = updated.map_or_else(|| "0001-01-01T00:00:00Z".to_owned(), rfc3339);
        (status, format!("{{\"lastUpdated\": \"{last}\",\"currentTime\": \"{}\"}}", rfc3339(now)))
    }
}

fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

/// Binds the health and metrics addresses now (so a taken port is a startup
/// error) and serves them in the background.
pub async fn start(
    health_addr: SocketAddr,
    metrics_addr: SocketAddr,
    health: Arc<Health>,
    ctx: Arc<Context>,
) -> Result<(SocketAddr, SocketAddr), Error> {
    let health_listener = bind("--healthz-bind-address", health_addr).await?;
    let metrics_listener = bind("--metrics-bind-address", metrics_addr).await?;
    let local = |l: &TcpListener, addr| l.local_addr().unwrap_or(addr);
    let bound = (local(&health_listener, health_addr), local(&metrics_listener, metrics_addr));
    tokio::spawn(serve(health_listener, Role::Health, health.clone(), ctx.clone()));
    tokio::spawn(serve(metrics_listener, Role::Metrics, health, ctx));
    Ok(bound)
}

async fn bind(flag: &'static str, addr: SocketAddr) -> Result<TcpListener, Error> {
    TcpListener::bind(addr).await.map_err(|error| Error::Bind { flag, addr, error })
}

async fn serve(listener: TcpListener, role: Role, health: Arc<Health>, ctx: Arc<Context>) {
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
        let (health, ctx) = (health.clone(), ctx.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let response = respond(&req, role, &health, &ctx);
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

fn respond(
    req: &Request<Incoming>,
    role: Role,
    health: &Health,
    ctx: &Context,
) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match (role, req.uri().path()) {
        (Role::Health, "/healthz" | "/livez") => {
            let (status, body) = health.answer();
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
