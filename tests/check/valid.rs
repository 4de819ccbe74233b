//! `svcproxy check` on tests/fixtures/valid: every file loads on its own
//! with a table and no error, and all of them together print each Service
//! with the addresses, ports and endpoints kubectl would show, in columns
//! aligned as kubectl aligns them. Contract: DESIGN.md §2-§3.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use crate::support;
use crate::support::cluster_ip::in_default_service_cidr;
use crate::support::{CHECK_BUDGET, Endpoints, Row, check, fixture};

#[test]
fn every_valid_fixture_exits_zero_with_a_table_and_no_error() {
    let files = support::manifest_files(&support::root().join("tests/fixtures/valid"));
    assert!(files.len() >= 10, "expected the valid fixtures, found {files:?}");
    for file in files {
        let out = check([&file]);
        out.assert_no_panic();
        assert_eq!(out.code(), Some(0), "{} should be valid\n{out}", file.display());
        assert!(out.error_lines().is_empty(), "{}: unexpected stderr\n{out}", file.display());
        assert!(!out.table().rows.is_empty(), "{}: empty table\n{out}", file.display());
        out.assert_within(CHECK_BUDGET);
    }
}

/// DESIGN §2: `check` prints "a table like `kubectl get svc`": every cell
/// starts under its header, columns separated by at least three spaces,
/// no trailing blanks.
#[test]
fn the_check_table_is_aligned_as_kubectl_prints_it() {
    let out = check([fixture("valid")]);
    out.assert_no_panic();
    assert_eq!(out.code(), Some(0), "{out}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    let header = lines.first().unwrap_or_else(|| panic!("no table\n{out}"));
    // Where each header word starts.
    let starts: Vec<usize> = header
        .char_indices()
        .filter(|&(i, c)| c != ' ' && (i == 0 || header.as_bytes()[i - 1] == b' '))
        .map(|(i, _)| i)
        .collect();
    let words: Vec<&str> = header.split_whitespace().collect();
    assert_eq!(words, support::HEADER, "{out}");
    assert_eq!(starts[0], 0, "{header:?}");
    assert!(lines.len() > 10, "{out}");
    for line in &lines {
        assert_eq!(line.trim_end(), *line, "trailing blanks: {line:?}");
        assert!(line.is_ascii(), "{line:?}");
        let bytes = line.as_bytes();
        for (i, &start) in starts.iter().enumerate().skip(1) {
            assert!(
                bytes.get(start).is_some_and(|b| *b != b' ')
                    && bytes[start - 3..start].iter().all(|b| *b == b' '),
                "column {} does not start at {start} after three spaces: {line:?}\n{out}",
                support::HEADER[i]
            );
        }
    }
}

/// What one row of the valid fixtures' table must hold.
struct Expect {
    namespace: &'static str,
    name: &'static str,
    kind: &'static str,
    cluster_ip: Ip,
    /// EXTERNAL-IP items, any order; empty for `<none>`.
    external: &'static [&'static str],
    /// PORT(S); `*` stands for an allocated nodePort.
    ports: &'static str,
    /// ENDPOINTS as a set (kubectl shows three, then `+ N more...`); empty
    /// for `<none>`; `None`: not checked.
    endpoints: Option<&'static [&'static str]>,
}

