//! The HTTP mode: a client connection served by hyper (HTTP/1.1 and h2c on
//! one socket, told apart by the HTTP/2 preface), each request sent to an
//! endpoint of its own: the frontend's Route current at the request's
//! arrival, the balancer's pick, a pooled connection to the endpoint.
//!
//! A request is sent to the next endpoint of its plan when the connect
//! fails (nothing was sent), or when the endpoint fails before its
//! response head and the request can be sent again: idempotent, with no
//! body. Bodies stream both ways with hyper's backpressure, trailers
//! included; an upgrade the endpoint accepts (101, WebSocket) becomes a
//! tunnel of bytes both ways.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use http_body_util::BodyExt as _;
use hyper::body::{Body as _, Incoming};
use hyper::client::conn::{http1, http2};
use hyper::header;
use hyper::http::request::Parts;
use hyper::server::conn as server;
use hyper::service::service_fn;
use hyper::upgrade::OnUpgrade;
use hyper::{Method, Request, Response, StatusCode, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tracing::{debug, warn};

use super::{Active, Conn, connect};
use crate::balance::{Balancer, Outstanding};
use crate::context::{Context, HttpLimits};
use crate::metrics::PortStats;
use crate::shutdown::{Live, Tracker};
use crate::table::{Mode, Route, RouteEndpoint, Upstream};
pub use crate::upstream::Body;

/// Envoy's `consecutive_5xx` default: this many failed requests in a row
/// eject an endpoint.
const FAILURES_IN_A_ROW: u32 = 5;

mod answer;
mod entry;
mod headers;
mod quiet;
mod returning;
mod sniff;
mod timed;

use answer::{Why, answer};
use entry::Entry;
use quiet::{Activity, Due, Watched};
use returning::Returning;
use sniff::Speaks;
use timed::{Held, Owner, Timed};

/// What every request of one client connection shares.
struct Client {
    peer: SocketAddr,
    frontend: crate::table::Frontend,
    ctx: Arc<Context>,
    /// The Service port it was accepted for: what counts a request once
    /// the frontend has no HTTP Route.
    stats: Arc<PortStats>,
    activity: Arc<Activity>,
}

/// Serves one client connection until it ends; `stats` are those of the
/// Service port it was accepted for.
pub async fn serve(conn: Conn, stats: Arc<PortStats>, ctx: Arc<Context>, live: Live) {
    let Conn { stream, peer, frontend, slot: _slot } = conn;
    let limits = ctx.http;
    stats.connections.inc();
    let port = stats.clone();
    let _active = Active::enter(&port);
    let activity = Arc::new(Activity::new());
    let client = Arc::new(Client { peer, frontend, ctx, stats, activity: activity.clone() });
    let service = service_fn(move |request| {
        let client = client.clone();
        async move { Ok::<_, Infallible>(client.forward(request).await) }
    });
    let speaks = tokio::time::timeout(limits.header_timeout, sniff::speaks(&stream)).await;
    let io = TokioIo::new(Watched::new(stream, activity.clone(), port.clone()));
    // The header and idle timeouts are ours (quiet.rs), not hyper's.
    let on = On { live: &live, activity: &activity, limits: &limits, peer, port: &port };
    match speaks {
        Ok(Ok(Some(Speaks::Http1))) => {
            let mut builder = server::http1::Builder::new();
            builder.header_read_timeout(None).max_buf_size(limits.max_header_bytes);
            let connection = builder.serve_connection(io, service).with_upgrades();
            on.drive(connection, |c| c.graceful_shutdown()).await;
        }
        Ok(Ok(Some(Speaks::H2))) => {
            let mut builder = server::http2::Builder::new(TokioExecutor::new());
            builder.max_concurrent_streams(limits.max_streams);
            on.drive(builder.serve_connection(io, service), |c| c.graceful_shutdown()).await;
        }
        Ok(Ok(Some(Speaks::Unsure))) => {
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder.http1().header_read_timeout(None).max_buf_size(limits.max_header_bytes);
            builder.http2().max_concurrent_streams(limits.max_streams);
            let connection = builder.serve_connection_with_upgrades(io, service);
            on.drive(connection, |c| c.graceful_shutdown()).await;
        }
        // Closed, failed, or silent past the header timeout.
        Ok(Ok(None) | Err(_)) | Err(_) => {}
    }
    port.duration.observe(activity.age().as_secs_f64());
    drop(live);
}

/// What a served connection answers to: the drain, and its quiet.
struct On<'a> {
    live: &'a Live,
    activity: &'a Activity,
    limits: &'a HttpLimits,
    peer: SocketAddr,
    /// Counts the answers hyper makes itself.
    port: &'a PortStats,
}

