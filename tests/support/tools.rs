//! The programs besides svcproxy that some tests drive, each from a Debian
//! package that `bash .ci/run` installs: `promtool` (`prometheus`) lints
//! `/metrics` and parses PromQL, `systemd-analyze` (`systemd`) verifies the
//! unit, `setpriv` (`util-linux`) drops to an unprivileged user, GNU `time`
//! (`time`) reads a run's peak memory.
//!
//! A test that needs one fails when it is not installed, naming the package:
//! it never passes without making its check.

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::thread;

/// `promtool`; fails the test when it is not installed.
pub fn promtool() -> PathBuf {
    required("promtool", "prometheus")
}

/// `systemd-analyze`; fails the test when it is not installed.
pub fn systemd_analyze() -> PathBuf {
    required("systemd-analyze", "systemd")
}

/// `setpriv`; fails the test when it is not installed.
pub fn setpriv() -> PathBuf {
    required("setpriv", "util-linux")
}

/// GNU `time` (the program, not the shell keyword); fails the test when
/// it is not installed.
pub fn gnu_time() -> PathBuf {
    required("time", "time")
}

/// `name` on PATH; panics, naming the Debian `package`, when it is not.
pub fn required(name: &str, package: &str) -> PathBuf {
    on_path(name).unwrap_or_else(|| {
        panic!("{name} is not installed: install Debian's `{package}` package (bash .ci/run does)")
    })
}

/// The executable `name` on PATH, if any.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

/// `promtool check metrics` on an exposition `text`.
pub fn promtool_check_metrics(text: &str) -> Output {
    run_tool(Command::new(promtool()).args(["check", "metrics"]), text)
}

/// What `promtool check metrics` says of `text`: empty when it accepts
/// the text without a word, else its exit status and its report.
pub fn promtool_complaints(text: &str) -> String {
    let out = promtool_check_metrics(text);
    let report =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if out.status.success() {
        report.trim().to_owned()
    } else {
        format!("{}: {report}", out.status)
    }
}

/// Runs `cmd` with `input` on stdin (empty: none) to its end.
pub fn run_tool(cmd: &mut Command, input: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_owned();
    let writer = thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().expect("wait");
    writer.join().expect("writer thread").expect("write stdin");
    output
}

/// A tool's status and whole output, for a failure message.
pub fn shown(output: &Output) -> String {
    format!(
        "({})\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
