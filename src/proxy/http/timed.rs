//! A response as the client gets it, counted: its status when its head
//! leaves [`Client::forward`](super::Client), its duration when its body
//! ends, into the HTTP families of the request's Service port.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use hyper::Response;
use hyper::body::{Body as HttpBody, Frame, SizeHint};

use super::Body;
use crate::metrics::{HttpStats, PortStats};
use crate::table::Route;

/// Whose HTTP families a request counts into: its Route's port, or, when
/// the frontend has no HTTP Route any more, the port the connection was
/// accepted for. The Route already held is moved in rather than its
/// stats cloned: no reference count touched per request.
pub enum Owner {
    Route(Arc<Route>),
    Port(Arc<PortStats>),
}

/// A response body that records its request's duration once, when it
/// ends, fails, or is dropped (the client went away, or hyper had
/// nothing to read: an empty body is never polled).
pub struct Timed {
    body: Body,
    /// Until recorded; `None` for a port without HTTP families (a Route
    /// built for no exported metrics).
    pending: Option<(Owner, Instant)>,
}

// === impl Owner ===

impl Owner {
    fn stats(&self) -> &PortStats {
        match self {
            Owner::Route(route) => &route.stats,
            Owner::Port(stats) => stats,
        }
    }

    /// The port's HTTP families, if it has them.
    pub fn http(&self) -> Option<&HttpStats> {
        self.stats().http()
    }
}

// === impl Timed ===

impl Timed {
    /// `response` on its way to the client: its status counted now, the
    /// time since `started` when its body ends.
    pub fn count(response: Response<Body>, owner: Owner, started: Instant) -> Response<Timed> {
        let pending = match owner.http() {
            Some(http) => {
                http.responded(response.status().as_u16());
                Some((owner, started))
            }
            None => None,
        };
        response.map(|body| Timed { body, pending })
    }

    fn record(&mut self) {
        if let Some((owner, started)) = self.pending.take()
            && let Some(http) = owner.http()
        {
            http.duration.observe(started.elapsed().as_secs_f64());
        }
    }
}

impl HttpBody for Timed {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if let Poll::Ready(None | Some(Err(_))) = polled {
            self.record();
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

impl Drop for Timed {
    fn drop(&mut self) {
        self.record();
    }
}
