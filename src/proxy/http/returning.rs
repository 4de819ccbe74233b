//! An HTTP/1.1 connection to an endpoint on its way back to the pool: given
//! back when the response it carried has ended, so the next request can
//! take it.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::client::conn::http1;

use super::Body;
use crate::context::Context;

/// A pod connection whose response is still being read by the client.
pub struct Returning {
    ctx: Arc<Context>,
    addr: SocketAddr,
    sender: http1::SendRequest<Body>,
}

// === impl Returning ===

impl Returning {
    pub fn new(ctx: Arc<Context>, addr: SocketAddr, sender: http1::SendRequest<Body>) -> Self {
        Self { ctx, addr, sender }
    }

    /// The response has ended: the connection goes back to the pool at
    /// once when it already waits for its next request (nearly always: it
    /// read the response's end before passing it on), else once it does,
    /// and never when it closed instead.
    pub fn give_back(self) {
        let Returning { ctx, addr, mut sender } = self;
        if sender.is_ready() {
            ctx.upstreams.keep_http1(addr, sender);
        } else if !sender.is_closed() {
            tracing::trace!(endpoint = %addr, "pod connection not ready at the response's end");
            tokio::spawn(async move {
                if sender.ready().await.is_ok() {
                    ctx.upstreams.keep_http1(addr, sender);
                }
            });
        }
    }
}
