//! `svcproxy check` allocates ClusterIPs and nodePorts deterministically:
//! the same Services give the same table whether they come in one file, in
//! several files in reverse order, or one file each, and allocated values
//! are unique, in range, and leave written ones alone. A ClusterIP comes
//! from `--service-cidr`, and `run` with the same flag serves the address
//! `check` printed.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs;
use std::net::Ipv4Addr;

use crate::support;
use crate::support::cluster_ip::in_default_service_cidr;
use crate::support::endpoint::Endpoint;
use crate::support::manifests::{pod_at, write_in_place};
use crate::support::net::{addr, fetch, fresh_ip};
use crate::support::proxy::Proxy;
use crate::support::{Output, check};

/// One generated Service of the allocation tests.
struct Generated {
    index: usize,
    namespace: &'static str,
    name: String,
    node_port_type: bool,
    cluster_ip: Option<String>,
    node_port: Option<u16>,
}

fn generated_services() -> Vec<Generated> {
    const NAMESPACES: [&str; 4] = ["default", "shop", "tools", "kube-system"];
    (0..50)
        .map(|i| Generated {
            index: i,
            namespace: NAMESPACES[i % 4],
            name: format!("svc-{i:02}"),
            node_port_type: i % 3 == 0,
            cluster_ip: (i % 10 == 5).then(|| format!("127.20.0.{i}")),
            node_port: (i % 6 == 0).then(|| 31000 + i as u16),
        })
        .collect()
}

impl Generated {
    /// The Service as a YAML document; `item` indents it as a List item.
    fn yaml(&self, item: bool) -> String {
        let mut doc = String::new();
        let _ = writeln!(doc, "apiVersion: v1\nkind: Service\nmetadata:");
        let _ = writeln!(doc, "  name: {}\n  namespace: {}\nspec:", self.name, self.namespace);
        if self.node_port_type {
            let _ = writeln!(doc, "  type: NodePort");
        }
        if let Some(ip) = &self.cluster_ip {
            let _ = writeln!(doc, "  clusterIP: {ip}");
        }
        let _ = writeln!(doc, "  selector:\n    app: {}\n  ports:", self.name);
        let node_port =
            self.node_port.map(|p| format!("\n      nodePort: {p}")).unwrap_or_default();
        if self.index.is_multiple_of(2) {
            let _ = writeln!(doc, "    - port: 80{node_port}");
        } else {
            let _ = writeln!(doc, "    - name: http\n      port: 80{node_port}");
            let _ = writeln!(doc, "    - name: https\n      port: 443\n      targetPort: 8443");
        }
        if !item {
            return doc;
        }
        doc.lines()
            .enumerate()
            .map(|(i, l)| format!("{}{l}\n", if i == 0 { "  - " } else { "    " }))
            .collect()
    }
}

/// CLUSTER-IP and PORT(S) by `namespace/name`.
fn allocations(out: &Output) -> BTreeMap<String, (String, String)> {
    out.assert_no_panic();
    assert_eq!(out.code(), Some(0), "{out}");
    assert!(out.error_lines().is_empty(), "{out}");
    out.table()
        .rows
        .into_iter()
        .map(|r| (format!("{}/{}", r.namespace, r.name), (r.cluster_ip, r.ports)))
        .collect()
}

#[test]
fn allocation_does_not_depend_on_file_order_or_split() {
    let services = generated_services();
    let root = tempfile::tempdir().expect("tempdir");

    // One file, in index order.
    let one = root.path().join("one");
    fs::create_dir(&one).expect("mkdir");
    let all: Vec<String> = services.iter().map(|s| s.yaml(false)).collect();
    fs::write(one.join("services.yaml"), all.join("---\n")).expect("write");

    // Reverse order over seven files, one in a subdirectory, one a List.
    let split = root.path().join("split");
    fs::create_dir_all(split.join("nested")).expect("mkdir");
    let mut parts: BTreeMap<usize, Vec<&Generated>> = BTreeMap::new();
    for s in services.iter().rev() {
        parts.entry(s.index % 7).or_default().push(s);
    }
    for (k, part) in parts {
        let text = match k {
            0 => part.iter().map(|s| s.yaml(false)).collect::<Vec<_>>().join("---\n"),
            6 => format!(
                "apiVersion: v1\nkind: List\nitems:\n{}",
                part.iter().map(|s| s.yaml(true)).collect::<String>()
            ),
            _ => part.iter().map(|s| s.yaml(false)).collect::<Vec<_>>().join("\n---\n"),
        };
        let path = if k == 0 {
            split.join("nested/z-part.yaml")
        } else {
            split.join(format!("{}-part.yml", 9 - k))
        };
        fs::write(path, text).expect("write");
    }

    // One file per Service, named so the walk meets them shuffled.
    let each = root.path().join("each");
    fs::create_dir(&each).expect("mkdir");
    for s in &services {
        let name = format!("{:02}-{}.yaml", (s.index * 37) % 50, s.name);
        fs::write(each.join(name), s.yaml(false)).expect("write");
    }

    let one = allocations(&check([&one]));
    let split = allocations(&check([&split]));
    let each = allocations(&check([&each]));
    assert_eq!(one.len(), services.len(), "{one:#?}");
    assert_eq!(one, split, "one file vs. seven files in reverse order");
    assert_eq!(one, each, "one file vs. one file per Service");

    // Allocated values are unique, in range, and leave written ones alone.
    let mut cluster_ips = BTreeSet::new();
    let mut node_ports = BTreeSet::new();
    for s in &services {
        let key = format!("{}/{}", s.namespace, s.name);
        let (ip, ports) = &one[&key];
        assert!(cluster_ips.insert(ip.clone()), "{key}: CLUSTER-IP {ip} given twice");
        match &s.cluster_ip {
            Some(written) => assert_eq!(ip, written, "{key}: written clusterIP kept"),
            None => assert!(in_default_service_cidr(ip), "{key}: {ip} not in 10.96.0.0/12"),
        }
        let parsed: Vec<_> = ports
            .split(',')
            .map(|p| support::parse_port(p).unwrap_or_else(|| panic!("{key}: PORT(S) {ports}")))
            .collect();
        let want_ports: &[u16] = if s.index % 2 == 0 { &[80] } else { &[80, 443] };
        assert_eq!(parsed.iter().map(|p| p.0).collect::<Vec<_>>(), want_ports, "{key}: {ports}");
        for (i, (_, node, proto)) in parsed.iter().enumerate() {
            assert_eq!(proto, "TCP", "{key}: {ports}");
            match (s.node_port_type, node) {
                (false, None) => {}
                (true, Some(node)) => {
                    assert!((30000..=32767).contains(node), "{key}: {ports}");
                    assert!(node_ports.insert(*node), "{key}: nodePort {node} given twice");
                    if let (0, Some(written)) = (i, s.node_port) {
                        assert_eq!(*node, written, "{key}: written nodePort kept");
                    }
                }
                _ => panic!("{key}: PORT(S) {ports} for type NodePort={}", s.node_port_type),
            }
        }
    }
}

