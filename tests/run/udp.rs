//! UDP Services: a real DNS pod (dnsmasq) and resolver (dig) through the
//! ClusterIP and the NodePort; flows spread, moved off dead endpoints,
//! bounded and expired; datagrams whole.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::support::admin::routes;
use crate::support::manifests::write_by_rename;
use crate::support::net::{addr, fresh_ip, fresh_node_port};
use crate::support::proxy::Proxy;
use crate::support::udp::{DnsPod, UdpPod, client, dig, exchange, who};

const DNS: u16 = 53;
const POD_PORT: u16 = 5353;

/// A Service `name` with one UDP port (`dns`, 53 → 5353) on `cluster_ip`,
/// a NodePort when asked, `annotations` (YAML lines under `metadata`),
/// and an Endpoints object listing `pods`.
fn udp_service(
    name: &str,
    cluster_ip: Ipv4Addr,
    node_port: Option<u16>,
    pods: &[Ipv4Addr],
    annotations: &str,
) -> String {
    let (kind, node_port) = match node_port {
        Some(n) => ("NodePort", format!(", nodePort: {n}")),
        None => ("ClusterIP", String::new()),
    };
    let ips: Vec<String> = pods.iter().map(|ip| format!("{{ip: {ip}}}")).collect();
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n{annotations}spec:\n  type: {kind}\n  \
         clusterIP: {cluster_ip}\n  ports: [{{name: dns, port: {DNS}, targetPort: {POD_PORT}, \
         protocol: UDP{node_port}}}]\n---\napiVersion: v1\nkind: Endpoints\nmetadata: {{name: {name}}}\n\
         subsets:\n- addresses: [{}]\n  ports: [{{name: dns, port: {POD_PORT}, protocol: UDP}}]\n",
        ips.join(", ")
    )
}

/// Three dnsmasq pods answering `*.svc.test` with 127.1.2.1, .2, .3.
fn dns_pods(txt_bytes: usize) -> Vec<DnsPod> {
    (1..=3)
        .map(|i| DnsPod::start(fresh_ip(), POD_PORT, Ipv4Addr::new(127, 1, 2, i), txt_bytes))
        .collect()
}

fn ips(pods: &[DnsPod]) -> Vec<Ipv4Addr> {
    pods.iter()
        .map(|p| match p.addr.ip() {
            std::net::IpAddr::V4(ip) => ip,
            _ => unreachable!(),
        })
        .collect()
}

fn port_series(name: &str, family: &str, extra: &str) -> String {
    format!("{family}{{namespace=\"default\",service=\"{name}\",port=\"dns\"{extra}}}")
}

#[test]
fn dig_through_the_cluster_ip_and_the_node_port_spreads_new_flows_evenly() {
    let pods = dns_pods(0);
    let (cluster_ip, node_ip, node_port) = (fresh_ip(), fresh_ip(), fresh_node_port());
    let yaml = udp_service("kube-dns", cluster_ip, Some(node_port), &ips(&pods), "");
    let frontend = addr(cluster_ip, DNS);
    let (mut proxy, _) = Proxy::serving(&yaml, &[], || dig(frontend, "a.svc.test", &[]));
    for to in [frontend, addr(node_ip, node_port)] {
        let mut counts = std::collections::BTreeMap::new();
        // Each dig from an address of its own: a new flow, the next
        // endpoint. (From one address, the kernel may hand a dig the port
        // of one whose flow is still alive: the same flow, as conntrack.)
        for _ in 0..30 {
            let from = fresh_ip().to_string();
            let answer = dig(to, "a.svc.test", &["-b", &from])
                .unwrap_or_else(|e| panic!("{e}\n{}", proxy.log()));
            *counts.entry(answer).or_insert(0) += 1;
        }
        let expected: Vec<(String, i32)> = (1..=3).map(|i| (format!("127.1.2.{i}"), 10)).collect();
        assert_eq!(counts.into_iter().collect::<Vec<_>>(), expected, "through {to}");
    }
    let received =
        port_series("kube-dns", "svcproxy_udp_datagrams_total", ",direction=\"received\"");
    assert!(proxy.metric(&received) >= 61.0);
}

