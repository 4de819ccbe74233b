//! The HTTP mode: Service ports whose `appProtocol` says HTTP are balanced
//! per request, whatever the client's connection does.

use std::collections::BTreeMap;
use std::io::{self, BufRead as _, BufReader, Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::time::Duration;

use crate::support::http::{HttpEndpoint, field, hash_of, name_of};
use crate::support::manifests::ipv4;
use crate::support::net::{addr, fresh_ip};
use crate::support::proxy::Proxy;

mod access_log;
mod frames;
mod grpc;
mod least_request;
mod metrics;
mod protection;
mod shortage;
mod swap;
mod timeouts;
mod websocket;

const PORT: u16 = 8080;

/// A Service `web` on a fresh ClusterIP whose one port says `app_protocol`,
/// with an EndpointSlice per endpoint: its frontend and its manifest.
fn service(app_protocol: &str, endpoints: &[SocketAddr]) -> (SocketAddr, String) {
    service_named("web", app_protocol, endpoints)
}

/// [`service`] named `name` (its port is still `web`).
fn service_named(name: &str, app_protocol: &str, endpoints: &[SocketAddr]) -> (SocketAddr, String) {
    let ip = fresh_ip();
    let mut yaml = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  \
         clusterIP: {ip}\n  ports: [{{name: web, port: {PORT}, targetPort: web, appProtocol: \
         {app_protocol}}}]\n"
    );
    for (i, endpoint) in endpoints.iter().enumerate() {
        yaml.push_str(&format!(
            "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: {name}-{i}, \
             namespace: default, labels: {{kubernetes.io/service-name: {name}}}}}\naddressType: IPv4\n\
             ports: [{{name: web, port: {}}}]\nendpoints: [{{addresses: [\"{}\"]}}]\n",
            endpoint.port(),
            ipv4(*endpoint)
        ));
    }
    (addr(ip, PORT), yaml)
}

fn endpoints(names: &[&str]) -> Vec<HttpEndpoint> {
    names.iter().map(|n| HttpEndpoint::start(fresh_ip(), n)).collect()
}

fn addrs(endpoints: &[HttpEndpoint]) -> Vec<SocketAddr> {
    endpoints.iter().map(|e| e.addr).collect()
}

/// One HTTP/1.1 exchange on a kept-alive connection: status, headers
/// (lower-case names), body.
fn exchange(
    stream: &mut BufReader<TcpStream>,
    head: &str,
) -> io::Result<(u16, BTreeMap<String, String>, String)> {
    stream.get_mut().write_all(head.as_bytes())?;
    response(stream)
}

/// The next response on `stream`: status, headers (lower-case names),
/// body (by Content-Length).
fn response(
    stream: &mut BufReader<TcpStream>,
) -> io::Result<(u16, BTreeMap<String, String>, String)> {
    let mut line = String::new();
    stream.read_line(&mut line)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other(format!("no status line: {line:?}")))?;
    let mut headers = BTreeMap::new();
    loop {
        line.clear();
        stream.read_line(&mut line)?;
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        if let Some((k, v)) = trimmed.split_once(':') {
            headers.insert(k.trim().to_lowercase(), v.trim().to_owned());
        }
    }
    let length: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut body = vec![0; length];
    stream.read_exact(&mut body)?;
    Ok((status, headers, String::from_utf8_lossy(&body).into_owned()))
}

fn try_keep_alive(frontend: SocketAddr) -> io::Result<BufReader<TcpStream>> {
    let stream = TcpStream::connect_timeout(&frontend, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    Ok(BufReader::new(stream))
}

fn keep_alive(frontend: SocketAddr) -> BufReader<TcpStream> {
    try_keep_alive(frontend).expect("connect")
}

/// One request on a new connection.
fn once(frontend: SocketAddr) -> io::Result<(u16, BTreeMap<String, String>, String)> {
    exchange(&mut try_keep_alive(frontend)?, GET)
}

const GET: &str = "GET /hello?x=1 HTTP/1.1\r\nHost: web.default\r\n\r\n";

fn serving(manifest: &str, frontend: SocketAddr) -> Proxy {
    let mut proxy = Proxy::start(manifest, &[]);
    proxy.wait_ready(|| once(frontend));
    proxy
}

fn tally<'a>(names: impl Iterator<Item = &'a str>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for name in names {
        *counts.entry(name.to_owned()).or_default() += 1;
    }
    counts
}