impl On<'_> {
    /// Runs `connection` to its end. On SIGTERM or the idle timeout: an
    /// idle HTTP/1.1 connection closes at once, a busy one after its
    /// response (`Connection: close`), HTTP/2 gets GOAWAY and ends with
    /// its last stream; the drain timeout cuts what is left. A head that
    /// does not arrive in time is cut.
    async fn drive<C, E>(&self, connection: C, shutdown: impl Fn(Pin<&mut C>))
    where
        C: Future<Output = Result<(), E>>,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        tokio::pin!(connection);
        let served = self.live.unless_aborted(async {
            tokio::select! {
                result = connection.as_mut() => Some(result),
                () = self.live.draining() => {
                    shutdown(connection.as_mut());
                    Some(connection.await)
                }
                due = quiet::due(self.activity, self.limits) => {
                    debug!(client = %self.peer, ?due, "HTTP connection quiet too long");
                    (due == Due::Idle).then_some(())?;
                    shutdown(connection.as_mut());
                    Some(connection.await)
                }
            }
        });
        if let Some(Some(Err(e))) = served.await {
            let e = e.into();
            debug!(client = %self.peer, error = %e, "HTTP connection ended");
            let automatic = e.downcast_ref::<hyper::Error>().and_then(automatic);
            if let (Some(code), Some(http)) = (automatic, self.port.http()) {
                http.responded(code);
            }
        }
    }
}

// === impl Client ===

impl Client {
    /// One request: its Route now, an endpoint, the response, counted
    /// into the Route's port (status, duration; the proxy's own answers
    /// by reason) and logged.
    async fn forward(&self, request: Request<Incoming>) -> Response<Timed> {
        let started = Instant::now();
        let busy = self.activity.began(request.version() == Version::HTTP_2);
        let grpc = is_grpc(&request);
        let access = self.ctx.access.as_ref();
        let mut entry = access.map(|log| Box::new(Entry::new(log, self.peer, &request)));
        let route = self.ctx.table.load().route(&self.frontend).cloned();
        let Some((route, upstream)) = route.and_then(|r| match r.mode {
            Mode::Http(upstream) => Some((r, upstream)),
            Mode::Tcp | Mode::Udp => None,
        }) else {
            let response = answer(Why::Gone, None, &self.stats, grpc);
            if let Some(entry) = &mut entry {
                entry.error = Some(Why::Gone.reason().label());
            }
            let held = Held { busy, entry, outstanding: None, returning: None };
            return Timed::count(response, self.port(), started, held);
        };
        let exchange = self.exchange(&route, upstream, request, entry.as_deref(), started);
        let exchanged = match route.request_timeout {
            Some(timeout) => {
                tokio::time::timeout(timeout, exchange).await.unwrap_or(Err(Why::Timeout))
            }
            None => exchange.await,
        };
        if let Some(entry) = &mut entry {
            match &exchanged {
                Ok(exchanged) => entry.endpoint = Some(exchanged.endpoint),
                Err(why) => entry.error = Some(why.reason().label()),
            }
        }
        let (response, outstanding, returning) = match exchanged {
            Ok(Exchanged { response, outstanding, returning, .. }) => {
                (response, outstanding, returning)
            }
            Err(why) => (answer(why, Some(&route), &route.stats, grpc), None, None),
        };
        let held = Held { busy, entry, outstanding, returning };
        Timed::count(response, Owner::Route(route), started, held)
    }