#[test]
fn a_9_kb_txt_answer_arrives_whole() {
    let pods = dns_pods(9_000);
    let cluster_ip = fresh_ip();
    let yaml = udp_service("big-dns", cluster_ip, None, &ips(&pods), "");
    let frontend = addr(cluster_ip, DNS);
    let (proxy, _) = Proxy::serving(&yaml, &[], || dig(frontend, "a.svc.test", &[]));
    let flags = ["TXT", "+bufsize=16384", "+ignore"];
    let answer =
        dig(frontend, "big.svc.test", &flags).unwrap_or_else(|e| panic!("{e}\n{}", proxy.log()));
    let text = answer.chars().filter(char::is_ascii_lowercase).count();
    assert_eq!(text, 9_000, "TXT answer cut: {answer}");
}

#[test]
fn node_port_replies_come_from_the_address_asked() {
    let pod = UdpPod::start(fresh_ip(), POD_PORT, "echo");
    let (cluster_ip, node_port) = (fresh_ip(), fresh_node_port());
    let yaml = udp_service("np", cluster_ip, Some(node_port), &[ips_of(&pod)], "");
    let socket = client(fresh_ip());
    let (_proxy, _) = Proxy::serving(&yaml, &[], || who(&socket, addr(cluster_ip, DNS)));
    for asked in [addr(fresh_ip(), node_port), addr(fresh_ip(), node_port), addr(cluster_ip, DNS)] {
        let (reply, from) = exchange(&socket, asked, b"ping").unwrap();
        let reply = String::from_utf8_lossy(&reply);
        assert_eq!((&*reply, from), ("ping", asked));
    }
}

fn ips_of(pod: &UdpPod) -> Ipv4Addr {
    match pod.addr.ip() {
        std::net::IpAddr::V4(ip) => ip,
        _ => unreachable!(),
    }
}

#[test]
fn datagrams_of_9_kb_and_60_kb_pass_whole_both_ways() {
    let pod = UdpPod::start(fresh_ip(), POD_PORT, "echo");
    let cluster_ip = fresh_ip();
    let yaml = udp_service("echo", cluster_ip, None, &[ips_of(&pod)], "");
    let socket = client(fresh_ip());
    let frontend = addr(cluster_ip, DNS);
    let (mut proxy, _) = Proxy::serving(&yaml, &[], || who(&socket, frontend));
    for size in [9_000, 60_000, 65_507] {
        let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let (reply, _) = exchange(&socket, frontend, &data).unwrap();
        assert_eq!(reply.len(), size);
        assert!(reply == data, "{size} bytes came back changed");
    }
    let sent = proxy.metric(&port_series("echo", "svcproxy_sent_bytes_total", ""));
    assert!(sent >= 134_507.0, "sent bytes: {sent}");
}

#[test]
fn a_flow_moves_off_an_endpoint_removed_from_the_manifests() {
    let pods = [UdpPod::start(fresh_ip(), POD_PORT, "a"), UdpPod::start(fresh_ip(), POD_PORT, "b")];
    let pod_ips: Vec<Ipv4Addr> = pods.iter().map(ips_of).collect();
    let cluster_ip = fresh_ip();
    let frontend = addr(cluster_ip, DNS);
    let socket = client(fresh_ip());
    let yaml = udp_service("moving", cluster_ip, None, &pod_ips, "");
    let (proxy, first) = Proxy::serving(&yaml, &[], || who(&socket, frontend));
    // The flow keeps its endpoint while it stays.
    for _ in 0..5 {
        assert_eq!(who(&socket, frontend).unwrap(), first);
    }
    let kept: Vec<Ipv4Addr> = pods.iter().filter(|p| who_is(p) != first).map(ips_of).collect();
    write_by_rename(&proxy.manifest(), &udp_service("moving", cluster_ip, None, &kept, ""));
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        if who(&socket, frontend).is_ok_and(|name| name != first) {
            break;
        }
        assert!(Instant::now() < until, "the flow still goes to {first}\n{}", proxy.log());
    }
}

