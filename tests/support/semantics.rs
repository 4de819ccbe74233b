//! TCP's semantics through the proxy, each check runnable under any flags
//! (`--splice always`, `never`, or the default): a half-close travels one
//! way while the other way keeps flowing, in both directions, and a reset
//! on one side becomes a reset on the other.

use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use super::endpoint::{Ending, Endpoint};
use super::manifests::service_of;
use super::net::{self, connect, fetch, fresh_ip, read_to_end};
use super::proxy::Proxy;

/// The client half-closes; the endpoint answers only once it has read EOF,
/// so the reply proves the FIN went through while the way back stayed open.
pub fn client_half_close(flags: &[&str]) {
    let endpoint = Endpoint::reply_after_eof(fresh_ip());
    let (frontend, yaml) = service_of("halfclose", &[endpoint.addr]);
    let exchange = |message: &str| -> std::io::Result<String> {
        let mut stream = connect(frontend)?;
        stream.write_all(message.as_bytes())?;
        stream.shutdown(Shutdown::Write)?;
        net::text(read_to_end(&mut stream)?)
    };
    let (_proxy, _) = Proxy::serving(&yaml, flags, || exchange("probe"));

    assert_eq!(exchange("ping").expect("half-closed exchange"), "got 4 bytes: ping", "{flags:?}");
    // Over one copy buffer: under `auto` the direction moves to splice.
    let big = "x".repeat(300_000);
    let reply = exchange(&big).expect("half-closed exchange of 300 kB");
    assert_eq!(reply.len(), "got 300000 bytes: ".len() + big.len(), "{flags:?}");
    assert!(reply.starts_with("got 300000 bytes: "), "{flags:?}: {}", &reply[..40]);
}

/// The endpoint sends a banner and half-closes; the client reads it to EOF
/// and can still send, and what it sends reaches the endpoint, then a FIN.
pub fn endpoint_half_close(flags: &[&str]) {
    let (endpoint, rx) = Endpoint::banner_then_read(fresh_ip(), "banner");
    let (frontend, yaml) = service_of("banner", &[endpoint.addr]);
    let exchange = |message: &str| -> std::io::Result<String> {
        let mut stream = connect(frontend)?;
        let banner = net::text(read_to_end(&mut stream)?)?;
        stream.write_all(message.as_bytes())?;
        stream.shutdown(Shutdown::Write)?;
        // Both ways are closed now: the proxy ends the connection.
        let rest = read_to_end(&mut stream)?;
        assert!(rest.is_empty(), "{flags:?}: bytes after EOF: {rest:?}");
        Ok(banner)
    };
    let (_proxy, _) = Proxy::serving(&yaml, flags, || exchange("probe"));

    assert_eq!(exchange("late data").expect("exchange"), "banner", "{flags:?}");
    assert_eq!(
        next_ending(&rx, &Ending::Eof(b"probe".to_vec())),
        Ending::Eof(b"late data".to_vec()),
        "{flags:?}: what the client sent after the endpoint's FIN should reach it, then a FIN"
    );
}

/// The endpoint resets: the client sees a reset, not a clean EOF.
pub fn endpoint_reset(flags: &[&str]) {
    let resetter = Endpoint::reset_after(fresh_ip(), Duration::from_millis(100));
    let (frontend, yaml) = service_of("resetter", &[resetter.addr]);
    let probe = Endpoint::name(fresh_ip(), "probe");
    let (probe_frontend, probe_yaml) = service_of("probe", &[probe.addr]);
    let (_proxy, _) = Proxy::serving(&(yaml + &probe_yaml), flags, || fetch(probe_frontend));

    let mut stream =
        net::eventually("frontend bound", Duration::from_secs(5), || connect(frontend));
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        Ok(0) => panic!("{flags:?}: the endpoint reset its connection but the client saw an EOF"),
        Ok(n) => panic!("{flags:?}: unexpected bytes: {:?}", &buf[..n]),
        Err(e) => panic!("{flags:?}: expected a reset, got {e}"),
    }
}

/// The client resets: the endpoint sees a reset, after the bytes sent.
pub fn client_reset(flags: &[&str]) {
    let (endpoint, rx) = Endpoint::echo_reporting(fresh_ip());
    let (frontend, yaml) = service_of("echo", &[endpoint.addr]);
    let (_proxy, _) = Proxy::serving(&yaml, flags, || net::echo(frontend, b"probe"));

    let mut stream = connect(frontend).expect("connect");
    stream.write_all(b"abc").expect("write");
    let mut back = [0u8; 3];
    stream.read_exact(&mut back).expect("echo");
    assert_eq!(&back, b"abc", "{flags:?}");
    net::reset(stream);
    assert_eq!(
        next_ending(&rx, &Ending::Eof(b"probe".to_vec())),
        Ending::Reset(b"abc".to_vec()),
        "{flags:?}: the client's reset should reach the endpoint as a reset"
    );
}

/// The next ending the endpoint reports that is not `skip` (the readiness
/// probe's), within 5 s.
fn next_ending(rx: &Receiver<Ending>, skip: &Ending) -> Ending {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let left = until.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(ending) if ending == *skip => continue,
            Ok(ending) => return ending,
            Err(e) => panic!("the endpoint reported no end of the connection within 5 s: {e}"),
        }
    }
}
