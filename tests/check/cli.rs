//! Usage errors exit 2, never 1 (a check that found problems): `check`
//! without a path, `check` with an unknown flag, an unknown command; and
//! kube-proxy's flags of DESIGN §2 that `run` parses but cannot serve yet.

use std::path::PathBuf;

use crate::support;
use crate::support::check;

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
fn run_names_the_api_server_source_as_not_built_and_exits_2() {
    for flags in [["--kubeconfig", "/nonexistent/kubeconfig"], ["--master", "http://127.0.0.1:1"]] {
        let out = support::run(std::iter::once("run").chain(flags));
        out.assert_no_panic();
        assert_eq!(out.code(), Some(2), "{out}");
        assert!(
            out.stderr.contains("not built yet") && out.stderr.contains("--manifests"),
            "{out}"
        );
    }
}

#[test]
fn run_checks_min_sync_period_as_a_duration() {
    let out = support::run(["run", "--manifests", "config/demo", "--min-sync-period", "2x"]);
    out.assert_no_panic();
    assert_eq!(out.code(), Some(2), "{out}");
    assert!(out.stderr.contains("--min-sync-period"), "{out}");
}
