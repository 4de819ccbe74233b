//! Black-box tests of `svcproxy check PATH...`: the real binary on the
//! fixtures in tests/fixtures, the examples in config/, and generated
//! hostile inputs. Contract: DESIGN.md §2-§3.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::io::{BufWriter, Write as _};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use support::{CHECK_BUDGET, Endpoints, Output, Row, check, check_with_peak_rss, fixture};

// ---------------------------------------------------------------------------
// Valid fixtures
// ---------------------------------------------------------------------------

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
        namespace: "edge",
        name: "gateway",
        kind: "LoadBalancer",
        cluster_ip: Ip::Exact("127.10.0.14"),
        external: &["127.0.9.2", "127.0.9.1"],
        ports: "443:*/TCP",
        endpoints: Some(&["127.0.9.10:8443"]),
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

fn in_default_service_cidr(ip: &str) -> bool {
    // 10.96.0.0/12: 10.96.0.0 - 10.111.255.255.
    ip.parse::<Ipv4Addr>().is_ok_and(|ip| {
        let [a, b, ..] = ip.octets();
        a == 10 && (96..=111).contains(&b)
    })
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

// ---------------------------------------------------------------------------
// Invalid fixtures: one broken object each
// ---------------------------------------------------------------------------

/// One file of tests/fixtures/invalid and what `check` must say about it.
struct Case {
    file: &'static str,
    /// The line the error must point at, where unambiguous.
    line: Option<u32>,
    /// Substrings that one single stderr line must all contain.
    error: &'static [&'static str],
    /// Valid Services beside the broken object: still listed.
    listed: &'static [&'static str],
    /// The broken Service: not listed.
    rejected: Option<&'static str>,
}

macro_rules! invalid_fixtures {
    ($($test:ident => $case:expr;)*) => {
        const CASES: &[Case] = &[$($case),*];
        $(
            #[test]
            fn $test() {
                assert_rejected(&$case);
            }
        )*
    };
}