fn who_is(pod: &UdpPod) -> String {
    who(&client(Ipv4Addr::LOCALHOST), pod.addr).unwrap()
}

#[test]
fn a_flow_moves_off_an_endpoint_that_stopped_and_the_endpoint_is_ejected() {
    let mut pods =
        [UdpPod::start(fresh_ip(), POD_PORT, "a"), UdpPod::start(fresh_ip(), POD_PORT, "b")];
    let pod_ips: Vec<Ipv4Addr> = pods.iter().map(ips_of).collect();
    let cluster_ip = fresh_ip();
    let frontend = addr(cluster_ip, DNS);
    let socket = client(fresh_ip());
    socket.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let yaml = udp_service("stopping", cluster_ip, None, &pod_ips, "");
    let (mut proxy, first) = Proxy::serving(&yaml, &[], || who(&socket, frontend));
    let stopped = if first == "a" { 0 } else { 1 };
    pods[stopped].stop();
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        if who(&socket, frontend).is_ok_and(|name| name != first) {
            break;
        }
        assert!(Instant::now() < until, "the flow still goes to {first}\n{}", proxy.log());
    }
    let unreachable =
        port_series("stopping", "svcproxy_udp_dropped_total", ",reason=\"endpoint_unreachable\"");
    assert!(proxy.metric(&unreachable) >= 1.0);
    // New flows skip the ejected endpoint.
    for _ in 0..4 {
        assert_ne!(who(&client(fresh_ip()), frontend).unwrap(), first);
    }
}

