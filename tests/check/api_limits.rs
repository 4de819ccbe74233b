//! `svcproxy check` applies the API server's bounds, in its words: an
//! EndpointSlice of at most 1,000 endpoints, 100 ports and 100 addresses
//! per endpoint; an Endpoints subset with some address and named ports
//! when it has several; no object over 1.5 MiB (etcd's request limit).
//! A bound's own value is accepted; one past it is an error; a slice far
//! past it is rejected.

use std::fmt::Write as _;
use std::fs;

use crate::support::{Output, check};

const SERVICE: &str = "apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  clusterIP: 127.96.0.9
  ports:
    - name: http
      port: 80
";

/// An EndpointSlice of web: `endpoints` endpoints of `addresses` addresses
/// each, and `ports` ports named p1.. (the first named http).
fn slice(endpoints: usize, addresses: usize, ports: usize) -> String {
    let mut doc = String::from(
        "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: web-1\n  \
         labels:\n    kubernetes.io/service-name: web\naddressType: IPv4\nports:\n",
    );
    for i in 0..ports {
        let name = if i == 0 { "http".to_owned() } else { format!("p{i}") };
        let _ = writeln!(doc, "  - name: {name}\n    port: {}", 8000 + i);
    }
    doc.push_str("endpoints:\n");
    for i in 0..endpoints {
        doc.push_str("  - addresses:\n");
        for j in 0..addresses {
            let n = i * addresses + j;
            let _ = writeln!(doc, "      - 10.{}.{}.{}", n >> 16, (n >> 8) & 255, n & 255);
        }
    }
    doc
}

/// Runs `check` on `yaml` as one file `limits.yaml`.
fn check_text(yaml: &str) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("limits.yaml");
    fs::write(&file, yaml).expect("write");
    // Bounded by `check`'s deadline only: how its time grows with the
    // input is measured by `cargo bench --bench input`, not asserted on a
    // shared machine.
    let out = check([&file]);
    out.assert_no_panic();
    out
}

/// Asserts `check` rejects `yaml` with exactly the error lines ending in
/// `errors`, and still lists web.
fn assert_rejected(yaml: &str, errors: &[&str]) {
    let out = check_text(yaml);
    assert_eq!(out.code(), Some(1), "{out}");
    let lines = out.error_lines();
    assert_eq!(lines.len(), errors.len(), "{out}");
    for (line, want) in lines.iter().zip(errors) {
        assert!(line.ends_with(want), "{line:?} does not end with {want:?}\n{out}");
    }
    out.table().row("default", "web");
}

fn assert_accepted(yaml: &str) {
    let out = check_text(yaml);
    assert_eq!(out.code(), Some(0), "{out}");
    assert!(out.error_lines().is_empty(), "{out}");
}

#[test]
fn a_slice_of_1000_endpoints_is_accepted_and_of_1001_rejected() {
    let out = check_text(&format!("{SERVICE}{}", slice(1000, 1, 1)));
    assert_eq!(out.code(), Some(0), "{out}");
    assert_eq!(
        out.table().row("default", "web").endpoints,
        "10.0.0.0:8000,10.0.0.1:8000,10.0.0.2:8000 + 997 more..."
    );
    assert_rejected(
        &format!("{SERVICE}{}", slice(1001, 1, 1)),
        &["default/web-1: endpoints: Too many: 1001: must have at most 1000 items"],
    );
}

#[test]
fn a_slice_of_100_ports_is_accepted_and_of_101_rejected() {
    assert_accepted(&format!("{SERVICE}{}", slice(1, 1, 100)));
    assert_rejected(
        &format!("{SERVICE}{}", slice(1, 1, 101)),
        &["default/web-1: ports: Too many: 101: must have at most 100 items"],
    );
}

#[test]
fn an_endpoint_of_100_addresses_is_accepted_and_of_101_rejected() {
    assert_accepted(&format!("{SERVICE}{}", slice(1, 100, 1)));
    assert_rejected(
        &format!("{SERVICE}{}", slice(1, 101, 1)),
        &["default/web-1: endpoints[0].addresses: Too many: 101: must have at most 100 items"],
    );
}