invalid_fixtures! {
    rejects_unparseable_yaml_naming_file_and_line => Case {
        file: "unparseable-yaml.yaml",
        line: Some(7),
        error: &[],
        listed: &[],
        rejected: None,
    };
    rejects_a_billion_laughs_alias_bomb => Case {
        file: "billion-laughs.yaml",
        line: None,
        error: &["too many YAML aliases expanded"],
        listed: &[],
        rejected: None,
    };
    rejects_nesting_5000_levels_deep => Case {
        file: "deep-nesting.yaml",
        line: None,
        error: &["nested more than 100 levels deep"],
        listed: &[],
        rejected: None,
    };
    rejects_duplicate_keys_suggesting_a_document_separator => Case {
        file: "duplicate-keys.yaml",
        line: Some(10),
        error: &["duplicate key \"apiVersion\"", "several objects in one document?"],
        listed: &[],
        rejected: None,
    };
    rejects_a_port_written_as_a_word_naming_the_expected_type => Case {
        file: "port-wrong-type.yaml",
        line: Some(9),
        error: &[
            "default/port-words: ",
            "spec.ports[0].port: invalid type: string \"eighty\", expected i32",
        ],
        listed: &["port-words-ok"],
        rejected: Some("port-words"),
    };
    rejects_port_zero_naming_file_and_field => Case {
        file: "port-zero.yaml",
        line: Some(10),
        error: &[
            "default/port-zero: ",
            "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
        ],
        listed: &["port-zero-ok"],
        rejected: Some("port-zero"),
    };
    rejects_port_70000_naming_the_second_port => Case {
        file: "port-too-large.yaml",
        line: Some(12),
        error: &[
            "default/port-too-large: ",
            "spec.ports[1].port: Invalid value: 70000: must be between 1 and 65535, inclusive",
        ],
        listed: &[],
        rejected: Some("port-too-large"),
    };
    rejects_a_missing_port_as_required => Case {
        file: "port-missing.yaml",
        line: None,
        error: &["shop/port-missing: ", "spec.ports[0].port: Required value"],
        listed: &["port-missing-ok"],
        rejected: Some("port-missing"),
    };
    rejects_node_port_80_outside_the_node_port_range => Case {
        file: "nodeport-out-of-range.yaml",
        line: Some(11),
        error: &[
            "default/nodeport-low: ",
            "spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid \
             range. The range of valid ports is 30000-32767",
        ],
        listed: &[],
        rejected: Some("nodeport-low"),
    };
    rejects_a_node_port_on_a_cluster_ip_service => Case {
        file: "nodeport-on-clusterip.yaml",
        line: Some(11),
        error: &["default/clusterip-with-nodeport: ", "spec.ports[0].nodePort: Forbidden"],
        listed: &[],
        rejected: Some("clusterip-with-nodeport"),
    };
    rejects_one_of_two_services_claiming_the_same_node_port => Case {
        file: "nodeport-duplicate.yaml",
        line: None,
        error: &["spec.ports[0].nodePort: ", "30200"],
        listed: &[],
        rejected: None,
    };
    rejects_affinity_timeout_over_a_day => Case {
        file: "timeout-seconds-too-large.yaml",
        line: Some(11),
        error: &[
            "default/sticky: ",
            "spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: 86401: \
             must be greater than 0 and less than or equal to 86400",
        ],
        listed: &[],
        rejected: Some("sticky"),
    };
    rejects_duplicate_port_names => Case {
        file: "duplicate-port-names.yaml",
        line: Some(11),
        error: &["default/twin-names: ", "spec.ports[1].name: Duplicate value: \"http\""],
        listed: &[],
        rejected: Some("twin-names"),
    };
    rejects_an_unnamed_port_in_a_multi_port_service => Case {
        file: "port-name-missing-multiport.yaml",
        line: None,
        error: &["default/unnamed-second: ", "spec.ports[1].name: Required value"],
        listed: &[],
        rejected: Some("unnamed-second"),
    };
    rejects_protocol_http_as_unsupported => Case {
        file: "protocol-unsupported.yaml",
        line: Some(10),
        error: &["default/http-protocol: ", "spec.ports[0].protocol: Unsupported value: \"HTTP\""],
        listed: &[],
        rejected: Some("http-protocol"),
    };
    rejects_a_target_port_that_is_not_a_port_name => Case {
        file: "target-port-invalid-name.yaml",
        line: Some(10),
        error: &["default/bad-target: ", "spec.ports[0].targetPort: Invalid value: \"Not_A_Name\""],
        listed: &[],
        rejected: Some("bad-target"),
    };
    rejects_an_endpoints_address_that_is_not_an_ip_but_keeps_its_service => Case {
        file: "endpoints-bad-ip.yaml",
        line: Some(17),
        error: &[
            "default/manual: ",
            "subsets[0].addresses[0].ip: Invalid value: \"999.1.1.1\": must be a valid IP address",
        ],
        listed: &["manual"],
        rejected: None,
    };
    rejects_an_external_ip_that_is_not_an_ip => Case {
        file: "external-ip-invalid.yaml",
        line: Some(9),
        error: &[
            "default/bad-external: ",
            "spec.externalIPs[0]: Invalid value: \"not-an-ip\": must be a valid IP address",
        ],
        listed: &[],
        rejected: Some("bad-external"),
    };
    rejects_a_cluster_ip_that_is_not_an_ip => Case {
        file: "cluster-ip-invalid.yaml",
        line: None,
        // The API server reports it as spec.clusterIPs[0].
        error: &[
            "default/bad-cluster-ip: ",
            "spec.clusterIP",
            "Invalid value: \"127.0.0.300\": must be a valid IP address",
        ],
        listed: &[],
        rejected: Some("bad-cluster-ip"),
    };
    rejects_cookie_session_affinity_as_unsupported => Case {
        file: "session-affinity-unsupported.yaml",
        line: Some(8),
        error: &["default/cookie-affinity: ", "spec.sessionAffinity: Unsupported value: \"Cookie\""],
        listed: &[],
        rejected: Some("cookie-affinity"),
    };
    rejects_an_unknown_service_type_as_unsupported => Case {
        file: "type-unsupported.yaml",
        line: Some(6),
        error: &["default/ingress-type: ", "spec.type: Unsupported value: \"Ingress\""],
        listed: &[],
        rejected: Some("ingress-type"),
    };
    rejects_a_document_that_is_a_list_not_an_object => Case {
        file: "not-an-object.yaml",
        line: None,
        error: &["not a Kubernetes object"],
        listed: &["before-the-list"],
        rejected: Some("in-a-sequence"),
    };
    rejects_a_document_without_kind => Case {
        file: "missing-kind.yaml",
        line: Some(1),
        error: &["kind not set"],
        listed: &["kindful"],
        rejected: Some("kindless"),
    };
    rejects_a_service_without_a_name => Case {
        file: "name-missing.yaml",
        line: None,
        error: &["metadata.name: Required value"],
        listed: &["named"],
        rejected: None,
    };
}

