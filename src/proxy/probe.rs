//! kube-proxy's service health server: on a LoadBalancer Service's
//! `healthCheckNodePort` (with `externalTrafficPolicy: Local`), the cloud
//! load balancer asks each node whether it has ready endpoints of the
//! Service, and sends traffic only to nodes that answer 200.
//!
//! Any path gets kube-proxy's answer: 200 with the count of local ready
//! endpoints, or 503 when there is none; the body names the Service. The
//! count is read from the Snapshot in force at each request, so a
//! keep-alive probe follows reloads without the port being bound again.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{CONNECTION, CONTENT_TYPE, HeaderName, HeaderValue};
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use tracing::debug;

use super::Conn;
use crate::context::Context;
use crate::table::HealthCheck;

/// The weight kube-proxy gives load balancers that read it.
const WEIGHT: HeaderName = HeaderName::from_static("x-load-balancing-endpoint-weight");

/// Answers the probes of one connection on a healthCheckNodePort.
pub async fn serve(conn: Conn, ctx: Arc<Context>) {
    let Conn { stream, frontend, slot: _slot, .. } = conn;
    let service = hyper::service::service_fn(move |_req| {
        let check = ctx.table.load().health_check(&frontend).cloned();
        let response = answer(check.as_ref(), ctx.health.healthy());
        async move { Ok::<_, Infallible>(response) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10))
        .serve_connection(TokioIo::new(stream), service);
    if let Err(e) = conn.await {
        debug!(%frontend, error = %e, "health check connection");
    }
}

/// kube-proxy's status, headers and body for `check` (`None`: the port
/// was released since the connection came in). Draining (or not yet
/// serving), the node is unhealthy whatever its endpoints: 503, and the
/// connection is closed so the next probe finds the port closed.
fn answer(check: Option<&HealthCheck>, healthy: bool) -> Response<Full<Bytes>> {
    let local = check.map_or(0, |c| c.local);
    let (namespace, name) = check.map_or(("", ""), |c| (&*c.service.namespace, &*c.service.name));
    let quote = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let body = format!(
        "{{\n\t\"service\": {{\n\t\t\"namespace\": {},\n\t\t\"name\": {}\n\t}},\n\t\
         \"localEndpoints\": {local},\n\t\"serviceProxyHealthy\": {healthy}\n}}",
        quote(namespace),
        quote(name)
    );
    let mut response = Response::new(Full::new(Bytes::from(body)));
    if local == 0 || !healthy {
        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    }
    let headers = response.headers_mut();
    if !healthy {
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    headers.insert(WEIGHT, HeaderValue::from(local));
    response
}
