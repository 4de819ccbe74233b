//! The answers the proxy makes itself: 503 when no endpoint can take the
//! request (or the frontend is gone), 502 when the endpoint failed before
//! its response head. A gRPC client gets what it can parse instead of an
//! HTML page: a trailers-only response, HTTP 200 with `grpc-status: 14`
//! (UNAVAILABLE), which its retry policy knows. Each answer is counted
//! by reason (`svcproxy_http_proxy_errors_total`).

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};

use super::Body;
use crate::metrics::{HttpError, PortStats};
use crate::table::Route;

/// Why the proxy answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    /// No usable endpoint.
    NoEndpoints,
    /// Every endpoint tried refused or timed out.
    ConnectFailed,
    /// The endpoint reset or closed before its response head.
    EndpointReset,
    /// The frontend left the Snapshot, or is no longer HTTP.
    Gone,
    /// No response head within the Service's request timeout.
    Timeout,
    /// This proxy could not open a connection to an endpoint for want of
    /// descriptors, ports or memory.
    LocalResources,
}

// === impl Why ===

impl Why {
    fn status(self) -> StatusCode {
        match self {
            Why::NoEndpoints | Why::Gone | Why::LocalResources => StatusCode::SERVICE_UNAVAILABLE,
            Why::ConnectFailed | Why::EndpointReset => StatusCode::BAD_GATEWAY,
            Why::Timeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// The reason it is counted under. A frontend gone is counted as
    /// `no_endpoints`: the client gets the same 503, and this proxy has no
    /// endpoint for it any more.
    pub fn reason(self) -> HttpError {
        match self {
            Why::NoEndpoints | Why::Gone => HttpError::NoEndpoints,
            Why::ConnectFailed => HttpError::ConnectFailed,
            Why::EndpointReset => HttpError::EndpointReset,
            Why::Timeout => HttpError::Timeout,
            Why::LocalResources => HttpError::LocalResources,
        }
    }

    fn text(self) -> &'static str {
        match self {
            Why::NoEndpoints => "no endpoint available",
            Why::ConnectFailed => "no endpoint accepted the connection",
            Why::EndpointReset => "the endpoint closed the connection before answering",
            Why::Gone => "this Service port is no longer served here",
            Why::Timeout => "the endpoint did not answer within the request timeout",
            Why::LocalResources => "the proxy is short of file descriptors or memory",
        }
    }
}

/// The answer for `why`, counted into the HTTP families of `port`: a
/// one-line body naming the Service port, or gRPC's trailers-only
/// UNAVAILABLE.
pub fn answer(why: Why, route: Option<&Route>, port: &PortStats, grpc: bool) -> Response<Body> {
    if let Some(http) = port.http() {
        http.errors(why.reason()).inc();
    }
    let named = match route {
        Some(route) => format!("{} port {}: {}", route.service, route.port, why.text()),
        None => why.text().to_owned(),
    };
    let mut response = if grpc {
        let mut response = Response::new(empty());
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        headers.insert("grpc-status", HeaderValue::from_static("14"));
        if let Ok(message) = HeaderValue::from_str(&named) {
            headers.insert("grpc-message", message);
        }
        response
    } else {
        let mut response = Response::new(full(format!("{named}\n")));
        *response.status_mut() = why.status();
        let plain = HeaderValue::from_static("text/plain; charset=utf-8");
        response.headers_mut().insert(header::CONTENT_TYPE, plain);
        response
    };
    if why == Why::Gone {
        // HTTP/1.1: the client opens a new connection, which reaches
        // whatever serves the address now (hyper sends GOAWAY on h2).
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

fn full(text: String) -> Body {
    Full::new(Bytes::from(text)).map_err(|never| match never {}).boxed()
}

fn empty() -> Body {
    http_body_util::Empty::new().map_err(|never| match never {}).boxed()
}
