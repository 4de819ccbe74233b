//! The listeners' sockets (DESIGN §4): SO_REUSEADDR, so a restarted proxy
//! binds its frontends over TIME_WAIT at once; never SO_REUSEPORT, so no
//! other socket can share a frontend the proxy serves.

use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use socket2::{Domain, SockAddr, Socket, Type};

use crate::support::endpoint::Endpoint;
use crate::support::manifests::{pod_at, simple_service};
use crate::support::net::{addr, fetch, fresh_ip};
use crate::support::proxy::Proxy;
use crate::support::tagged::{Named, PORT, service_of, visit_expecting};

/// Bound on every wait that is not itself the point of a test.
const WAIT: Duration = Duration::from_secs(10);

/// A socket bound to `to` the way another process would try it, with
/// SO_REUSEADDR and SO_REUSEPORT as asked.
fn bind_like_another_process(to: SocketAddr, reuse_addr: bool, reuse_port: bool) -> io::Result<()> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.set_reuse_address(reuse_addr)?;
    socket.set_reuse_port(reuse_port)?;
    socket.bind(&SockAddr::from(to))?;
    socket.listen(1)
}

/// DESIGN §4: listeners set SO_REUSEADDR, so a restart does not wait for
/// TIME_WAIT: the first proxy's closed connections leave TIME_WAIT
/// sockets on the frontend (a bind without SO_REUSEADDR fails there), yet
/// a second proxy binds it at once.
#[test]
fn a_restarted_proxy_binds_its_frontend_over_time_wait_at_once() {
    let ip = fresh_ip();
    let frontend = addr(ip, PORT);
    // The endpoint closes first, so the proxy closes its client side first
    // and that socket, on the frontend address, ends in TIME_WAIT.
    let e = Endpoint::name(fresh_ip(), "tw-1");
    let yaml = simple_service("tw", ip, PORT, true) + &pod_at("tw-1", "tw", e.addr);
    let (mut first, _) = Proxy::serving(&yaml, &[], || fetch(frontend));
    for i in 0..3 {
        assert_eq!(fetch(frontend).unwrap_or_else(|err| panic!("client {i}: {err}")), "tw-1");
    }
    first.signal("TERM");
    let status = first
        .wait_exit(WAIT)
        .unwrap_or_else(|| panic!("first proxy still running\n{}", first.log()));
    assert_eq!(status.code(), Some(0), "{}", first.log());
    match bind_like_another_process(frontend, false, false) {
        Err(err) if err.kind() == ErrorKind::AddrInUse => {}
        other => panic!(
            "no TIME_WAIT left on {frontend} (a plain bind gave {other:?}): the test cannot \
             show SO_REUSEADDR"
        ),
    }

    let start = Instant::now();
    let (second, _) = Proxy::serving(&yaml, &[], || fetch(frontend));
    let took = start.elapsed();
    assert!(
        !second.warned(&["cannot bind frontend"]),
        "the restart could not bind at first ({took:?})\n{}",
        second.log()
    );
}

/// DESIGN §4: never SO_REUSEPORT: while the proxy serves a frontend, no
/// other socket can bind it, even one that sets SO_REUSEPORT itself.
#[test]
fn no_other_socket_can_share_a_frontend_through_so_reuseport() {
    let ip = fresh_ip();
    let frontend = addr(ip, PORT);
    let e = Named::echo("e");
    let (mut proxy, ()) =
        Proxy::serving(&service_of("web", ip, &[&e]), &[], || visit_expecting(frontend, "e"));
    for (reuse_addr, reuse_port) in [(true, true), (false, true)] {
        match bind_like_another_process(frontend, reuse_addr, reuse_port) {
            Err(err) if err.kind() == ErrorKind::AddrInUse => {}
            other => panic!(
                "binding {frontend} with SO_REUSEADDR={reuse_addr} SO_REUSEPORT={reuse_port} \
                 beside the proxy gave {other:?}\n{}",
                proxy.log()
            ),
        }
    }
    visit_expecting(frontend, "e").expect("the proxy still serves its frontend");
    proxy.assert_running();
}