#[test]
fn thirty_requests_on_one_keep_alive_connection_spread_10_10_10() {
    let pods = endpoints(&["a", "b", "c"]);
    let (frontend, manifest) = service("http", &addrs(&pods));
    let mut proxy = serving(&manifest, frontend);
    let mut connection = keep_alive(frontend);
    let mut names = Vec::new();
    for _ in 0..30 {
        let (status, _, body) =
            exchange(&mut connection, GET).unwrap_or_else(|e| panic!("{e}\n{}", proxy.log()));
        assert_eq!(status, 200, "{body}");
        names.push(name_of(&body).to_owned());
    }
    let counts = tally(names.iter().map(String::as_str));
    assert_eq!(counts.values().copied().collect::<Vec<_>>(), [10, 10, 10], "{counts:?}");
    proxy.assert_running();
}

#[test]
fn sequential_requests_reuse_one_pod_connection() {
    let pods = endpoints(&["a"]);
    let (frontend, manifest) = service("http", &addrs(&pods));
    let mut proxy = serving(&manifest, frontend);
    let series = format!(
        "svcproxy_endpoint_connections_total{{namespace=\"default\",service=\"web\",port=\"web\",\
         endpoint=\"{}\"}}",
        pods[0].addr
    );
    let before = proxy.metric(&series);
    let mut connection = keep_alive(frontend);
    for i in 0..100 {
        let (status, _, body) = exchange(&mut connection, GET).unwrap();
        assert_eq!((status, name_of(&body)), (200, "a"), "request {i}");
    }
    // Each response ended before the next request: the pod connection went
    // back to the pool every time (one more for a race at most).
    let opened = proxy.metric(&series) - before;
    assert!(opened <= 2.0, "{opened} pod connections for 100 sequential requests");
}

#[test]
fn thirty_h2c_streams_on_one_connection_spread_10_10_10_to_http1_pods() {
    let pods = endpoints(&["a", "b", "c"]);
    let (frontend, manifest) = service("http", &addrs(&pods));
    let mut proxy = serving(&manifest, frontend);
    let before: usize = pods.iter().map(HttpEndpoint::served).sum();
    // One client, one HTTP/2 connection (prior knowledge), 30 streams, 10
    // at a time.
    let url = format!("http://{frontend}/");
    let out = Command::new("h2load")
        .args(["-n", "30", "-c", "1", "-m", "10", &url])
        .output()
        .expect("h2load (apt-get install nghttp2-client)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", proxy.log());
    assert!(text.contains("Application protocol: h2c"), "{text}");
    assert!(text.contains("30 succeeded"), "{text}\n{}", proxy.log());
    let served: Vec<usize> = pods.iter().map(HttpEndpoint::served).collect();
    assert_eq!(served.iter().sum::<usize>() - before, 30, "{served:?}");
    // The readiness probe's request went to one of them.
    let spread: Vec<usize> = {
        let mut s = served.clone();
        s.sort_unstable();
        s
    };
    assert!(spread[0] >= 10 && spread[2] <= 11, "30 streams over 3 pods: {served:?}");
    proxy.assert_running();
}

#[test]
fn an_http1_client_reaches_an_h2c_pod_and_the_authority_is_kept() {
    let pods = endpoints(&["a", "b", "c"]);
    let (frontend, manifest) = service("kubernetes.io/h2c", &addrs(&pods));
    let proxy = serving(&manifest, frontend);
    let mut connection = keep_alive(frontend);
    let mut names = Vec::new();
    for _ in 0..30 {
        let (status, _, body) =
            exchange(&mut connection, GET).unwrap_or_else(|e| panic!("{e}\n{}", proxy.log()));
        assert_eq!(status, 200, "{body}");
        assert_eq!(field(&body, "version"), Some("HTTP/2.0"), "{body}");
        assert_eq!(field(&body, "uri"), Some("http://web.default/hello?x=1"), "{body}");
        names.push(name_of(&body).to_owned());
    }
    let counts = tally(names.iter().map(String::as_str));
    assert_eq!(counts.values().copied().collect::<Vec<_>>(), [10, 10, 10], "{counts:?}");
}