fn assert_rejected(case: &Case) {
    let path = fixture(&format!("invalid/{}", case.file));
    let shown = path.display().to_string();
    let out = check([&path]);
    out.assert_no_panic();
    assert_eq!(out.code(), Some(1), "{shown} must be rejected\n{out}");
    out.assert_within(CHECK_BUDGET);

    // One broken object: one error line, naming the file (and line).
    let errors = out.error_lines();
    assert_eq!(errors.len(), 1, "{shown}: expected exactly one error line\n{out}");
    let error = errors[0];
    let prefix = format!("{shown}:");
    assert!(error.starts_with(&prefix), "{shown}: error must start with {prefix:?}\n{out}");
    let line = error[prefix.len()..].split(':').next().unwrap_or_default();
    assert!(
        line.parse::<u32>().is_ok_and(|l| l > 0),
        "{shown}: error must read FILE:LINE: ..., got {error:?}\n{out}"
    );
    if let Some(want) = case.line {
        assert_eq!(line, want.to_string(), "{shown}: error line number\n{out}");
    }
    for needle in case.error {
        assert!(error.contains(needle), "{shown}: error must contain {needle:?}\n{out}");
    }

    // The valid objects beside it are still listed; the broken one is not.
    if !case.listed.is_empty() {
        let table = out.table();
        for name in case.listed {
            assert!(table.lists(name), "{shown}: valid {name} must still be listed\n{out}");
        }
    }
    if let Some(name) = case.rejected {
        let table = support::Table::parse(&out.stdout);
        let listed = table.is_ok_and(|t| t.lists(name));
        assert!(!listed, "{shown}: the invalid {name} must not be listed\n{out}");
    }
}

#[test]
fn every_invalid_fixture_has_a_case() {
    let dir = support::root().join("tests/fixtures/invalid");
    let on_disk: BTreeSet<String> = fs::read_dir(&dir)
        .expect("tests/fixtures/invalid")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    let cased: BTreeSet<String> = CASES.iter().map(|c| c.file.to_owned()).collect();
    assert_eq!(on_disk, cased, "each invalid fixture needs exactly one case above");
}

#[test]
fn a_node_port_claimed_twice_goes_to_the_same_service_whatever_the_file_order() {
    let fixture_text =
        fs::read_to_string(support::root().join(fixture("invalid/nodeport-duplicate.yaml")))
            .expect("fixture");
    let (comment_and_beta, alpha) = fixture_text.split_once("---\n").expect("two documents");
    let dir = tempfile::tempdir().expect("tempdir");
    let swapped = dir.path().join("swapped.yaml");
    fs::write(&swapped, format!("{alpha}---\n{comment_and_beta}")).expect("write");

    let kept = |out: &Output| {
        out.assert_no_panic();
        assert_eq!(out.code(), Some(1), "{out}");
        let kept: Vec<Row> = out
            .table()
            .rows
            .into_iter()
            .filter(|r| r.name == "alpha" || r.name == "beta")
            .collect();
        assert_eq!(kept.len(), 1, "exactly one of alpha, beta keeps nodePort 30200\n{out}");
        assert_eq!(kept[0].ports, "80:30200/TCP", "{out}");
        kept[0].name.clone()
    };
    let as_written = kept(&check([fixture("invalid/nodeport-duplicate.yaml")]));
    let swapped = kept(&check([&swapped]));
    assert_eq!(as_written, swapped, "the winner must not depend on the order in the file");
}

