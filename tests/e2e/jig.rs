//! What the e2e scenarios share: what a client of a frontend sees (an
//! endpoint's name, or a rejection at once) and the waits on it, each
//! under [`APPLY`]; the proxy started on, and edited through, its manifests
//! file; NodePorts on `127.0.0.1` that no one holds; name servers.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{ErrorKind, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use socket2::{Domain, SockAddr, Socket, Type};

use crate::support::endpoint::Endpoint;
use crate::support::manifests::write_by_rename;
use crate::support::net::{self, addr, eventually, fresh_ip};
use crate::support::proxy::Proxy;

/// How long a manifest edit may take to show in new connections: the
/// proxy promises about a second; the margin is for a loaded 2-core box.
pub const APPLY: Duration = Duration::from_secs(5);

/// A frontend without usable endpoints must answer within this.
pub const AT_ONCE: Duration = Duration::from_secs(1);

const GENERATION: &str = "svcproxy_routing_generation";

// --- what a client sees ---

/// How one new connection to a frontend went.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Seen {
    /// An endpoint answered with its name.
    Name(String),
    /// Refused, reset or closed with no byte, within [`AT_ONCE`].
    Rejected,
}

/// One connection to `to` (from `from`, when given): what it saw, or an
/// error for what no client may see (a hang, a slow rejection, an error
/// after bytes).
pub fn look(from: Option<Ipv4Addr>, to: SocketAddr) -> Result<Seen, String> {
    let start = Instant::now();
    let connected = match from {
        Some(ip) => net::connect_from(ip, to),
        None => TcpStream::connect_timeout(&to, net::CONNECT_TIMEOUT),
    };
    let mut stream = match connected {
        Ok(stream) => stream,
        Err(e) if is_rejection(e.kind()) => return quick(start, to, "refused"),
        Err(e) => return Err(format!("connect to {to}: {e}")),
    };
    stream.set_read_timeout(Some(Duration::from_secs(3))).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    match stream.read_to_end(&mut bytes) {
        Ok(_) if bytes.is_empty() => quick(start, to, "closed"),
        Ok(_) => Ok(Seen::Name(String::from_utf8_lossy(&bytes).into_owned())),
        Err(e) if bytes.is_empty() && is_rejection(e.kind()) => quick(start, to, "reset"),
        Err(e) => Err(format!("{to}: {e} after {} bytes, {:?}", bytes.len(), start.elapsed())),
    }
}

fn is_rejection(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
    )
}

fn quick(start: Instant, to: SocketAddr, how: &str) -> Result<Seen, String> {
    let took = start.elapsed();
    if took < AT_ONCE {
        Ok(Seen::Rejected)
    } else {
        Err(format!("{to}: {how} only after {took:?}"))
    }
}

/// [`look`] from the default source address; panics on what no client
/// may see.
fn see(to: SocketAddr) -> Seen {
    look(None, to).unwrap_or_else(|e| panic!("{e}"))
}

/// [`look`] from `from`.
pub fn see_from(from: Ipv4Addr, to: SocketAddr) -> Seen {
    look(Some(from), to).unwrap_or_else(|e| panic!("client {from}: {e}"))
}

/// The endpoint names `count` new connections to `to` reached; panics on
/// a rejected one.
fn tally(to: SocketAddr, count: usize) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for i in 0..count {
        match see(to) {
            Seen::Name(name) => *seen.entry(name).or_default() += 1,
            Seen::Rejected => panic!("connection {i} to {to} was rejected; seen so far {seen:?}"),
        }
    }
    seen
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

/// Waits until new connections to `to` reach exactly the endpoints
/// `names` (round robin: 2 per endpoint cover them all), then checks 3
/// more per endpoint stay inside them.
pub fn wait_serving(to: SocketAddr, names: &[&str]) {
    let expected = set(names);
    eventually(&format!("{to} serving {names:?}"), APPLY, || {
        let mut seen = BTreeSet::new();
        for _ in 0..2 * names.len() {
            match look(None, to)? {
                Seen::Name(name) => seen.insert(name),
                Seen::Rejected => return Err("rejected".to_owned()),
            };
        }
        if seen == expected { Ok(()) } else { Err(format!("reached {seen:?}")) }
    });
    let again = tally(to, 3 * names.len());
    let reached: BTreeSet<String> = again.keys().cloned().collect();
    assert_eq!(reached, expected, "{to} should keep serving exactly {names:?}: {again:?}");
}

/// Waits until `to` rejects new connections at once, then checks it does
/// so 5 times in a row (never a hang, never a byte).
pub fn wait_rejected(to: SocketAddr) {
    eventually(&format!("{to} rejecting"), APPLY, || match look(None, to)? {
        Seen::Rejected => Ok(()),
        Seen::Name(name) => Err(format!("reached {name}")),
    });
    for i in 0..5 {
        assert_eq!(see(to), Seen::Rejected, "connection {i} to {to} after it started rejecting");
    }
}

/// Waits until nothing listens on `to` any more (connections refused).
pub fn wait_refused(to: SocketAddr) {
    eventually(&format!("{to} refusing (no listener)"), APPLY, || {
        if net::refuses(to) { Ok(()) } else { Err("still accepts".to_owned()) }
    });
}

/// Waits until another process could listen on `to` (the proxy released
/// it), as the e2e test re-creating a Service with a freed NodePort needs.
pub fn wait_released(to: SocketAddr) {
    eventually(&format!("{to} released"), APPLY, || {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).map_err(|e| e.to_string())?;
        socket.set_reuse_address(true).map_err(|e| e.to_string())?;
        socket.bind(&SockAddr::from(to)).map_err(|e| e.to_string())?;
        socket.listen(1).map_err(|e| e.to_string())
    });
}

// --- the proxy, its node and its endpoints ---

/// The NodePort flags: NodePorts on `127.0.0.1`.
pub const NODE_PORT_FLAGS: [&str; 2] = ["--nodeport-addresses", "127.0.0.0/8"];

/// `127.0.0.1:port`: a NodePort on the node address.
pub fn node(port: u16) -> SocketAddr {
    addr(Ipv4Addr::LOCALHOST, port)
}

/// A NodePort (30000–32767) nothing listens on now at `127.0.0.1`, and
/// that no other test of this process picks.
pub fn free_node_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let [_, b, c, d] = fresh_ip().octets();
    let base = (u32::from(b) << 16) | (u32::from(c) << 8) | u32::from(d);
    loop {
        let n = base.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed).wrapping_mul(7919));
        let port = 30_000 + (n % 2_768) as u16;
        if std::net::TcpListener::bind(node(port)).is_ok() {
            return port;
        }
    }
}

/// Starts the proxy on `yaml` with `flags` and waits for its first table.
pub fn start(yaml: &str, flags: &[&str]) -> Proxy {
    let mut proxy = Proxy::start(yaml, flags);
    proxy.wait_metric(GENERATION, Duration::from_secs(10), |g| g >= 1.0);
    proxy
}

/// Replaces the manifests with `yaml` (atomically, as editors and
/// `kubectl`-style tools do) and waits for a table built after it.
pub fn edit(proxy: &mut Proxy, yaml: &str) {
    let before = proxy.metric(GENERATION);
    write_by_rename(&proxy.manifest(), yaml);
    proxy.wait_metric(GENERATION, APPLY, |g| g > before);
}

/// Name servers `names`, each on a fresh loopback address.
pub fn servers(names: &[&str]) -> Vec<Endpoint> {
    names.iter().map(|name| Endpoint::name(fresh_ip(), name)).collect()
}