#[test]
fn the_pod_sees_x_forwarded_for_and_no_hop_by_hop_fields() {
    let pods = endpoints(&["a"]);
    let (frontend, manifest) = service("http", &addrs(&pods));
    let _proxy = serving(&manifest, frontend);
    let client: Ipv4Addr = fresh_ip();
    let stream = crate::support::net::connect_from(client, frontend).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let mut connection = BufReader::new(stream);
    let head = "GET / HTTP/1.1\r\nHost: web\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\n\
                Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\n\
                X-Forwarded-For: 203.0.113.7\r\nX-Kept: yes\r\n\r\n";
    let (status, _, body) = exchange(&mut connection, head).expect("exchange");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        field(&body, "x-forwarded-for"),
        Some(format!("203.0.113.7, {client}").as_str()),
        "{body}"
    );
    assert_eq!(field(&body, "x-forwarded-proto"), Some("http"), "{body}");
    assert_eq!(field(&body, "host"), Some("web"), "{body}");
    assert_eq!(field(&body, "x-kept"), Some("yes"), "{body}");
    assert_eq!(field(&body, "te"), Some("trailers"), "{body}");
    for gone in ["x-secret", "keep-alive", "proxy-connection"] {
        assert_eq!(field(&body, gone), None, "{gone} reached the pod:\n{body}");
    }
}

#[test]
fn no_endpoint_is_a_503_naming_the_service_port_and_a_dead_one_a_502() {
    let (frontend, manifest) = service("http", &[]);
    let mut proxy = Proxy::start(&manifest, &[]);
    let (status, _, body) = proxy.wait_ready(|| once(frontend));
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("default/web") && body.contains("web"), "{body}");

    let (frontend, manifest) = service("http", &[resetting_pod()]);
    let mut proxy = Proxy::start(&manifest, &[]);
    let (status, _, body) = proxy.wait_ready(|| once(frontend));
    assert_eq!(status, 502, "{body}");
}

/// A pod that resets every connection before answering.
fn resetting_pod() -> SocketAddr {
    let listener = std::net::TcpListener::bind((fresh_ip(), 0)).expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
            let mut buf = [0; 1024];
            let _ = (&stream).read(&mut buf);
            drop(stream);
        }
    });
    addr
}

/// An endpoint that accepts any upgrade (101), then echoes bytes: the
/// mechanism WebSocket rides on.
fn upgrade_echo(ip: Ipv4Addr) -> SocketAddr {
    let listener = std::net::TcpListener::bind((ip, 0)).expect("bind");
    let local = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                    line.clear();
                }
                let mut stream = stream;
                let head = "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n";
                if stream.write_all(head.as_bytes()).is_ok() {
                    let _ = io::copy(&mut reader, &mut stream);
                }
            });
        }
    });
    local
}

#[test]
fn an_upgrade_the_pod_accepts_is_tunnelled_both_ways() {
    let pod = upgrade_echo(fresh_ip());
    let (frontend, manifest) = service("http", &[pod]);
    let mut proxy = Proxy::start(&manifest, &[]);
    let mut connection = proxy.wait_ready(|| try_keep_alive(frontend));
    let head = "GET /chat HTTP/1.1\r\nHost: web\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n";
    let (status, headers, _) = exchange(&mut connection, head).expect("the upgrade");
    assert_eq!(status, 101, "{headers:?}\n{}", proxy.log());
    assert_eq!(headers.get("upgrade").map(String::as_str), Some("echo"));
    // 1 MiB, then 100 small messages, echoed.
    let big: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
    let writer = {
        let mut stream = connection.get_ref().try_clone().expect("clone");
        let big = big.clone();
        std::thread::spawn(move || {
            stream.write_all(&big).expect("write 1 MiB");
            for i in 0..100 {
                stream.write_all(format!("message {i:03}\n").as_bytes()).expect("write");
            }
        })
    };
    let mut echoed = vec![0; big.len()];
    connection.read_exact(&mut echoed).expect("1 MiB back");
    assert!(echoed == big, "the 1 MiB came back changed");
    for i in 0..100 {
        let mut line = String::new();
        connection.read_line(&mut line).expect("a message back");
        assert_eq!(line, format!("message {i:03}\n"));
    }
    writer.join().expect("writer");
}

