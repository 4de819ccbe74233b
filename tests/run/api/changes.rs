//! Changes on the API server, routed within `--min-sync-period` + 1 s;
//! live connections never touched.

use std::io::{self, Read as _, Write as _};
use std::net::SocketAddr;
use std::time::Instant;

use super::{Cluster, ROUTED, service};
use crate::support::endpoint::Endpoint;
use crate::support::manifests::{Ep, slices};
use crate::support::net::{connect, eventually, fetch, fresh_ip, refuses};

/// The first two bytes an endpoint sends on a new connection: its name.
fn name(frontend: SocketAddr) -> io::Result<String> {
    let mut stream = connect(frontend)?;
    let mut name = [0; 2];
    stream.read_exact(&mut name)?;
    Ok(String::from_utf8_lossy(&name).into_owned())
}

#[test]
fn an_endpoint_slice_change_reroutes_new_connections_and_leaves_live_ones() {
    let cluster = Cluster::start();
    // e1 says its name, then echoes.
    let e1 = Endpoint::spawn(fresh_ip(), |mut stream| {
        let _ = stream.write_all(b"e1");
        let mut reader = stream.try_clone().expect("clone");
        let _ = io::copy(&mut reader, &mut stream);
    });
    let e2 = Endpoint::name(fresh_ip(), "e2");
    let (frontend, objects) = service("web", &[&e1]);
    cluster.api.apply(&objects);
    let mut proxy = cluster.proxy(&[]);
    let mut live = proxy.wait_ready(|| connect(frontend));
    let mut buf = [0; 2];
    live.read_exact(&mut buf).expect("e1's name");
    assert_eq!(&buf, b"e1");

    let changed = Instant::now();
    cluster.api.apply(&slices("web", &[Ep::ready(&e2)]));
    let got = eventually("routed to e2", ROUTED, || match name(frontend) {
        Ok(name) if name == "e2" => Ok(changed.elapsed()),
        Ok(other) => Err(format!("still {other:?}")),
        Err(e) => Err(e.to_string()),
    });
    eprintln!("note: an EndpointSlice change was routed in {got:?}");

    // The connection made before the change still talks to e1.
    live.write_all(b"hi").expect("write after the change");
    live.read_exact(&mut buf).expect("echoed after the change");
    assert_eq!(&buf, b"hi");
    proxy.assert_running();
}

#[test]
fn services_added_and_deleted_are_served_and_removed() {
    let cluster = Cluster::start();
    let (a, b) = (Endpoint::name(fresh_ip(), "a"), Endpoint::name(fresh_ip(), "b"));
    let (first, objects) = service("first", &[&a]);
    cluster.api.apply(&objects);
    let mut proxy = cluster.serving(&[], first, "a");

    let (second, objects) = service("second", &[&b]);
    cluster.api.apply(&objects);
    let got = eventually("the added Service served", ROUTED, || fetch(second));
    assert_eq!(got, "b");

    cluster.api.delete("Service", "default", "first");
    eventually("the deleted Service's frontend closed", ROUTED, || {
        if refuses(first) { Ok(()) } else { Err("still accepting") }
    });
    assert_eq!(fetch(second).expect("the other Service still served"), "b");
    proxy.assert_running();
}