#[test]
fn ten_thousand_flows_are_held_within_the_bound_and_expire() {
    let pod = UdpPod::start(fresh_ip(), POD_PORT, "echo");
    let cluster_ip = fresh_ip();
    let frontend = addr(cluster_ip, DNS);
    let yaml = udp_service("many", cluster_ip, None, &[ips_of(&pod)], "");
    let flags = ["--udp-max-flows", "1000", "--udp-timeout", "5s"];
    let probe = client(fresh_ip());
    let (mut proxy, _) = Proxy::serving(&yaml, &flags, || who(&probe, frontend));
    let source = fresh_ip();
    for port in 20_000..30_000u16 {
        let socket = std::net::UdpSocket::bind(addr(source, port)).unwrap();
        socket.send_to(b"x", frontend).unwrap();
        if port % 100 == 0 {
            // Paced under the frontend's socket buffer: the flow table
            // decides what is dropped, not the kernel.
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let active = port_series("many", "svcproxy_udp_flows_active", "");
    let full = port_series("many", "svcproxy_udp_dropped_total", ",reason=\"flow_table_full\"");
    proxy.wait_metric(&full, Duration::from_secs(10), |n| n >= 1.0);
    let held = proxy.metric(&active);
    assert!((1.0..=1000.0).contains(&held), "{held} flows for a bound of 1000");
    let fds = std::fs::read_dir(format!("/proc/{}/fd", proxy.pid())).unwrap().count();
    assert!(fds < 1_200, "{fds} descriptors open");
    proxy.wait_metric(&active, Duration::from_secs(10), |n| n == 0.0);
}

#[test]
fn a_flow_with_traffic_outlives_the_udp_timeout_and_a_quiet_one_ends_after_it() {
    let pods = [UdpPod::start(fresh_ip(), POD_PORT, "a"), UdpPod::start(fresh_ip(), POD_PORT, "b")];
    let cluster_ip = fresh_ip();
    let frontend = addr(cluster_ip, DNS);
    let yaml = udp_service("kept", cluster_ip, None, &[ips_of(&pods[0]), ips_of(&pods[1])], "");
    let probe = client(fresh_ip());
    let flags = ["--udp-timeout", "1s"];
    let (mut proxy, _) = Proxy::serving(&yaml, &flags, || who(&probe, frontend));
    // A new flow takes the next endpoint: the same answer for 3 s, asked
    // every 300 ms, is one flow kept alive past three timeouts.
    let socket = client(fresh_ip());
    let first = who(&socket, frontend).unwrap();
    let kept = Instant::now();
    while kept.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(who(&socket, frontend).unwrap(), first, "the flow ended while in use");
    }
    // Quiet, both flows end within the timeout (plus a scrape's slack).
    let active = port_series("kept", "svcproxy_udp_flows_active", "");
    proxy.wait_metric(&active, Duration::from_secs(3), |n| n == 0.0);
}

#[test]
fn udp_responses_ends_a_flow_at_its_answer() {
    let pods = dns_pods(0);
    let cluster_ip = fresh_ip();
    let annotations = "  annotations: {svcproxy.io/udp-responses: \"1\"}\n";
    let yaml = udp_service("answered", cluster_ip, None, &ips(&pods), annotations);
    let frontend = addr(cluster_ip, DNS);
    let (mut proxy, _) =
        Proxy::serving(&yaml, &["--udp-timeout", "5m"], || dig(frontend, "a.svc.test", &[]));
    for _ in 0..5 {
        dig(frontend, "a.svc.test", &[]).unwrap();
    }
    let active = port_series("answered", "svcproxy_udp_flows_active", "");
    proxy.wait_metric(&active, Duration::from_secs(5), |n| n == 0.0);
    // /debug/routes shows the frontend as served, with the annotation.
    let routes = routes(&proxy.admin());
    let shown = format!("{cluster_ip}:{DNS}/UDP");
    let route = routes["frontends"].as_array().unwrap().iter().find(|f| f["frontend"] == shown);
    let route = route.unwrap_or_else(|| panic!("{shown} not in /debug/routes: {routes}"));
    assert_eq!((route["mode"].as_str(), route["udpResponses"].as_u64()), (Some("udp"), Some(1)));
    assert_eq!(route["endpoints"].as_array().map(Vec::len), Some(3));
}

#[test]
fn a_reload_keeps_the_frontend_and_its_flow_and_a_removed_service_closes_both() {
    let pods = [UdpPod::start(fresh_ip(), POD_PORT, "a"), UdpPod::start(fresh_ip(), POD_PORT, "b")];
    let (cluster_ip, other_ip) = (fresh_ip(), fresh_ip());
    let frontend = addr(cluster_ip, DNS);
    let socket = client(fresh_ip());
    let yaml = udp_service("swapped", cluster_ip, None, &[ips_of(&pods[0])], "");
    let (mut proxy, first) = Proxy::serving(&yaml, &[], || who(&socket, frontend));
    assert_eq!(first, "a");

    // A new endpoint: the Route changes, the flow keeps its endpoint.
    let both: Vec<Ipv4Addr> = pods.iter().map(ips_of).collect();
    write_by_rename(&proxy.manifest(), &udp_service("swapped", cluster_ip, None, &both, ""));
    proxy.wait_metric("svcproxy_routing_generation", Duration::from_secs(10), |g| g >= 2.0);
    for _ in 0..6 {
        assert_eq!(who(&socket, frontend).unwrap(), "a", "the flow was moved by a reload");
    }
    let active = port_series("swapped", "svcproxy_udp_flows_active", "");
    assert_eq!(proxy.metric(&active), 1.0);

    // The Service goes: its socket closes (the address is free again).
    let other = udp_service("other", other_ip, None, &both, "");
    write_by_rename(&proxy.manifest(), &other);
    proxy.wait_metric("svcproxy_routing_generation", Duration::from_secs(10), |g| g >= 3.0);
    let until = Instant::now() + Duration::from_secs(10);
    while std::net::UdpSocket::bind(frontend).is_err() {
        assert!(Instant::now() < until, "{frontend} is still bound\n{}", proxy.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let metrics = proxy.admin().metrics().unwrap();
    assert!(!metrics.contains("service=\"swapped\""), "the removed port's series stay");
}

#[test]
fn client_ip_affinity_keeps_new_flows_of_one_client_on_one_endpoint() {
    let pods = [UdpPod::start(fresh_ip(), POD_PORT, "a"), UdpPod::start(fresh_ip(), POD_PORT, "b")];
    let pod_ips: Vec<Ipv4Addr> = pods.iter().map(ips_of).collect();
    let cluster_ip = fresh_ip();
    let frontend = addr(cluster_ip, DNS);
    let yaml = udp_service("sticky", cluster_ip, None, &pod_ips, "")
        .replace("  type: ClusterIP\n", "  type: ClusterIP\n  sessionAffinity: ClientIP\n");
    let client_ip = fresh_ip();
    let (_proxy, first) = Proxy::serving(&yaml, &[], || who(&client(client_ip), frontend));
    // Each socket is a new flow; the client IP's pin holds them all.
    for _ in 0..10 {
        assert_eq!(who(&client(client_ip), frontend).unwrap(), first);
    }
    // Another client IP starts its own rotation.
    let others: std::collections::BTreeSet<String> =
        (0..4).map(|_| who(&client(fresh_ip()), frontend).unwrap()).collect();
    assert_eq!(others.len(), 2, "new clients all went to {others:?}");
}

#[test]
fn external_ips_and_load_balancer_ingress_ips_serve_udp_too() {
    let pod = UdpPod::start(fresh_ip(), POD_PORT, "echo");
    let (cluster_ip, external, ingress) = (fresh_ip(), fresh_ip(), fresh_ip());
    let yaml = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: lb-dns}}\nspec:\n  type: LoadBalancer\n  \
         clusterIP: {cluster_ip}\n  externalIPs: [{external}]\n  ports: [{{name: dns, port: {DNS}, \
         targetPort: {POD_PORT}, protocol: UDP, nodePort: {}}}]\nstatus:\n  loadBalancer:\n    \
         ingress: [{{ip: {ingress}}}]\n---\napiVersion: v1\nkind: Endpoints\nmetadata: {{name: lb-dns}}\n\
         subsets:\n- addresses: [{{ip: {}}}]\n  ports: [{{name: dns, port: {POD_PORT}, protocol: UDP}}]\n",
        fresh_node_port(),
        ips_of(&pod)
    );
    let socket = client(fresh_ip());
    let (_proxy, _) = Proxy::serving(&yaml, &[], || who(&socket, addr(cluster_ip, DNS)));
    for asked in [addr(external, DNS), addr(ingress, DNS)] {
        let (reply, from) = exchange(&socket, asked, b"ping").unwrap();
        assert_eq!((&reply[..], from), (&b"ping"[..], asked));
    }
}

