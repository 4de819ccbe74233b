//! Traffic counters, end to end (DESIGN §5): connections, bytes each way,
//! durations and per-endpoint connections on the real binary's `/metrics`
//! equal exactly what test clients did through the proxy (see
//! `support::metrics` for how a test waits for them).

use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr};
use std::thread;

use crate::support::endpoint::Endpoint;
use crate::support::metrics::{
    ACTIVE, CONNECTIONS, DURATION_BUCKET, DURATION_COUNT, DURATION_SUM, ENDPOINT_CONNECTIONS,
    RECEIVED, REJECTED, SENT, STAY, port_labels, scrape, service_with_pods, settle,
};
use crate::support::net::{self, fresh_ip};
use crate::support::prom::Exposition;
use crate::support::proxy::Proxy;

/// Twenty echo connections, each carrying a different known number of
/// bytes: the connection, byte, endpoint and duration counters equal what
/// the clients did, the active gauge returns to 0, and the endpoint
/// counters show the round robin.
#[test]
fn twenty_echo_connections_are_counted_exactly() {
    const N: usize = 20;
    let endpoints: Vec<Endpoint> = (0..4).map(|_| Endpoint::echo(fresh_ip())).collect();
    let addrs: Vec<SocketAddr> = endpoints.iter().map(|e| e.addr).collect();
    let (frontend, yaml) = service_with_pods("echo", "echo", &addrs);
    let (mut proxy, ()) = Proxy::serving(&yaml, &[], || net::echo(frontend, b"ready?"));
    let port = port_labels("echo", "echo");
    let names: Vec<String> = addrs.iter().map(ToString::to_string).collect();
    let endpoint_labels: Vec<Vec<(&str, &str)>> = names
        .iter()
        .map(|name| {
            let mut labels = port.to_vec();
            labels.push(("endpoint", name));
            labels
        })
        .collect();

    // The readiness probes are connections too: start from where they left
    // the counters, once the last one has ended.
    let before = settle(&mut proxy, "the probes' connections to end", |m| {
        m.value(ACTIVE, &port) == Some(0.0)
    });
    let base = |name: &str| before.get(name, &port);
    let (connections0, received0, sent0, count0) =
        (base(CONNECTIONS), base(RECEIVED), base(SENT), base(DURATION_COUNT));
    let per_endpoint0: Vec<f64> =
        endpoint_labels.iter().map(|l| before.get(ENDPOINT_CONNECTIONS, l)).collect();

    let sizes: Vec<u64> = (0..N as u64).map(|i| 1_000 + i * 20_011).collect();
    let total: u64 = sizes.iter().sum();
    for (i, &size) in sizes.iter().enumerate() {
        let (sent, received) = net::stream_through(frontend, i as u64, size)
            .unwrap_or_else(|e| panic!("connection {i} ({size} bytes): {e}\n{}", proxy.log()));
        assert_eq!(sent.1, size);
        assert_eq!(received, sent, "connection {i}: the echo differs from what was sent");
    }

    let expected = |m: &Exposition| {
        // Reached (then asserted equal below, so an overshoot fails too).
        m.get(CONNECTIONS, &port) >= connections0 + N as f64
            && m.get(RECEIVED, &port) >= received0 + total as f64
            && m.get(SENT, &port) >= sent0 + total as f64
            && m.get(DURATION_COUNT, &port) >= count0 + N as f64
            && m.get(ACTIVE, &port) == 0.0
    };
    let after = settle(&mut proxy, "the twenty connections to be counted", expected);
    let delta = |name: &str, base: f64| after.get(name, &port) - base;
    assert_eq!(delta(CONNECTIONS, connections0), N as f64, "{CONNECTIONS}");
    assert_eq!(delta(RECEIVED, received0), total as f64, "{RECEIVED}: bytes from clients");
    assert_eq!(delta(SENT, sent0), total as f64, "{SENT}: bytes to clients");
    assert_eq!(delta(DURATION_COUNT, count0), N as f64, "{DURATION_COUNT}");
    assert_eq!(after.get(ACTIVE, &port), 0.0, "{ACTIVE}");
    let mut inf = port.to_vec();
    inf.push(("le", "+Inf"));
    assert_eq!(after.get(DURATION_BUCKET, &inf), after.get(DURATION_COUNT, &port));
    assert!(after.get(DURATION_SUM, &port) > before.get(DURATION_SUM, &port));

    // Round robin over four endpoints: five each, and every endpoint's
    // counter is what that endpoint accepted, probes included.
    let per_endpoint: Vec<f64> =
        endpoint_labels.iter().map(|l| after.get(ENDPOINT_CONNECTIONS, l)).collect();
    let deltas: Vec<f64> = per_endpoint.iter().zip(&per_endpoint0).map(|(a, b)| a - b).collect();
    assert_eq!(deltas.iter().sum::<f64>(), N as f64, "per-endpoint deltas {deltas:?}");
    assert_eq!(deltas, vec![5.0; 4], "round robin over 4 endpoints: {deltas:?}");
    let accepted: Vec<f64> = endpoints.iter().map(|e| e.accepted() as f64).collect();
    assert_eq!(per_endpoint, accepted, "{ENDPOINT_CONNECTIONS} vs what each endpoint accepted");
    assert_eq!(
        per_endpoint.iter().sum::<f64>(),
        after.get(CONNECTIONS, &port),
        "every connection reached exactly one endpoint"
    );
    assert_eq!(after.count(ENDPOINT_CONNECTIONS, &port), 4, "one series per endpoint");
    for reason in ["no_endpoints", "connect_failed"] {
        let mut labels = port.to_vec();
        labels.push(("reason", reason));
        assert_eq!(after.get(REJECTED, &labels), 0.0, "{REJECTED} {reason}");
    }

    // Exact means it stays: nothing is counted late or twice.
    thread::sleep(STAY);
    let later = scrape(&mut proxy);
    for name in [CONNECTIONS, RECEIVED, SENT, DURATION_COUNT, ACTIVE] {
        assert_eq!(later.get(name, &port), after.get(name, &port), "{name} moved afterwards");
    }
}