#[test]
fn a_5_mib_post_reaches_the_pod_whole() {
    let pods = endpoints(&["a"]);
    let (frontend, manifest) = service("http", &addrs(&pods));
    let _proxy = serving(&manifest, frontend);
    let body: Vec<u8> =
        (0..5u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let mut connection = keep_alive(frontend);
    let head =
        format!("POST /upload HTTP/1.1\r\nHost: web\r\nContent-Length: {}\r\n\r\n", body.len());
    connection.get_mut().write_all(head.as_bytes()).expect("head");
    connection.get_mut().write_all(&body).expect("body");
    let (status, _, answer) = response(&mut connection).expect("response");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(field(&answer, "body"), Some((5u32 << 20).to_string().as_str()), "{answer}");
    assert_eq!(field(&answer, "hash"), Some(hash_of(&body).as_str()), "{answer}");
}

/// 1 GiB each way through the proxy, streamed: its resident memory stays
/// bounded (hyper's backpressure, no body held whole).
#[test]
fn a_gib_up_and_a_gib_down_pass_with_bounded_proxy_memory() {
    const GIB: u64 = 1 << 30;
    let pods = endpoints(&["a"]);
    let (frontend, manifest) = service("http", &addrs(&pods));
    let proxy = serving(&manifest, frontend);
    let before = proxy.rss_kib();
    let mut peak = before;

    // Down: /bytes/N is streamed by the pod.
    let mut connection = keep_alive(frontend);
    let head = format!("GET /bytes/{GIB} HTTP/1.1\r\nHost: web\r\n\r\n");
    connection.get_mut().write_all(head.as_bytes()).expect("head");
    let mut line = String::new();
    while connection.read_line(&mut line).expect("head line") > 2 {
        line.clear();
    }
    let mut chunk = vec![0; 1 << 20];
    let mut got = 0u64;
    while got < GIB {
        let n = connection.read(&mut chunk).expect("body");
        assert!(n > 0, "the download ended after {got} bytes");
        got += n as u64;
        if got % (64 << 20) < n as u64 {
            peak = peak.max(proxy.rss_kib());
        }
    }

    // Up: a 1 GiB POST, hashed by length at the pod.
    let mut connection = keep_alive(frontend);
    let head = format!("POST /upload HTTP/1.1\r\nHost: web\r\nContent-Length: {GIB}\r\n\r\n");
    connection.get_mut().write_all(head.as_bytes()).expect("head");
    let zeros = vec![0u8; 1 << 20];
    for i in 0..(GIB >> 20) {
        connection.get_mut().write_all(&zeros).expect("upload");
        if i % 64 == 0 {
            peak = peak.max(proxy.rss_kib());
        }
    }
    let (status, _, answer) = response(&mut connection).expect("response");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(field(&answer, "body"), Some(GIB.to_string().as_str()), "{answer}");
    eprintln!("note: proxy RSS {before} KiB before, peak {peak} KiB while 1 GiB went each way");
    assert!(peak < before + 64 * 1024, "RSS grew from {before} to {peak} KiB");
}

/// SIGTERM while 20 slow requests are in flight: each gets its whole
/// response; a new connection is refused at once.
#[test]
fn sigterm_lets_in_flight_requests_finish_and_refuses_new_ones() {
    let pods = endpoints(&["a", "b"]);
    let (frontend, manifest) = service("http", &addrs(&pods));
    let mut proxy = serving(&manifest, frontend);
    let before: usize = pods.iter().map(HttpEndpoint::served).sum();
    let slow: Vec<_> = (0..20)
        .map(|_| {
            std::thread::spawn(move || {
                let mut connection = try_keep_alive(frontend)?;
                exchange(&mut connection, "GET /slow/1500 HTTP/1.1\r\nHost: web\r\n\r\n")
            })
        })
        .collect();
    // Every request reached its pod (each answers after 1.5 s).
    crate::support::net::eventually("20 requests in flight", Duration::from_secs(5), || {
        let arrived = pods.iter().map(HttpEndpoint::served).sum::<usize>() - before;
        if arrived >= 20 { Ok(()) } else { Err(format!("{arrived} arrived")) }
    });
    proxy.signal("TERM");
    crate::support::net::eventually("the listener closed", Duration::from_secs(2), || {
        if crate::support::net::refuses(frontend) { Ok(()) } else { Err("still accepting") }
    });
    for request in slow {
        let (status, headers, body) = request.join().expect("thread").expect("a whole response");
        assert_eq!(status, 200, "{body}");
        assert_eq!(headers.get("connection").map(String::as_str), Some("close"), "{headers:?}");
    }
    let status = proxy.wait_exit(Duration::from_secs(10)).expect("exited after the drain");
    assert!(status.success(), "{status}\n{}", proxy.log());
}

/// `check` names each HTTP port and how its pods are spoken to; a port
/// named http without appProtocol stays TCP unless asked.
#[test]
fn check_names_each_http_port_and_how_its_pods_are_spoken_to() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("web.yaml");
    let manifest = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default}\n\
                    spec:\n  clusterIP: 10.96.0.10\n  ports:\n  \
                    - {name: web, port: 80, appProtocol: http}\n  \
                    - {name: api, port: 9090, appProtocol: grpc}\n  \
                    - {name: http, port: 8080}\n";
    std::fs::write(&path, manifest).expect("write");
    let out = crate::support::check([path.to_str().expect("utf-8")]);
    assert_eq!(out.code(), Some(0), "{out}");
    let notes: Vec<&str> = out.stderr.lines().filter(|l| l.contains("is HTTP")).collect();
    assert_eq!(notes.len(), 2, "{out}");
    assert!(notes.iter().any(|n| n.contains("port web") && n.contains("HTTP/1.1")), "{out}");
    assert!(notes.iter().any(|n| n.contains("port api") && n.contains("h2c")), "{out}");
    let by_name = crate::support::check([path.to_str().expect("utf-8"), "--http-by-port-name"]);
    let notes = by_name.stderr.lines().filter(|l| l.contains("is HTTP")).count();
    assert_eq!(notes, 3, "--http-by-port-name makes the port named http HTTP too\n{by_name}");
}

