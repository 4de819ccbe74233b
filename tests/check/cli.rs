//! Usage errors exit 2, never 1 (a check that found problems): `check`
//! without a path, `check` with an unknown flag, an unknown command. (The
//! usage errors of `run`: run/cli.rs.)

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