#[test]
fn slice_ports_need_unique_dns_label_names() {
    let yaml = format!(
        "{SERVICE}{}",
        slice(1, 1, 1).replace(
            "ports:\n  - name: http\n    port: 8000\n",
            "ports:\n  - name: http\n    port: 8000\n  - name: http\n    port: 8001\n  - name: Web\n    port: 8002\n",
        )
    );
    assert_rejected(
        &yaml,
        &[
            "default/web-1: ports[1].name: Duplicate value: \"http\"",
            "default/web-1: ports[2].name: Invalid value: \"Web\": a lowercase RFC 1123 label must \
             consist of lower case alphanumeric characters or '-', and must start and end with an \
             alphanumeric character",
        ],
    );
}

#[test]
fn an_endpoint_without_addresses_is_rejected_as_the_api_server_does() {
    let yaml = format!("{SERVICE}{}", slice(1, 1, 1))
        .replace("  - addresses:\n      - 10.0.0.0\n", "  - addresses: []\n");
    assert_rejected(
        &yaml,
        &["default/web-1: endpoints[0].addresses: Required value: must contain at least 1 address"],
    );
}

#[test]
fn an_endpoints_subset_needs_an_address_and_names_for_several_ports() {
    let yaml = format!(
        "{SERVICE}---\napiVersion: v1\nkind: Endpoints\nmetadata:\n  name: web\nsubsets:\n  \
         - ports:\n      - port: 80\n      - port: 81\n"
    );
    assert_rejected(
        &yaml,
        &[
            "default/web: subsets[0]: Required value: must specify `addresses` or `notReadyAddresses`",
            "default/web: subsets[0].ports[0].name: Required value",
            "default/web: subsets[0].ports[1].name: Required value",
        ],
    );
}

#[test]
fn a_slice_far_past_the_bounds_is_rejected() {
    let slice = |count: u32| {
        let mut yaml = format!("{SERVICE}{}", slice(0, 0, 1));
        for i in 0..count {
            let _ =
                writeln!(yaml, "  - addresses: [10.{}.{}.{}]", i >> 16, (i >> 8) & 255, i & 255);
        }
        yaml
    };
    // 40,000 short endpoints stay under 1.5 MiB as JSON: the count
    // rejects them; 100,000 are over it: the size rejects them first.
    assert_rejected(
        &slice(40_000),
        &["default/web-1: endpoints: Too many: 40000: must have at most 1000 items"],
    );
    let out = check_text(&slice(100_000));
    assert_eq!(out.code(), Some(1), "{out}");
    let lines = out.error_lines();
    assert_eq!(lines.len(), 1, "{out}");
    assert!(lines[0].contains("default/web-1: Too long: must have at most 1572864 bytes"), "{out}");
}

#[test]
fn an_object_over_1_5_mib_is_rejected_and_one_under_it_accepted() {
    // An Endpoints object of short addresses: only its size breaks a rule.
    let endpoints = |count: u32| {
        let mut doc = String::from(
            "---\napiVersion: v1\nkind: Endpoints\nmetadata:\n  name: web\nsubsets:\n  \
             - ports:\n      - name: http\n        port: 80\n    addresses:\n",
        );
        for i in 0..count {
            let _ = writeln!(doc, "      - ip: 10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255);
        }
        doc
    };
    // Each address is {"ip":"10.x.y.z"} and a comma: 20 to 22 bytes.
    assert_accepted(&format!("{SERVICE}{}", endpoints(60_000)));
    let out = check_text(&format!("{SERVICE}{}", endpoints(100_000)));
    assert_eq!(out.code(), Some(1), "{out}");
    let lines = out.error_lines();
    assert_eq!(lines.len(), 1, "{out}");
    assert!(
        lines[0].contains(
            "default/web: Too long: must have at most 1572864 bytes, the most the API server \
             stores (this object is "
        ),
        "{out}"
    );
}