enum Ip {
    Exact(&'static str),
    /// Allocated from the default service CIDR, 10.96.0.0/12.
    Allocated,
}

const VALID_TABLE: &[Expect] = &[
    Expect {
        namespace: "blog",
        name: "blog",
        kind: "ClusterIP",
        cluster_ip: Ip::Exact("127.10.0.17"),
        external: &[],
        ports: "80/TCP",
        // The Deployment is skipped: it makes no Pods.
        endpoints: Some(&[]),
    },
    Expect {
        namespace: "data",
        name: "cassandra",
        kind: "ClusterIP",
        cluster_ip: Ip::Exact("None"),
        external: &[],
        ports: "9042/TCP",
        // Listed (as `kubectl get endpoints` would), though not proxied.
        endpoints: Some(&["127.0.7.1:9042"]),
    },
    Expect {
        namespace: "data",
        name: "legacy-db",
        kind: "ClusterIP",
        cluster_ip: Ip::Exact("127.10.0.12"),
        external: &[],
        ports: "5432/TCP",
        endpoints: Some(&["127.0.4.1:5432", "127.0.4.2:5432"]),
    },
    Expect {
        namespace: "default",
        name: "frontend",
        kind: "NodePort",
        cluster_ip: Ip::Exact("127.10.0.13"),
        external: &[],
        ports: "80:30080/TCP",
        endpoints: Some(&["127.0.6.1:8080"]),
    },
    Expect {
        namespace: "default",
        name: "named-web",
        kind: "ClusterIP",
        cluster_ip: Ip::Exact("127.10.0.19"),
        external: &[],
        ports: "80/TCP",
        // `targetPort: web-http` is 8080 in one Pod, 8081 in the other.
        endpoints: Some(&["127.0.5.1:8080", "127.0.5.2:8081"]),
    },
    Expect {
        namespace: "default",
        name: "newer-field",
        kind: "ClusterIP",
        cluster_ip: Ip::Exact("127.10.0.30"),
        external: &[],
        ports: "80/TCP",
        endpoints: Some(&[]),
    },
    Expect {
        namespace: "edge",
        name: "gateway",
        kind: "LoadBalancer",
        cluster_ip: Ip::Exact("127.10.0.14"),
        external: &["127.0.9.2", "127.0.9.1"],
        ports: "443:*/TCP",
        endpoints: Some(&["127.0.9.10:8443"]),
    },
    Expect {
        namespace: "infra",
        name: "dns",
        kind: "ClusterIP",
        // Dual-stack: the first of spec.clusterIPs, as kubectl shows it.
        cluster_ip: Ip::Exact("127.10.0.53"),
        external: &[],
        ports: "53/UDP",
        endpoints: Some(&["127.0.9.1:5353", "[fd00:10:244::9]:5353"]),
    },
    Expect {
        namespace: "jobs",
        name: "batch",
        kind: "ClusterIP",
        cluster_ip: Ip::Exact("127.10.0.18"),
        external: &[],
        ports: "7000/TCP",
        // Its only Pods have no podIP yet.
        endpoints: Some(&[]),
    },
    Expect {
        namespace: "shop",
        name: "api",
        kind: "ClusterIP",
        cluster_ip: Ip::Exact("127.10.0.11"),
        external: &[],
        ports: "80/TCP,9090/TCP",
        endpoints: Some(&[
            "127.0.3.1:8080",
            "127.0.3.2:8080",
            "127.0.3.3:8081",
            "127.0.3.1:9090",
            "127.0.3.2:9090",
            "127.0.3.3:9091",
        ]),
    },
    Expect {
        namespace: "shop",
        name: "payments",
        kind: "ExternalName",
        cluster_ip: Ip::Exact("<none>"),
        external: &["payments.example.com"],
        ports: "<none>",
        endpoints: Some(&[]),
    },
    Expect {
        namespace: "shop",
        name: "web",
        kind: "ClusterIP",
        cluster_ip: Ip::Exact("127.10.0.10"),
        external: &[],
        ports: "80/TCP",
        // Not 127.0.2.9 (not Ready), not 127.0.2.50 (other namespace).
        endpoints: Some(&["127.0.2.1:8080", "127.0.2.2:8080"]),
    },
    Expect {
        namespace: "tools",
        name: "auto-ip",
        kind: "ClusterIP",
        cluster_ip: Ip::Allocated,
        external: &[],
        ports: "8080/TCP",
        endpoints: Some(&[]),
    },
    Expect {
        namespace: "tools",
        name: "auto-nodeport",
        kind: "NodePort",
        cluster_ip: Ip::Allocated,
        external: &[],
        ports: "8443:*/TCP",
        endpoints: Some(&[]),
    },
    Expect {
        namespace: "tools",
        name: "json-svc",
        kind: "ClusterIP",
        cluster_ip: Ip::Exact("127.10.0.16"),
        external: &[],
        ports: "8080/TCP,53/UDP",
        endpoints: Some(&[]),
    },
    Expect {
        namespace: "tools",
        name: "metrics",
        kind: "ClusterIP",
        cluster_ip: Ip::Exact("127.10.0.15"),
        external: &[],
        ports: "9100/TCP",
        // One Pod is Ready, the other Running with no conditions yet.
        endpoints: Some(&["127.0.8.1:9100", "127.0.8.2:9100"]),
    },
];

#[test]
fn valid_fixtures_print_every_service_with_its_addresses_ports_and_endpoints() {
    let out = check([fixture("valid")]);
    out.assert_no_panic();
    assert_eq!(out.code(), Some(0), "{out}");
    assert!(out.error_lines().is_empty(), "{out}");
    let table = out.table();
    let expected: Vec<String> =
        VALID_TABLE.iter().map(|e| format!("{}/{}", e.namespace, e.name)).collect();
    assert_eq!(table.keys(), expected, "rows (sorted by namespace, name)\n{out}");
    let mut wrong = String::new();
    for e in VALID_TABLE {
        let row = table.row(e.namespace, e.name);
        for problem in mismatches(e, row) {
            let _ = writeln!(wrong, "{}/{}: {problem}", e.namespace, e.name);
        }
    }
    assert!(wrong.is_empty(), "{wrong}\n{out}");
}

fn mismatches(e: &Expect, row: &Row) -> Vec<String> {
    let mut problems = Vec::new();
    if row.kind != e.kind {
        problems.push(format!("TYPE {:?}, expected {:?}", row.kind, e.kind));
    }
    match e.cluster_ip {
        Ip::Exact(ip) if row.cluster_ip != ip => {
            problems.push(format!("CLUSTER-IP {:?}, expected {ip:?}", row.cluster_ip));
        }
        Ip::Allocated if !in_default_service_cidr(&row.cluster_ip) => problems.push(format!(
            "CLUSTER-IP {:?}, expected one allocated from 10.96.0.0/12",
            row.cluster_ip
        )),
        _ => {}
    }
    let external: BTreeSet<String> = e.external.iter().map(|s| s.to_string()).collect();
    if support::list_set(&row.external_ip) != external {
        problems.push(format!("EXTERNAL-IP {:?}, expected {:?}", row.external_ip, e.external));
    }
    if !ports_match(e.ports, &row.ports) {
        problems.push(format!("PORT(S) {:?}, expected {:?}", row.ports, e.ports));
    }
    if let Some(endpoints) = e.endpoints
        && !Endpoints::parse(&row.endpoints).matches(endpoints)
    {
        problems.push(format!("ENDPOINTS {:?}, expected {:?}", row.endpoints, endpoints));
    }
    problems
}

/// `expected` with `*` for an allocated nodePort (30000-32767).
fn ports_match(expected: &str, actual: &str) -> bool {
    if !expected.contains('*') {
        return expected == actual;
    }
    let (want, got): (Vec<_>, Vec<_>) =
        (expected.split(',').collect(), actual.split(',').collect());
    want.len() == got.len()
        && want.iter().zip(&got).all(|(w, g)| match w.split_once(":*/") {
            Some((port, proto)) => support::parse_port(g).is_some_and(|(p, node, pr)| {
                p.to_string() == port
                    && pr == proto
                    && node.is_some_and(|n| (30000..=32767).contains(&n))
            }),
            None => w == g,
        })
}

#[test]
fn udp_ports_are_served_and_only_sctp_ports_are_noted_as_not_proxied() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("dns.yaml");
    let yaml = "apiVersion: v1\nkind: Service\nmetadata: {name: kube-dns}\nspec:\n  \
                clusterIP: 10.96.0.10\n  ports:\n  - {name: dns, port: 53, protocol: UDP}\n  \
                - {name: dns-tcp, port: 53, protocol: TCP}\n  - {name: sig, port: 3868, protocol: SCTP}\n";
    std::fs::write(&path, yaml).expect("write");
    let out = check([&path]);
    assert_eq!(out.code(), Some(0), "{out}");
    let notes: Vec<&str> = out.stderr_lines().into_iter().filter(|l| support::is_note(l)).collect();
    let not_proxied: Vec<&&str> = notes.iter().filter(|l| l.contains("not proxied")).collect();
    assert_eq!(not_proxied.len(), 1, "{notes:#?}");
    assert!(not_proxied[0].contains("3868/SCTP"), "{notes:#?}");
}