/// A pod removed while a client sends request after request on one
/// keep-alive connection: no request fails, and the removed pod gets no
/// request once the change is published.
#[test]
fn a_pod_removed_during_keep_alive_requests_fails_no_request() {
    let pods = endpoints(&["a", "b", "c"]);
    let (frontend, manifest) = service("http", &addrs(&pods));
    let mut proxy = serving(&manifest, frontend);
    let mut connection = keep_alive(frontend);
    // The same Service and ClusterIP, c's slice gone.
    let slice_c =
        "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: web-2";
    let without_c = manifest[..manifest.find(slice_c).expect("c's slice")].to_owned();
    let mut removed_at = None;
    let mut names = Vec::new();
    for i in 0..300 {
        if i == 30 {
            crate::support::manifests::write_by_rename(&proxy.manifest(), &without_c);
            removed_at = Some(proxy.metric("svcproxy_routing_generation"));
        }
        let (status, _, body) = exchange(&mut connection, GET)
            .unwrap_or_else(|e| panic!("request {i}: {e}\n{}", proxy.log()));
        assert_eq!(status, 200, "request {i}: {body}\n{}", proxy.log());
        names.push(name_of(&body).to_owned());
        std::thread::sleep(Duration::from_millis(5));
    }
    let published = proxy.metric("svcproxy_routing_generation");
    assert!(published > removed_at.unwrap_or_default(), "the change was published");
    // The last requests all went to a and b.
    assert!(names[250..].iter().all(|n| n != "c"), "{names:?}");
}

/// A gRPC client never gets an HTML page it cannot parse: with no
/// endpoint it gets a trailers-only UNAVAILABLE (HTTP 200, grpc-status 14).
#[test]
fn a_grpc_client_gets_grpc_status_unavailable_not_a_page() {
    let (frontend, manifest) = service("grpc", &[]);
    let mut proxy = Proxy::start(&manifest, &[]);
    let head = "POST /pkg.Svc/Call HTTP/1.1\r\nHost: web\r\nContent-Type: application/grpc\r\n\
                TE: trailers\r\nContent-Length: 0\r\n\r\n";
    let (status, headers, _) = proxy.wait_ready(|| exchange(&mut try_keep_alive(frontend)?, head));
    assert_eq!(status, 200, "{headers:?}");
    assert_eq!(headers.get("grpc-status").map(String::as_str), Some("14"), "{headers:?}");
    assert_eq!(headers.get("content-type").map(String::as_str), Some("application/grpc"));
}

