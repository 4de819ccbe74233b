//! `svcproxy check` on Services whose cells are longer than any width a
//! format string can pad (65,535): thousands of externalIPs or ports.
//! The table is printed, aligned, never a panic; a list past 16 items is
//! cut as kubectl cuts its ENDPOINTS column (`a,b,c + N more...`).

use std::fmt::Write as _;
use std::fs;

use crate::support::{CHECK_BUDGET, Table, check};

/// A Service with `ips` externalIPs 127.1.x.y and `ports` ports 1.. .
fn service(name: &str, ips: usize, ports: usize) -> String {
    let mut doc = format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  externalIPs:\n"
    );
    for i in 0..ips {
        let _ = writeln!(doc, "    - 127.1.{}.{}", i / 256, i % 256);
    }
    doc.push_str("  ports:\n");
    for i in 1..=ports {
        let _ = writeln!(doc, "    - name: p{i}\n      port: {i}");
    }
    doc
}

/// Runs `check` on `yaml`, which must be valid, and returns its table.
fn table(yaml: &str) -> Table {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("long.yaml");
    fs::write(&file, yaml).expect("write");
    let out = check([&file]);
    out.assert_no_panic();
    assert_eq!(out.code(), Some(0), "{out}");
    out.assert_within(CHECK_BUDGET);
    out.table()
}

/// The EXTERNAL-IP and PORT(S) cells of the Service `name`'s row.
fn cells(table: &Table, name: &str) -> (String, String) {
    let row = table.row("default", name);
    (row.external_ip.clone(), row.ports.clone())
}

#[test]
fn five_thousand_external_ips_are_cut_as_kubectl_cuts_endpoints() {
    let (external, ports) = cells(&table(&service("many-ips", 5_421, 1)), "many-ips");
    assert_eq!(external, "127.1.0.0,127.1.0.1,127.1.0.2 + 5418 more...");
    assert_eq!(ports, "1/TCP");
}

#[test]
fn eight_thousand_ports_are_cut_as_kubectl_cuts_endpoints() {
    let (external, ports) = cells(&table(&service("many-ports", 0, 8_000)), "many-ports");
    assert_eq!(external, "<none>");
    assert_eq!(ports, "1/TCP,2/TCP,3/TCP + 7997 more...");
}

#[test]
fn lists_of_sixteen_are_shown_whole_and_of_seventeen_cut() {
    let yaml = format!("{}---\n{}", service("sixteen", 16, 16), service("seventeen", 17, 17));
    let table = table(&yaml);
    let (external, ports) = cells(&table, "sixteen");
    assert_eq!(external.split(',').count(), 16, "{external}");
    assert_eq!(ports.split(',').count(), 16, "{ports}");
    let (external, ports) = cells(&table, "seventeen");
    assert_eq!(external, "127.1.0.0,127.1.0.1,127.1.0.2 + 14 more...");
    assert_eq!(ports, "1/TCP,2/TCP,3/TCP + 14 more...");
}
