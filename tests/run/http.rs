//! The HTTP mode: Service ports whose `appProtocol` says HTTP are balanced
//! per request, whatever the client's connection does.

use std::collections::BTreeMap;
use std::io::{self, BufRead as _, BufReader, Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use crate::support::http::{HttpEndpoint, field, name_of};
use crate::support::manifests::ipv4;
use crate::support::net::{addr, fresh_ip};
use crate::support::proxy::Proxy;

mod metrics;

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