#[test]
fn invalid_fixtures_checked_together_report_every_file() {
    let out = check([fixture("invalid")]);
    out.assert_no_panic();
    assert_eq!(out.code(), Some(1), "{out}");
    out.assert_within(CHECK_BUDGET);
    for case in CASES {
        let shown = fixture(&format!("invalid/{}", case.file)).display().to_string();
        assert!(
            out.error_lines().iter().any(|l| l.starts_with(&format!("{shown}:"))),
            "{shown} is not reported\n{out}"
        );
    }
    let table = out.table();
    for name in CASES.iter().flat_map(|c| c.listed) {
        assert!(table.lists(name), "valid {name} must still be listed\n{out}");
    }
}

// ---------------------------------------------------------------------------
// An invalid object is rejected alone
// ---------------------------------------------------------------------------

const GOOD_A: &str = "apiVersion: v1
kind: Service
metadata:
  name: good-a
spec:
  ports:
    - port: 80
";

const BROKEN: &str = "apiVersion: v1
kind: Service
metadata:
  name: broken
spec:
  ports:
    - port: 0
";

const GOOD_B: &str = "apiVersion: v1
kind: Service
metadata:
  name: good-b
spec:
  type: NodePort
  ports:
    - port: 81
";

#[test]
fn an_invalid_object_does_not_hide_valid_ones_in_the_same_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("mixed.yaml");
    fs::write(&file, format!("{GOOD_A}---\n{BROKEN}---\n{GOOD_B}")).expect("write");
    let out = check([&file]);
    out.assert_no_panic();
    assert_eq!(out.code(), Some(1), "{out}");
    let errors = out.error_lines();
    assert_eq!(errors.len(), 1, "{out}");
    assert!(errors[0].contains("default/broken: spec.ports[0].port: Invalid value: 0"), "{out}");
    assert!(errors[0].starts_with(&format!("{}:15:", file.display())), "{out}");
    let table = out.table();
    assert_eq!(table.keys(), ["default/good-a", "default/good-b"], "{out}");
}

