//! `--conntrack-tcp-timeout-close-wait`: once one side of a connection has
//! closed, a connection whose other side carries nothing for that long is
//! reset on both sides and counted; one that keeps carrying bytes is not
//! cut, however long it lasts. In the copy and the splice path alike.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::endpoint::Endpoint;
use crate::support::manifests::service_of;
use crate::support::metrics::{ACTIVE, REJECTED, scrape, settle, value};
use crate::support::net::{self, eventually, fetch, fresh_ip};
use crate::support::proxy::Proxy;

const TIMEOUT: Duration = Duration::from_secs(1);

/// A proxy with a 1 s close-wait timeout, splicing as `splice` says,
/// serving `yaml` and a probe Service it waits for.
fn proxy(yaml: String, splice: &str) -> Proxy {
    let probe = Endpoint::name(fresh_ip(), "probe");
    let (probe_frontend, probe_yaml) = service_of("probe", &[probe.addr]);
    let flags = ["--conntrack-tcp-timeout-close-wait", "1s", "--splice", splice];
    let (proxy, _) = Proxy::serving(&(yaml + &probe_yaml), &flags, || fetch(probe_frontend));
    proxy
}

/// A client of `frontend` that sends `request` and closes its side.
fn request_and_close(frontend: SocketAddr, request: &[u8]) -> TcpStream {
    let mut client =
        eventually("frontend bound", Duration::from_secs(5), || net::connect(frontend));
    client.write_all(request).unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    client
}

#[test]
fn a_pod_that_never_answers_a_closed_client_is_reset_on_both_sides_at_the_timeout() {
    for splice in ["never", "always"] {
        // The pod hands its socket to the test, which neither reads nor
        // writes it until the proxy has given up.
        let (pods, held) = mpsc::channel();
        let pod = Endpoint::spawn(fresh_ip(), move |stream| {
            let _ = pods.send(stream);
        });
        let (frontend, yaml) = service_of("mute", &[pod.addr]);
        let mut proxy = proxy(yaml, splice);

        let mut client = request_and_close(frontend, b"GET / HTTP/1.0\r\n\r\n");
        let start = Instant::now();
        let mut pod_side: TcpStream = held.recv_timeout(Duration::from_secs(5)).unwrap();
        let mut bytes = Vec::new();
        let ended = client.read_to_end(&mut bytes);
        let took = start.elapsed();
        assert!(
            matches!(&ended, Err(e) if e.kind() == ErrorKind::ConnectionReset),
            "--splice {splice}: the client saw {ended:?} after {took:?}, not a reset"
        );
        assert!(bytes.is_empty(), "--splice {splice}: {bytes:?}");
        // A quarter of the timeout is the check's granularity.
        assert!(
            took >= TIMEOUT && took < TIMEOUT * 3,
            "--splice {splice}: reset after {took:?}, the timeout is {TIMEOUT:?}"
        );
        // The pod finds the request and the client's FIN, then its late
        // answer fails at once: the proxy's side is gone, reset (without
        // the reset, the first write to a closed peer would succeed).
        let mut request = Vec::new();
        let _ = pod_side.read_to_end(&mut request);
        assert_eq!(request, b"GET / HTTP/1.0\r\n\r\n", "--splice {splice}");
        let late = pod_side.write(b"HTTP/1.0 200 OK\r\n\r\n");
        assert!(
            matches!(&late, Err(e) if matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset)),
            "--splice {splice}: the pod's late answer gave {late:?}: its connection was not reset"
        );
        let labels = [("service", "mute"), ("reason", "close_wait_timeout")];
        let metrics = settle(&mut proxy, "connection closed", |m| {
            value(m, ACTIVE, &[("service", "mute")]) == 0.0
        });
        assert_eq!(metrics.get(REJECTED, &labels), 1.0, "--splice {splice}");
    }
}

#[test]
fn a_pod_still_streaming_to_a_closed_client_is_not_cut() {
    for splice in ["never", "always"] {
        // Reads the request to its end, then answers in ten parts, 200 ms
        // apart: two seconds, twice the timeout, never silent for one.
        let pod = Endpoint::spawn(fresh_ip(), |mut stream| {
            let Ok(_) = net::read_to_end(&mut stream) else { return };
            for i in 0..10 {
                thread::sleep(Duration::from_millis(200));
                let Ok(()) = stream.write_all(format!("part {i}\n").as_bytes()) else { return };
            }
        });
        let (frontend, yaml) = service_of("streaming", &[pod.addr]);
        let mut proxy = proxy(yaml, splice);

        let mut client = request_and_close(frontend, b"GET /slow HTTP/1.0\r\n\r\n");
        let start = Instant::now();
        let answer = net::read_to_end(&mut client)
            .unwrap_or_else(|e| panic!("--splice {splice}: {e}\n{}", proxy.log()));
        let expected: String = (0..10).map(|i| format!("part {i}\n")).collect();
        assert_eq!(String::from_utf8_lossy(&answer), expected, "--splice {splice}");
        assert!(start.elapsed() >= TIMEOUT * 2, "the answer took {:?}", start.elapsed());
        let labels = [("service", "streaming"), ("reason", "close_wait_timeout")];
        assert_eq!(scrape(&mut proxy).get(REJECTED, &labels), 0.0, "--splice {splice}");
    }
}