/// A pod that reads a request, then resets the connection.
fn resetting(ip: Ipv4Addr) -> SocketAddr {
    let listener = std::net::TcpListener::bind((ip, 0)).expect("bind");
    let local = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
            let mut buf = [0; 4096];
            let _ = (&stream).read(&mut buf);
        }
    });
    local
}

/// A pod that resets: an idempotent request without a body is sent again
/// to the next endpoint; a POST with a body is not (502).
#[test]
fn only_idempotent_requests_without_a_body_are_sent_to_another_pod_after_a_reset() {
    let good = HttpEndpoint::start(fresh_ip(), "good");
    let dead = resetting(fresh_ip());
    let (frontend, manifest) = service("http", &[good.addr, dead]);
    let mut proxy = serving(&manifest, frontend);
    for i in 0..6 {
        let (status, _, body) = once(frontend).expect("GET");
        assert_eq!(status, 200, "GET {i} is sent again to the good pod: {body}\n{}", proxy.log());
    }
    let post = "POST /x HTTP/1.1\r\nHost: web\r\nContent-Length: 5\r\n\r\nhello";
    let statuses: Vec<u16> =
        (0..6).map(|_| exchange(&mut keep_alive(frontend), post).expect("POST").0).collect();
    assert!(statuses.contains(&502), "a POST that reached the dead pod is a 502: {statuses:?}");
    assert!(statuses.iter().all(|s| [200, 502].contains(s)), "{statuses:?}");
    proxy.assert_running();
}

/// A client that sends its head a byte at a time is cut after
/// `--http-header-timeout`, while other clients are served; a head over
/// `--http-max-header-bytes` gets 431.
#[test]
fn a_slow_head_is_cut_after_the_header_timeout_and_a_huge_one_refused() {
    let pods = endpoints(&["a"]);
    let (frontend, manifest) = service("http", &addrs(&pods));
    let mut proxy = Proxy::start(
        &manifest,
        &["--http-header-timeout", "1s", "--http-max-header-bytes", "8192"],
    );
    proxy.wait_ready(|| once(frontend));
    let mut slow = keep_alive(frontend);
    slow.get_mut().write_all(b"GET / HTTP/1.1\r\nHost: web\r\n").expect("a partial head");
    let started = std::time::Instant::now();
    // Others are served meanwhile.
    for _ in 0..5 {
        assert_eq!(once(frontend).expect("served").0, 200);
    }
    let mut rest = Vec::new();
    let n = slow.read_to_end(&mut rest).unwrap_or(0);
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(5), "cut after {waited:?}");
    assert!(
        n == 0 || String::from_utf8_lossy(&rest).contains("408"),
        "{}",
        String::from_utf8_lossy(&rest)
    );

    let huge = format!("GET / HTTP/1.1\r\nHost: web\r\nX-Big: {}\r\n\r\n", "x".repeat(16 * 1024));
    let (status, _, _) = exchange(&mut keep_alive(frontend), &huge).expect("an answer");
    assert_eq!(status, 431);
    let code_431 = "svcproxy_http_requests_total{namespace=\"default\",service=\"web\",port=\"web\",code=\"431\"}";
    proxy.wait_metric(code_431, Duration::from_secs(10), |n| n == 1.0);
}

/// A pod that answers every request 503, keeping its connections alive.
fn failing(ip: Ipv4Addr) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = std::net::TcpListener::bind((ip, 0)).expect("bind");
    let local = listener.local_addr().expect("addr");
    let answered = Arc::new(AtomicUsize::new(0));
    let count = answered.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let count = count.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut stream = stream;
                let mut line = String::new();
                loop {
                    line.clear();
                    match reader.read_line(&mut line) {
                        Ok(0) | Err(_) => return,
                        Ok(_) if line == "\r\n" => {
                            count.fetch_add(1, AtomicOrdering::Relaxed);
                            let answer =
                                "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n";
                            if stream.write_all(answer.as_bytes()).is_err() {
                                return;
                            }
                        }
                        Ok(_) => {}
                    }
                }
            });
        }
    });
    (local, answered)
}