#[test]
fn an_invalid_item_of_a_list_does_not_hide_the_other_items() {
    let indent = |doc: &str| {
        let mut item = String::new();
        for (i, line) in doc.lines().enumerate() {
            let _ = writeln!(item, "{}{line}", if i == 0 { "  - " } else { "    " });
        }
        item
    };
    let text = format!(
        "apiVersion: v1\nkind: List\nitems:\n{}{}{}",
        indent(GOOD_A),
        indent(BROKEN),
        indent(GOOD_B)
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("list.yaml");
    fs::write(&file, text).expect("write");
    let out = check([&file]);
    out.assert_no_panic();
    assert_eq!(out.code(), Some(1), "{out}");
    let errors = out.error_lines();
    assert_eq!(errors.len(), 1, "{out}");
    assert!(errors[0].contains("default/broken: spec.ports[0].port: Invalid value: 0"), "{out}");
    assert_eq!(out.table().keys(), ["default/good-a", "default/good-b"], "{out}");
}

// ---------------------------------------------------------------------------
// Generated hostile inputs
// ---------------------------------------------------------------------------

/// A small Service document padded to exactly 128 bytes.
fn padded_document(i: usize) -> String {
    let mut doc = format!(
        "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: s-{i}\nspec:\n  ports:\n    - port: 80\n"
    );
    let pad = 128 - doc.len() - 3;
    doc.push('#');
    doc.push_str(&" ".repeat(pad));
    doc.push_str("#\n");
    assert_eq!(doc.len(), 128);
    doc
}

#[test]
fn rejects_a_64_mib_file_by_its_size_without_reading_it() {
    const SIZE: usize = 64 << 20;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("huge.yaml");
    let mut chunk = String::with_capacity(1 << 20);
    for i in 0..(1 << 20) / 128 {
        chunk.push_str(&padded_document(i % 1000));
    }
    let mut writer = BufWriter::new(fs::File::create(&file).expect("create"));
    for _ in 0..SIZE / chunk.len() {
        writer.write_all(chunk.as_bytes()).expect("write");
    }
    writer.flush().expect("flush");
    drop(writer);
    assert_eq!(fs::metadata(&file).expect("stat").len(), SIZE as u64);

    let (out, peak_kib) = check_with_peak_rss([&file]);
    out.assert_no_panic();
    assert_eq!(out.code(), Some(1), "{out}");
    let want =
        format!("{}: file is {SIZE} bytes, over the limit of {} bytes", file.display(), 16 << 20);
    assert_eq!(out.error_lines(), [want.as_str()], "{out}");
    out.assert_within(CHECK_BUDGET);
    match peak_kib {
        // Far below the file's size: it was never read into memory.
        Some(kib) => assert!(kib < 32 * 1024, "peak RSS {kib} KiB\n{out}"),
        None => eprintln!("note: /usr/bin/time missing, peak memory not checked"),
    }
}

#[test]
fn rejects_a_file_of_20000_documents_quickly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("storm.yaml");
    let mut writer = BufWriter::new(fs::File::create(&file).expect("create"));
    for i in 0..20_000 {
        writer.write_all(padded_document(i).as_bytes()).expect("write");
    }
    writer.flush().expect("flush");
    drop(writer);

    let (out, peak_kib) = check_with_peak_rss([&file]);
    out.assert_no_panic();
    assert_eq!(out.code(), Some(1), "{out}");
    let errors = out.error_lines();
    assert_eq!(errors.len(), 1, "one error for the file, not one per document\n{out}");
    assert!(errors[0].starts_with(&format!("{}:", file.display())), "{out}");
    assert!(errors[0].contains("more than 10000 documents in one file"), "{out}");
    out.assert_within(CHECK_BUDGET);
    match peak_kib {
        Some(kib) => assert!(kib < 128 * 1024, "peak RSS {kib} KiB\n{out}"),
        None => eprintln!("note: /usr/bin/time missing, peak memory not checked"),
    }
}

// ---------------------------------------------------------------------------
// config/
// ---------------------------------------------------------------------------

#[test]
fn seed_config_reports_its_two_broken_files_and_lists_the_good_services() {
    let out = check(["config/seed"]);
    out.assert_no_panic();
    assert_eq!(out.code(), Some(1), "{out}");
    out.assert_within(CHECK_BUDGET);
    let errors = out.error_lines();
    // Only the two broken files, one line per error (hello-svc has three,
    // as the API server would say: both ports unnamed, the second portless).
    for line in &errors {
        assert!(
            BROKEN_CONFIG.iter().any(|f| line.starts_with(&format!("{f}:"))),
            "unexpected error {line:?}\n{out}"
        );
    }

    let hello = errors
        .iter()
        .filter_map(|l| l.strip_prefix("config/seed/hello-service.yml:"))
        .filter_map(|rest| rest.split_once(": "))
        .find(|(_, detail)| detail.contains("spec.ports[1].port"))
        .unwrap_or_else(|| panic!("hello-service.yml spec.ports[1].port not reported\n{out}"));
    assert!(hello.0.parse::<u32>().is_ok(), "FILE:LINE expected\n{out}");
    assert_eq!(hello.1, "default/hello-svc: spec.ports[1].port: Required value", "{out}");

    let pods = errors
        .iter()
        .find(|l| l.starts_with("config/seed/labelled-pods.yml:"))
        .unwrap_or_else(|| panic!("labelled-pods.yml not reported\n{out}"));
    assert!(pods.contains("duplicate key"), "{out}");

    let table = out.table();
    assert_eq!(table.keys(), ["default/svc-1", "default/svc-2"], "{out}");
    assert_eq!(table.row("default", "svc-1").ports, "80/TCP", "{out}");
    assert_eq!(table.row("default", "svc-2").ports, "3306/TCP", "{out}");
    for row in &table.rows {
        assert_eq!(row.kind, "ClusterIP", "{out}");
        assert!(in_default_service_cidr(&row.cluster_ip), "allocated CLUSTER-IP\n{out}");
        // The seed's Pods have no status.podIP.
        assert_eq!(row.endpoints, "<none>", "{out}");
    }
}

