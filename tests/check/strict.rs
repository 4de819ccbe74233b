//! Unknown fields, as kubectl takes them: a field svcproxy's types
//! (Kubernetes 1.33's) do not have is a warning naming the field and the
//! version known, and the object is listed; `check --strict` (kubectl's
//! `--validate=strict`) makes it an error. A near miss of a known field is
//! an error either way (tests/check/invalid.rs).

use crate::support::{CHECK_BUDGET, check, fixture};

const NEWER: &str = "valid/unknown-field-newer.yaml";

#[test]
fn an_unknown_field_that_is_no_typo_is_a_warning_and_the_object_is_listed() {
    let path = fixture(NEWER);
    let out = check([&path]);
    out.assert_no_panic();
    assert_eq!(out.code(), Some(0), "{out}");
    out.assert_within(CHECK_BUDGET);
    assert!(out.error_lines().is_empty(), "{out}");
    let warnings = out.warning_lines();
    let want = format!(
        "warning: {}:14: default/newer-field: unknown field \"spec.trafficShaping\" \
         (svcproxy knows Kubernetes 1.33's Service)",
        path.display()
    );
    assert_eq!(warnings, [want.as_str()], "{out}");
    assert!(out.table().lists("newer-field"), "{out}");
}

#[test]
fn check_strict_makes_every_unknown_field_an_error() {
    let path = fixture(NEWER);
    let out = check([path.as_os_str(), "--strict".as_ref()]);
    out.assert_no_panic();
    assert_eq!(out.code(), Some(1), "{out}");
    assert!(out.warning_lines().is_empty(), "{out}");
    let want = format!(
        "{}:14: default/newer-field: strict decoding error: unknown field \
         \"spec.trafficShaping\" (svcproxy knows Kubernetes 1.33's Service)",
        path.display()
    );
    assert_eq!(out.error_lines(), [want.as_str()], "{out}");
    assert!(!out.table().lists("newer-field"), "rejected: not listed\n{out}");
}

#[test]
fn check_strict_passes_files_without_unknown_fields() {
    let out = check([fixture("valid/externalname.yaml").as_os_str(), "--strict".as_ref()]);
    out.assert_no_panic();
    assert_eq!(out.code(), Some(0), "{out}");
    assert!(out.stderr_lines().iter().all(|l| l.starts_with("note:")), "{out}");
}