    /// Sends the request to an endpoint of `route`'s plan, the next one
    /// when it may: the endpoint's response, or why there is none.
    async fn exchange(
        &self,
        route: &Route,
        upstream: Upstream,
        request: Request<Incoming>,
        entry: Option<&Entry>,
        now: Instant,
    ) -> Result<Exchanged, Why> {
        let plan = self.ctx.balancer.plan(route, self.peer.ip(), now);
        if plan.is_empty() {
            return Err(Why::NoEndpoints);
        }
        let (mut parts, body) = request.into_parts();
        let on_upgrade = self.fit(&mut parts, upstream);
        // A copy of the head only for a request that may be sent again
        // after an endpoint took it and failed; the rest is moved, not
        // copied, and comes back whole when no endpoint took it.
        let again = can_send_again(&parts.method, &body).then(|| head_of(&parts));
        let body = match entry {
            Some(entry) => entry.count(body).boxed(),
            None => body.boxed(),
        };
        let mut request = Some(Request::from_parts(parts, body));
        let mut why = Why::ConnectFailed;
        for endpoint in plan.iter().map(|i| &route.endpoints[i]) {
            let this = match (request.take(), &again) {
                (Some(request), _) => request,
                (None, Some(head)) => with_body(head, Body::default()),
                (None, None) => break,
            };
            match self.attempt(route, endpoint, upstream, this).await {
                Ok(took) => return Ok(self.exchanged(took, endpoint.addr, route, on_upgrade)),
                // This proxy's own shortage: the next endpoint would fail alike.
                Err(Attempt::Unsent(_, Why::LocalResources)) => return Err(Why::LocalResources),
                // Nothing of the request reached the endpoint: it goes on whole.
                Err(Attempt::Unsent(unsent, failed)) => {
                    request = Some(*unsent);
                    why = failed;
                }
                Err(Attempt::Failed) => why = Why::EndpointReset,
            }
        }
        Err(why)
    }

    /// The port the connection was accepted for, as what a request the
    /// proxy answers without a Route counts into.
    fn port(&self) -> Owner {
        Owner::Port(self.stats.clone())
    }

    /// Makes the client's request head fit for an endpoint spoken to as
    /// `upstream`: the client's side of an upgrade, if it asks for one.
    fn fit(&self, parts: &mut Parts, upstream: Upstream) -> Option<OnUpgrade> {
        let upgrade = parts.headers.contains_key(header::UPGRADE) && upstream == Upstream::Http1;
        let on_upgrade = if upgrade { parts.extensions.remove::<OnUpgrade>() } else { None };
        headers::strip(&mut parts.headers, upgrade);
        headers::forward_to(parts, upstream);
        headers::forwarded(&mut parts.headers, self.peer.ip());
        // The client's connection-level extensions stay with the client.
        parts.extensions.clear();
        on_upgrade
    }

    /// Sends the request to `endpoint` on a pooled connection, or a new
    /// one; again on a new one when the pooled one turns out closed before
    /// taking the request (the pod ended an idle keep-alive connection).
    async fn attempt(
        &self,
        route: &Route,
        endpoint: &RouteEndpoint,
        upstream: Upstream,
        mut request: Request<Body>,
    ) -> Result<Took, Attempt> {
        for fresh in [false, true] {
            let (sender, pooled) = match self.sender(route, endpoint, upstream, fresh).await {
                Ok(sender) => sender,
                Err(why) => return Err(Attempt::Unsent(Box::new(request), why)),
            };
            endpoint.stats.http_requests.inc();
            let outstanding = Balancer::outstanding(route, endpoint);
            match sender.send(request).await {
                Sent::Response(response, sender) => {
                    let failed = response.status().is_server_error();
                    self.outcome(endpoint, failed);
                    let returning = self.sent(route, endpoint, sender, failed);
                    return Ok((response, outstanding, returning));
                }
                Sent::Unsent(unsent, e) => {
                    debug!(endpoint = %endpoint.addr, error = %e, pooled, "request not sent");
                    request = unsent;
                    if !pooled {
                        return Err(Attempt::Unsent(Box::new(request), Why::EndpointReset));
                    }
                }
                Sent::Failed(e) => {
                    debug!(endpoint = %endpoint.addr, error = %e, "request failed");
                    self.outcome(endpoint, true);
                    return Err(Attempt::Failed);
                }
            }
        }
        Err(Attempt::Failed)
    }

    /// Ejects `endpoint` once it failed [`FAILURES_IN_A_ROW`] requests in a
    /// row (a 5xx, or a reset before the response), as a failed connect
    /// would; any other answer starts the count again.
    fn outcome(&self, endpoint: &RouteEndpoint, failed: bool) {
        let streak = &endpoint.stats.failures_in_a_row;
        if !failed {
            if streak.load(Ordering::Relaxed) != 0 {
                streak.store(0, Ordering::Relaxed);
            }
            return;
        }
        if streak.fetch_add(1, Ordering::Relaxed) + 1 >= FAILURES_IN_A_ROW {
            streak.store(0, Ordering::Relaxed);
            if self.ctx.balancer.failed(endpoint.addr, Instant::now()) {
                warn!(endpoint = %endpoint.addr, "{FAILURES_IN_A_ROW} HTTP requests in a row failed: ejected");
            }
        }
    }