#[test]
fn datagrams_of_a_flow_reach_the_endpoint_and_come_back_in_order() {
    let pod = UdpPod::start(fresh_ip(), POD_PORT, "echo");
    let cluster_ip = fresh_ip();
    let frontend = addr(cluster_ip, DNS);
    let yaml = udp_service("ordered", cluster_ip, None, &[ips_of(&pod)], "");
    let socket = client(fresh_ip());
    let (_proxy, _) = Proxy::serving(&yaml, &[], || who(&socket, frontend));
    // 1,000 numbered datagrams, 50 back to back at a time: a window well
    // within every socket buffer on the way (a small datagram takes about
    // 1 KiB of one), so none is dropped and any reordering shows.
    let mut buf = [0; 16];
    for window in (0..1_000u32).collect::<Vec<_>>().chunks(50) {
        for i in window {
            socket.send_to(&i.to_be_bytes(), frontend).unwrap();
        }
        for i in window {
            let (n, _) = socket.recv_from(&mut buf).unwrap_or_else(|e| panic!("echo {i}: {e}"));
            assert_eq!(&buf[..n], &i.to_be_bytes(), "echo {i} out of order");
        }
    }
}

#[test]
fn a_udp_address_taken_is_retried_and_once_bound_never_shared() {
    let pod = UdpPod::start(fresh_ip(), POD_PORT, "echo");
    let cluster_ip = fresh_ip();
    let frontend = addr(cluster_ip, DNS);
    let taken = std::net::UdpSocket::bind(frontend).unwrap();
    let yaml = udp_service("taken", cluster_ip, None, &[ips_of(&pod)], "");
    let mut proxy = Proxy::start(&yaml, &[]);
    crate::support::net::eventually("the bind retried", Duration::from_secs(10), || {
        let log = proxy.log();
        let found = log.contains("cannot bind frontend") && log.contains("Address already in use");
        if found { Ok(()) } else { Err("not yet") }
    });
    drop(taken);
    let socket = client(fresh_ip());
    assert_eq!(proxy.wait_ready(|| who(&socket, frontend)), "echo");
    // Neither SO_REUSEADDR nor SO_REUSEPORT: another process asking for
    // either cannot bind the address and read svcproxy's datagrams.
    for (reuse_address, reuse_port) in [(false, false), (true, false), (false, true), (true, true)]
    {
        let other =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
        other.set_reuse_address(reuse_address).unwrap();
        other.set_reuse_port(reuse_port).unwrap();
        let err = other.bind(&frontend.into()).expect_err("bound beside svcproxy");
        assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    }
}