/// DESIGN §2 and §3: `--service-cidr` is the pool of a Service without
/// `spec.clusterIP`: `check` prints the address it allocates from it, and
/// `run` with the same flag serves exactly that address.
#[test]
fn check_and_run_allocate_cluster_ips_from_service_cidr() {
    const CIDR_PORT: u16 = 8443;
    let [_, b, c, _] = fresh_ip().octets();
    let cidr = format!("127.{b}.{c}.0/24");
    let e = Endpoint::name(fresh_ip(), "pooled-1");
    let yaml = format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: pooled\n  namespace: default\n\
         spec:\n  selector:\n    app: pooled\n  ports:\n    - name: tcp\n      port: {CIDR_PORT}\n\
         \x20     targetPort: tcp\n"
    ) + &pod_at("pooled-1", "pooled", e.addr);
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("pooled.yaml");
    write_in_place(&file, &yaml);
    let out = check([file.as_os_str(), OsStr::new("--service-cidr"), OsStr::new(&cidr)]);
    assert_eq!(out.code(), Some(0), "{out}");
    let cell = out.table().row("default", "pooled").cluster_ip.clone();
    let ip: Ipv4Addr = cell.parse().unwrap_or_else(|e| panic!("CLUSTER-IP {cell:?}: {e}\n{out}"));
    assert_eq!(ip.octets()[..3], [127, b, c], "{ip} is outside --service-cidr {cidr}\n{out}");

    let frontend = addr(ip, CIDR_PORT);
    let (_proxy, name) = Proxy::serving(&yaml, &["--service-cidr", &cidr], || fetch(frontend));
    assert_eq!(name, "pooled-1");
}

/// `--service-cidr` with one CIDR per family: a dual-stack Service without
/// clusterIP gets an address of each, the same on every run; the table
/// shows the first (as kubectl does), a note both.
#[test]
fn a_dual_stack_service_cidr_allocates_an_address_of_each_family() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("dual.yaml");
    let yaml = "apiVersion: v1\nkind: Service\nmetadata: {name: dual}\nspec:\n  \
                ipFamilyPolicy: PreferDualStack\n  ports: [{port: 80}]\n---\n\
                apiVersion: v1\nkind: Service\nmetadata: {name: six}\nspec:\n  \
                ipFamilies: [IPv6]\n  ports: [{port: 80}]\n";
    fs::write(&file, yaml).expect("write");
    let cidrs = "10.96.0.0/12,fd00:10:96::/112";
    let run = || check([OsStr::new("--service-cidr"), OsStr::new(cidrs), file.as_os_str()]);
    let out = run();
    assert_eq!(out.code(), Some(0), "{out}");
    let table = out.table();
    let dual: std::net::IpAddr = table.row("default", "dual").cluster_ip.parse().expect("an IP");
    assert!("10.96.0.0/12".parse::<ipnet::IpNet>().unwrap().contains(&dual), "{out}");
    let six: std::net::IpAddr = table.row("default", "six").cluster_ip.parse().expect("an IP");
    assert!("fd00:10:96::/112".parse::<ipnet::IpNet>().unwrap().contains(&six), "{out}");
    let note = out.stderr_lines().into_iter().find(|l| l.contains("default/dual: dual-stack"));
    let note = note.unwrap_or_else(|| panic!("no dual-stack note\n{out}"));
    assert!(note.contains(&format!("ClusterIPs {dual} (IPv4) and fd00:10:96::")), "{note}");
    assert_eq!(run().stderr, out.stderr, "allocation must not change between runs");

    // Two CIDRs of one family: a usage error naming the flag.
    let bad = check([
        OsStr::new("--service-cidr"),
        OsStr::new("10.0.0.0/8,10.96.0.0/12"),
        file.as_os_str(),
    ]);
    assert_eq!(bad.code(), Some(2), "{bad}");
    assert!(bad.stderr.contains("--service-cidr") && bad.stderr.contains("both IPv4"), "{bad}");
}