/// Envoy's `consecutive_5xx`: a pod that answers 5 requests in a row with
/// a 5xx is ejected, and the next requests go to the others.
#[test]
fn a_pod_that_fails_five_requests_in_a_row_is_ejected() {
    let good = HttpEndpoint::start(fresh_ip(), "good");
    let (bad, answered) = failing(fresh_ip());
    let (frontend, manifest) = service("http", &[good.addr, bad]);
    let mut proxy = Proxy::start(&manifest, &[]);
    proxy.wait_ready(|| once(frontend));
    let mut connection = keep_alive(frontend);
    let mut statuses = Vec::new();
    while answered.load(AtomicOrdering::Relaxed) < 5 {
        statuses.push(exchange(&mut connection, GET).expect("an answer").0);
        assert!(statuses.len() < 40, "the failing pod got too few requests: {statuses:?}");
    }
    // Ejected for a while now (0.5 s at first): the next 20 all succeed.
    for _ in 0..20 {
        let (status, _, body) = exchange(&mut connection, GET).expect("an answer");
        assert_eq!(status, 200, "{body}\n{}", proxy.log());
    }
    assert_eq!(answered.load(AtomicOrdering::Relaxed), 5);
    proxy.assert_warned(&["5 HTTP requests in a row failed", &bad.to_string()]);
}

/// `Expect: 100-continue`: the client hears `100 Continue` before it sends
/// its body, and the body reaches the pod whole.
#[test]
fn expect_100_continue_is_honoured() {
    let pods = endpoints(&["a"]);
    let (frontend, manifest) = service("http", &addrs(&pods));
    let _proxy = serving(&manifest, frontend);
    let mut connection = keep_alive(frontend);
    let head =
        "POST /upload HTTP/1.1\r\nHost: web\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n";
    connection.get_mut().write_all(head.as_bytes()).expect("head");
    let mut line = String::new();
    connection.read_line(&mut line).expect("an interim answer");
    assert!(line.starts_with("HTTP/1.1 100"), "{line:?}");
    connection.read_line(&mut line).expect("its blank line");
    connection.get_mut().write_all(b"hello").expect("body");
    let (status, _, answer) = response(&mut connection).expect("the response");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(field(&answer, "body"), Some("5"), "{answer}");
}

/// `svcproxy.io/request-timeout`: a request whose response head does not
/// come in time gets 504 (counted as `timeout`); a value that is no
/// duration is an error naming the annotation.
#[test]
fn a_request_timeout_annotation_answers_504_in_time() {
    let pods = endpoints(&["a"]);
    let (frontend, manifest) = service("http", &addrs(&pods));
    let annotated = manifest.replacen(
        "metadata: {name: web, namespace: default}",
        "metadata: {name: web, namespace: default, annotations: {svcproxy.io/request-timeout: 500ms}}",
        1,
    );
    let mut proxy = serving(&annotated, frontend);
    let started = std::time::Instant::now();
    let (status, _, body) =
        exchange(&mut keep_alive(frontend), "GET /slow/3000 HTTP/1.1\r\nHost: web\r\n\r\n")
            .expect("an answer");
    assert_eq!(status, 504, "{body}");
    assert!(started.elapsed() < Duration::from_millis(2500), "{:?}", started.elapsed());
    let timeouts = "svcproxy_http_proxy_errors_total{namespace=\"default\",service=\"web\",port=\"web\",reason=\"timeout\"}";
    assert_eq!(proxy.metric(timeouts), 1.0);
    // A quick request is untouched.
    assert_eq!(once(frontend).expect("quick").0, 200);

    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("web.yaml");
    std::fs::write(&path, annotated.replace("500ms", "soon")).expect("write");
    let out = crate::support::check([path.to_str().expect("utf-8")]);
    assert_eq!(out.code(), Some(1), "{out}");
    assert!(out.stderr.contains("metadata.annotations.svcproxy.io/request-timeout"), "{out}");
}