#[test]
fn the_flow_bound_follows_the_descriptor_limit_and_is_logged_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("manifests");
    std::fs::create_dir(&manifests).unwrap();
    let yaml = udp_service("bound", fresh_ip(), None, &[fresh_ip()], "");
    std::fs::write(manifests.join("dns.yaml"), yaml).unwrap();
    let log = dir.path().join("log");
    let script = format!(
        "ulimit -n 400 && exec \"$0\" run --manifests {} --metrics-bind-address 127.0.0.1:0 \
         --healthz-bind-address 127.0.0.1:0 --udp-max-flows 10000 > {} 2>&1",
        manifests.display(),
        log.display()
    );
    let bin = crate::support::bin();
    let mut child =
        std::process::Command::new("sh").args(["-c", &script]).arg(bin).spawn().unwrap();
    let said = crate::support::net::eventually("the bound logged", Duration::from_secs(10), || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let line = text.lines().find(|l| l.contains("UDP flow table bound")).map(str::to_owned);
        line.ok_or("not yet")
    });
    let _ = child.kill();
    let _ = child.wait();
    // Half the descriptors: the other half is for TCP connections.
    assert!(said.contains("max_flows=200") && said.contains("asked=10000"), "{said}");
}

#[test]
fn an_ipv6_cluster_ip_forwards_to_an_ipv6_endpoint_and_replies_from_itself() {
    // Only ::1 is local: the pod and the ClusterIP take free ports on it.
    let pod = std::net::UdpSocket::bind("[::1]:0").unwrap();
    let pod_addr = pod.local_addr().unwrap();
    let echo = std::thread::spawn(move || {
        pod.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut buf = vec![0; 65_536];
        // One echo per datagram until the test's last one, or the timeout.
        while let Ok((n, from)) = pod.recv_from(&mut buf) {
            pod.send_to(&buf[..n], from).unwrap();
            if &buf[..n] == b"last" {
                break;
            }
        }
    });
    let port = std::net::UdpSocket::bind("[::1]:0").unwrap().local_addr().unwrap().port();
    let yaml = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: dns6}}\nspec:\n  clusterIP: \"::1\"\n  \
         ipFamilies: [IPv6]\n  ports: [{{name: dns, port: {port}, targetPort: {}, protocol: UDP}}]\n\
         ---\napiVersion: v1\nkind: Endpoints\nmetadata: {{name: dns6}}\nsubsets:\n\
         - addresses: [{{ip: \"::1\"}}]\n  ports: [{{name: dns, port: {}, protocol: UDP}}]\n",
        pod_addr.port(),
        pod_addr.port()
    );
    let frontend: std::net::SocketAddr = format!("[::1]:{port}").parse().unwrap();
    let socket = std::net::UdpSocket::bind("[::1]:0").unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let (_proxy, _) = Proxy::serving(&yaml, &[], || exchange(&socket, frontend, b"ready"));
    let (reply, from) = exchange(&socket, frontend, &[7; 9_000]).unwrap();
    assert_eq!((reply.len(), from), (9_000, frontend));
    assert_eq!(exchange(&socket, frontend, b"last").unwrap(), (b"last".to_vec(), frontend));
    echo.join().unwrap();
}
