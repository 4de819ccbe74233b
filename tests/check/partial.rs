//! `svcproxy check` rejects one bad input alone: an invalid object in a
//! file, an invalid item of a List, a path that does not exist. Everything
//! valid beside it is still listed, and the exit code says something failed.

use std::fmt::Write as _;
use std::fs;

use crate::support::check;

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

/// Nothing could be read: the error alone, no empty table before it.
#[test]
fn a_path_that_does_not_exist_prints_its_error_alone() {
    let out = check(["tests/fixtures/no-such-file.yaml", "tests/fixtures/no-such-dir"]);
    out.assert_no_panic();
    assert_eq!(out.code(), Some(1), "{out}");
    assert_eq!(out.stdout, "", "no table header on stdout\n{out}");
    assert_eq!(
        out.stderr_lines(),
        [
            "tests/fixtures/no-such-file.yaml: no such file or directory",
            "tests/fixtures/no-such-dir: no such file or directory"
        ],
        "{out}"
    );
}