#[test]
fn load_balancer_source_ranges_are_noted_with_what_they_filter() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("lb.yaml");
    let yaml = "apiVersion: v1\nkind: Service\nmetadata: {name: internal-lb}\nspec:\n  \
                type: LoadBalancer\n  clusterIP: 10.96.0.20\n  loadBalancerSourceRanges: \
                [' 10.1.2.3/16 ', 'fd00::/8']\n  ports:\n  - {port: 443}\nstatus:\n  \
                loadBalancer:\n    ingress: [{ip: 192.0.2.10}]\n";
    std::fs::write(&path, yaml).expect("write");
    let out = check([&path]);
    assert_eq!(out.code(), Some(0), "{out}");
    let notes: Vec<&str> = out.stderr_lines().into_iter().filter(|l| support::is_note(l)).collect();
    let ranges: Vec<&&str> =
        notes.iter().filter(|l| l.contains("loadBalancerSourceRanges")).collect();
    assert_eq!(ranges.len(), 1, "{notes:#?}");
    // Spaces trimmed and host bits dropped, as the API server reads them.
    assert!(ranges[0].contains("default/internal-lb"), "{}", ranges[0]);
    assert!(ranges[0].contains("only clients in 10.1.0.0/16, fd00::/8"), "{}", ranges[0]);
}

