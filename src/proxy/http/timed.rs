//! A response as the client gets it, counted: its status when its head
//! leaves [`Client::forward`](super::Client), its duration when its body
//! ends, into the HTTP families of the request's Service port; then its
//! access log line, if the log is on, and the end of the request for the
//! connection's idle timeout.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use hyper::Response;
use hyper::body::{Body as HttpBody, Frame, SizeHint};

use super::Body;
use super::entry::Entry;
use super::quiet::Busy;
use super::returning::Returning;
use crate::balance::Outstanding;
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

/// A response body that records its request's end once, when it ends,
/// fails, or is dropped (the client went away, or hyper had nothing to
/// read: an empty body is never polled).
pub struct Timed {
    body: Body,
    owner: Owner,
    started: Instant,
    status: u16,
    held: Held,
    recorded: bool,
}

/// What a request holds until its response ends.
pub struct Held {
    /// The connection's request in flight.
    #[expect(dead_code, reason = "held for its Drop")]
    pub busy: Busy,
    /// The access log line, counting the body's bytes; taken when written.
    pub entry: Option<Box<Entry>>,
    /// The endpoint's request in flight (least-request policy).
    #[expect(dead_code, reason = "held for its Drop")]
    pub outstanding: Option<Outstanding>,
    /// The pod connection that carried it (HTTP/1.1), given back to the
    /// pool when the response ends: no task per response to wait for it.
    pub returning: Option<Returning>,
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
    pub fn count(
        response: Response<Body>,
        owner: Owner,
        started: Instant,
        held: Held,
    ) -> Response<Timed> {
        let status = response.status().as_u16();
        if let Some(http) = owner.http() {
            http.responded(status);
        }
        response.map(|body| Timed { body, owner, started, status, held, recorded: false })
    }

    fn record(&mut self) {
        if std::mem::replace(&mut self.recorded, true) {
            return;
        }
        let took = self.started.elapsed();
        if let Some(http) = self.owner.http() {
            http.duration.observe(took.as_secs_f64());
        }
        if let Some(returning) = self.held.returning.take() {
            returning.give_back();
        }
        if let Some(entry) = self.held.entry.take() {
            entry.write(self.owner.stats(), self.status, took);
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
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(entry), Some(data)) = (&mut self.held.entry, frame.data_ref()) {
                    entry.sent += data.len() as u64;
                }
            }
            Poll::Ready(None | Some(Err(_))) => self.record(),
            Poll::Pending => {}
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