    /// What an attempt on `endpoint` brought back, as the client gets it
    /// (an upgrade tunnelled).
    fn exchanged(
        &self,
        (response, outstanding, returning): Took,
        endpoint: SocketAddr,
        route: &Route,
        client: Option<OnUpgrade>,
    ) -> Exchanged {
        let (stats, live) = (route.stats.clone(), &self.ctx.tracker);
        let (response, outstanding) =
            respond(response, Tunnel { client, outstanding, live, stats });
        Exchanged { response, endpoint, outstanding, returning }
    }

    /// A connection to `endpoint` ready for a request: a pooled one, or a
    /// new one (a failed connect counted and the endpoint ejected, as on
    /// the TCP path; this proxy's own shortage is neither).
    async fn sender(
        &self,
        route: &Route,
        endpoint: &RouteEndpoint,
        upstream: Upstream,
        fresh: bool,
    ) -> Result<(Sender, bool), Why> {
        let (ctx, addr) = (&self.ctx, endpoint.addr);
        let pooled = match upstream {
            _ if fresh => None,
            Upstream::Http1 => ctx.upstreams.http1(addr).map(Sender::Http1),
            Upstream::H2c => ctx.upstreams.h2(addr).map(Sender::H2),
        };
        if let Some(pooled) = pooled {
            return Ok((pooled, true));
        }
        let stream = match connect::attempt(addr, ctx.connect_timeout).await {
            Ok(stream) => stream,
            Err(e) => {
                return Err(match connect::failed(ctx, route, endpoint, e) {
                    super::Error::LocalResources(_) => Why::LocalResources,
                    _ => Why::ConnectFailed,
                });
            }
        };
        endpoint.stats.connections.inc();
        let io = TokioIo::new(stream);
        let handshake = match upstream {
            Upstream::Http1 => http1::Builder::new().handshake(io).await.map(|(sender, conn)| {
                tokio::spawn(conn.with_upgrades());
                Sender::Http1(sender)
            }),
            Upstream::H2c => {
                let builder = http2::Builder::new(TokioExecutor::new());
                builder.handshake(io).await.map(|(sender, conn)| {
                    tokio::spawn(conn);
                    ctx.upstreams.keep_h2(addr, sender.clone());
                    Sender::H2(sender)
                })
            }
        };
        let sender = handshake.map_err(|e| {
            debug!(endpoint = %addr, error = %e, "handshake failed");
            Why::ConnectFailed
        })?;
        Ok((sender, false))
    }

    /// A response came from `endpoint`: its HTTP/1.1 connection, to give
    /// back to the pool once the response has ended.
    fn sent(
        &self,
        route: &Route,
        endpoint: &RouteEndpoint,
        sender: Option<http1::SendRequest<Body>>,
        failed: bool,
    ) -> Option<Returning> {
        // A 5xx neither clears an ejection nor pins the client.
        if !failed {
            self.ctx.balancer.connected(route, self.peer.ip(), endpoint.addr, Instant::now());
        }
        sender.map(|sender| Returning::new(self.ctx.clone(), endpoint.addr, sender))
    }
}

/// A connection to an endpoint, as it speaks.
enum Sender {
    Http1(http1::SendRequest<Body>),
    H2(http2::SendRequest<Body>),
}

/// What sending a request came to.
enum Sent {
    /// The response, and the HTTP/1.1 connection to keep.
    Response(Response<Incoming>, Option<http1::SendRequest<Body>>),
    /// The connection failed before taking the request: it comes back whole.
    Unsent(Request<Body>, hyper::Error),
    /// The connection failed with the request (part of it) sent.
    Failed(hyper::Error),
}

/// An endpoint's response, its count of requests in flight and its
/// HTTP/1.1 connection.
type Took = (Response<Incoming>, Option<Outstanding>, Option<Returning>);

/// The response of the endpoint that took a request.
struct Exchanged {
    response: Response<Body>,
    endpoint: SocketAddr,
    /// Its count of requests in flight, until the response ends.
    outstanding: Option<Outstanding>,
    /// Its HTTP/1.1 connection, for the pool once the response ends.
    returning: Option<Returning>,
}

/// Why an attempt on one endpoint gave no response.
enum Attempt {
    /// Nothing was sent: the request, to send elsewhere, and what to
    /// answer if no endpoint takes it.
    Unsent(Box<Request<Body>>, Why),
    /// The request was (partly) sent.
    Failed,
}