/// The byte counters by direction: a client sends bytes, half-closes, and
/// gets back a longer reply; received counts the former, sent the latter.
#[test]
fn received_and_sent_bytes_are_counted_by_direction() {
    const CLIENTS: usize = 3;
    let endpoint = Endpoint::reply_after_eof(fresh_ip());
    let (frontend, yaml) = service_with_pods("asym", "tcp", &[endpoint.addr]);
    let ask = |message: &[u8]| -> io::Result<Vec<u8>> {
        let mut stream = net::connect(frontend)?;
        stream.write_all(message)?;
        stream.shutdown(Shutdown::Write)?;
        net::read_to_end(&mut stream)
    };
    let (mut proxy, _) = Proxy::serving(&yaml, &[], || ask(b"ready?"));
    let port = port_labels("asym", "tcp");
    let before = settle(&mut proxy, "the probes to end", |m| m.value(ACTIVE, &port) == Some(0.0));
    let (received0, sent0) = (before.get(RECEIVED, &port), before.get(SENT, &port));
    let (mut up, mut down) = (0, 0);
    for i in 0..CLIENTS {
        let message = vec![b'a' + i as u8; 100 * (i + 1)];
        let reply = ask(&message).unwrap_or_else(|e| panic!("client {i}: {e}"));
        let want = format!("got {} bytes: {}", message.len(), String::from_utf8_lossy(&message));
        assert_eq!(reply, want.as_bytes(), "client {i}");
        up += message.len();
        down += reply.len();
    }
    assert_ne!(up, down);
    let after = settle(&mut proxy, "the bytes to be counted", |m| {
        m.value(ACTIVE, &port) == Some(0.0)
            && m.get(RECEIVED, &port) - received0 >= up as f64
            && m.get(SENT, &port) - sent0 >= down as f64
    });
    assert_eq!(after.get(RECEIVED, &port) - received0, up as f64, "{RECEIVED}: from clients");
    assert_eq!(after.get(SENT, &port) - sent0, down as f64, "{SENT}: to clients");
}