#[test]
fn demo_config_lists_hello_svc_with_its_node_port_and_three_endpoints() {
    let out = check(["config/demo"]);
    out.assert_no_panic();
    assert_eq!(out.code(), Some(0), "{out}");
    assert!(out.error_lines().is_empty(), "{out}");
    out.assert_within(CHECK_BUDGET);
    let table = out.table();
    let hello = table
        .rows
        .iter()
        .find(|r| r.name == "hello-svc")
        .unwrap_or_else(|| panic!("hello-svc not listed\n{out}"));
    assert!(hello.ports.split(',').any(|p| p == "9000:30165/TCP"), "{out}");
    assert_eq!(hello.endpoints, "127.0.1.1:8000,127.0.1.2:8000,127.0.1.3:8000", "{out}");
}

/// The files of config/ known to be broken (the seed's own mistakes).
const BROKEN_CONFIG: [&str; 2] = ["config/seed/hello-service.yml", "config/seed/labelled-pods.yml"];

#[test]
fn every_manifest_under_config_checks_as_expected() {
    let files = support::manifest_files(&support::root().join("config"));
    assert!(!files.is_empty(), "config/ has no manifests");
    let mut wrong = String::new();
    for file in &files {
        let rel = file.strip_prefix(support::root()).expect("under the root");
        let out = check([rel]);
        out.assert_no_panic();
        out.assert_within(CHECK_BUDGET);
        let want = if BROKEN_CONFIG.iter().any(|b| Path::new(b) == rel) { 1 } else { 0 };
        if out.code() != Some(want) {
            let _ = writeln!(wrong, "{}: expected exit {want}\n{out}", rel.display());
        }
        if want == 1 && !out.error_lines().iter().all(|l| l.starts_with(&*rel.to_string_lossy())) {
            let _ = writeln!(wrong, "{}: errors must name the file\n{out}", rel.display());
        }
    }
    assert!(wrong.is_empty(), "{wrong}");
}

// ---------------------------------------------------------------------------
// Allocation
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// Usage and file errors
// ---------------------------------------------------------------------------

#[test]
fn check_without_a_path_is_a_usage_error() {
    let out = check(Vec::<PathBuf>::new());
    out.assert_no_panic();
    assert_eq!(out.code(), Some(2), "{out}");
    assert!(out.stdout.is_empty(), "{out}");
    assert!(!out.stderr.is_empty(), "usage is explained on stderr\n{out}");
}

#[test]
fn check_with_an_unknown_flag_is_a_usage_error() {
    let out = check(["--no-such-flag", "tests/fixtures/valid"]);
    out.assert_no_panic();
    assert_eq!(out.code(), Some(2), "{out}");
    assert!(out.stderr.contains("--no-such-flag"), "{out}");
}

#[test]
fn an_unknown_command_is_a_usage_error() {
    let out = support::run(["no-such-command"]);
    out.assert_no_panic();
    assert_eq!(out.code(), Some(2), "{out}");
}

#[test]
fn a_missing_path_is_reported_by_name_and_the_others_still_load() {
    let out = check(["tests/fixtures/no-such-file.yaml", "tests/fixtures/valid/nodeport.yaml"]);
    out.assert_no_panic();
    assert_eq!(out.code(), Some(1), "{out}");
    let errors = out.error_lines();
    assert_eq!(errors.len(), 1, "{out}");
    assert!(errors[0].starts_with("tests/fixtures/no-such-file.yaml: "), "{out}");
    assert_eq!(out.table().keys(), ["default/frontend"], "{out}");
}