impl Sender {
    /// Sends `request`.
    async fn send(self, request: Request<Body>) -> Sent {
        let result = match self {
            Sender::Http1(mut sender) => {
                sender.try_send_request(request).await.map(|r| (r, Some(sender)))
            }
            Sender::H2(mut sender) => sender.try_send_request(request).await.map(|r| (r, None)),
        };
        match result {
            Ok((response, sender)) => Sent::Response(response, sender),
            Err(mut e) => match e.take_message() {
                Some(request) => Sent::Unsent(request, e.into_error()),
                None => Sent::Failed(e.into_error()),
            },
        }
    }
}

/// A copy of the client's head (`parts`, already made fit for the
/// endpoint), to send it again.
fn head_of(parts: &Parts) -> Request<()> {
    let mut head = Request::new(());
    *head.method_mut() = parts.method.clone();
    *head.uri_mut() = parts.uri.clone();
    *head.version_mut() = parts.version;
    *head.headers_mut() = parts.headers.clone();
    head
}

/// The request `head` with `body`.
fn with_body(head: &Request<()>, body: Body) -> Request<Body> {
    let mut request = Request::new(body);
    *request.method_mut() = head.method().clone();
    *request.uri_mut() = head.uri().clone();
    *request.version_mut() = head.version();
    *request.headers_mut() = head.headers().clone();
    request
}

/// What an upgrade the endpoint accepts becomes a tunnel with.
struct Tunnel<'a> {
    /// The client's side, when it asked for an upgrade.
    client: Option<OnUpgrade>,
    /// The request's count on its endpoint (least-request policy).
    outstanding: Option<Outstanding>,
    /// The drain's count of live connections: the tunnel is one, once
    /// hyper handed its connection over.
    live: &'a Tracker,
    /// The Service port, whose `connections_active` counts the tunnel.
    stats: Arc<PortStats>,
}

/// The endpoint's response as the client gets it: hop-by-hop fields
/// removed; a 101 becomes a tunnel between the two upgraded connections,
/// which holds the request's `outstanding` count for as long as it lives.
fn respond(
    response: Response<Incoming>,
    mut tunnel: Tunnel<'_>,
) -> (Response<Body>, Option<Outstanding>) {
    let (mut parts, body) = response.into_parts();
    if parts.status == StatusCode::SWITCHING_PROTOCOLS {
        let endpoint = parts.extensions.remove::<OnUpgrade>();
        if let (Some(client), Some(endpoint)) = (tunnel.client, endpoint) {
            // Counted from now: the client's connection counts until
            // hyper hands it over, so the drain never sees a gap.
            let live = tunnel.live.enter();
            let (outstanding, stats) = (tunnel.outstanding.take(), tunnel.stats);
            tokio::spawn(async move {
                let active = Active::enter(&stats);
                live.unless_aborted(copy(client, endpoint)).await;
                drop((active, live, outstanding));
            });
        }
        headers::strip(&mut parts.headers, true);
    } else {
        headers::strip(&mut parts.headers, false);
    }
    (Response::from_parts(parts, body.boxed()), tunnel.outstanding)
}

/// Copies bytes both ways between an upgraded client and endpoint; on
/// SIGTERM, until they close or the drain timeout.
async fn copy(client: OnUpgrade, endpoint: OnUpgrade) {
    let (Ok(client), Ok(endpoint)) = tokio::join!(client, endpoint) else { return };
    let (mut client, mut endpoint) = (TokioIo::new(client), TokioIo::new(endpoint));
    if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut endpoint).await {
        debug!(error = %e, "upgraded connection ended");
    }
}

/// The status hyper answered itself before closing, for a request head
/// it could not parse (hyper's `on_error`): 431 for a head too large, 414
/// for a URI too long (told apart only by its message), 400 for the rest.
fn automatic(e: &hyper::Error) -> Option<u16> {
    if e.is_parse_too_large() {
        return Some(if e.to_string().starts_with("URI too long") { 414 } else { 431 });
    }
    e.is_parse().then_some(400)
}

/// Whether a request can be sent to another endpoint after one failed:
/// idempotent (RFC 9110 §9.2.2) and without a body, so nothing of it is
/// lost.
fn can_send_again(method: &Method, body: &Incoming) -> bool {
    let idempotent = matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    );
    idempotent && body.is_end_stream()
}

fn is_grpc(request: &Request<Incoming>) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}
