//! `svcproxy check` on the shipped examples: every manifest under config/
//! checks as expected, the seed's two broken files are reported while its
//! good Services are listed, and the demo lists hello-svc.

use std::fmt::Write as _;
use std::path::Path;

use crate::support;
use crate::support::cluster_ip::in_default_service_cidr;
use crate::support::{CHECK_BUDGET, check};

/// The files of config/ known to be broken (the seed's own mistakes).
const BROKEN_CONFIG: [&str; 2] = ["config/seed/hello-service.yml", "config/seed/labelled-pods.yml"];

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