/// A Service `web` with an EndpointSlice of three endpoints hinted for
/// zones a, a and b, and this node (`node-1`) in `zone` when given.
fn hinted(zone: Option<&str>) -> String {
    let node = match zone {
        Some(zone) => format!(
            "apiVersion: v1\nkind: Node\nmetadata:\n  name: node-1\n  labels: \
             {{topology.kubernetes.io/zone: {zone}}}\n---\n"
        ),
        None => String::new(),
    };
    let endpoint = |n: u8, zone: &str| {
        format!("- addresses: [10.0.0.{n}]\n  hints: {{forZones: [{{name: {zone}}}]}}\n")
    };
    format!(
        "{node}apiVersion: v1\nkind: Service\nmetadata: {{name: web}}\nspec:\n  clusterIP: 10.96.0.30\n  \
         ports: [{{name: http, port: 80}}]\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
         metadata:\n  name: web-1\n  labels: {{kubernetes.io/service-name: web}}\naddressType: IPv4\n\
         ports: [{{name: http, port: 8080}}]\nendpoints:\n{}{}{}",
        endpoint(1, "a"),
        endpoint(2, "a"),
        endpoint(3, "b")
    )
}

fn topology_notes(yaml: &str) -> Vec<String> {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("web.yaml");
    std::fs::write(&path, yaml).expect("write");
    let out = check([path.as_os_str(), "--node-name".as_ref(), "node-1".as_ref()]);
    assert_eq!(out.code(), Some(0), "{out}");
    let notes = out.stderr_lines().into_iter().filter(|l| support::is_note(l));
    notes.filter(|l| l.contains("topology")).map(str::to_owned).collect()
}

#[test]
fn topology_hints_are_noted_with_the_endpoints_they_leave_or_why_they_are_ignored() {
    let notes = topology_notes(&hinted(Some("a")));
    assert_eq!(notes.len(), 1, "{notes:#?}");
    assert!(
        notes[0].contains(
            "default/web: port http: topology: 2 of 3 ready endpoints, those hinted for zone a"
        ),
        "{notes:#?}"
    );
    let notes = topology_notes(&hinted(Some("c")));
    assert!(
        notes[0].contains(
            "topology hints ignored, every endpoint used: no ready endpoint is hinted for zone c"
        ),
        "{notes:#?}"
    );
    let notes = topology_notes(&hinted(None));
    assert!(
        notes[0].contains("no Node node-1 with a topology.kubernetes.io/zone label"),
        "{notes:#?}"
    );
}

/// Each family of a dual-stack Service is judged apart, as it is routed:
/// two IPv4 endpoints of three are hinted for this zone and keep it, the
/// IPv6 one is hinted for another and its family ignores hints.
#[test]
fn topology_hints_are_judged_per_family() {
    let yaml = hinted(Some("a")).replace(
        "  clusterIP: 10.96.0.30\n",
        "  ipFamilyPolicy: RequireDualStack\n  clusterIPs: [10.96.0.30, \"fd00:10:96::30\"]\n",
    ) + "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: web-6\n  \
         labels: {kubernetes.io/service-name: web}\naddressType: IPv6\n\
         ports: [{name: http, port: 8080}]\nendpoints:\n- addresses: [\"fd00::1\"]\n  \
         hints: {forZones: [{name: b}]}\n";
    let notes = topology_notes(&yaml);
    assert_eq!(notes.len(), 2, "{notes:#?}");
    assert!(
        notes[0].contains(
            "default/web: port http (IPv4): topology: 2 of 3 ready endpoints, those hinted for \
             zone a"
        ),
        "{notes:#?}"
    );
    assert!(
        notes[1].contains(
            "default/web: port http (IPv6): topology hints ignored, every endpoint used: no \
             ready endpoint is hinted for zone a"
        ),
        "{notes:#?}"
    );
}
