//! Helpers shared by the black-box tests: run the real `svcproxy` binary
//! under a deadline, and read the table `svcproxy check` prints.
//!
//! Every test binary declares `mod support;` once (tests/demo.rs as is,
//! each `tests/*/main.rs` with `#[path = "../support/mod.rs"]`); each uses
//! only a part (hence `dead_code`), and `pub` here means "for the test
//! files" (hence `unreachable_pub`). A helper that cannot do its job fails the
//! test, as `expect` in a test does.
#![allow(dead_code, unreachable_pub, clippy::expect_used)]

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// A run that takes longer than this is killed and the test fails: a hung
/// binary must never hang the suite.
pub const DEADLINE: Duration = Duration::from_secs(15);

/// How long `check` may take on any single input, hostile ones included:
/// 1 s. Dev builds optimise dependencies but not svcproxy itself, and the
/// YAML deserialisers are generic code instantiated (unoptimised) in
/// svcproxy; there the 20,000-document file takes 0.7-1.1 s on a 2-core
/// machine, so debug runs get a looser bound that still catches a parser
/// that reads past its budgets.
pub const CHECK_BUDGET: Duration =
    if cfg!(debug_assertions) { Duration::from_millis(2500) } else { Duration::from_secs(1) };

/// The header of the `check` table, column by column.
pub const HEADER: [&str; 7] =
    ["NAMESPACE", "NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "ENDPOINTS"];

/// The binary under test.
pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_svcproxy"))
}

/// The crate root; commands run from here, so relative paths in their
/// output (`config/seed/...`) read as a user would type them.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `tests/fixtures/<rel>`, relative to [`root`] (as a user would pass it).
pub fn fixture(rel: &str) -> PathBuf {
    Path::new("tests/fixtures").join(rel)
}

/// What one run of the binary did.
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    /// From spawn to exit.
    pub elapsed: Duration,
}

// === impl Output ===

impl Output {
    /// The exit code; `None` when a signal ended the process.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// The non-empty stderr lines.
    pub fn stderr_lines(&self) -> Vec<&str> {
        self.stderr.lines().filter(|l| !l.trim().is_empty()).collect()
    }

    /// The stderr lines that report errors (everything but `note:` and
    /// `warning:` lines).
    pub fn error_lines(&self) -> Vec<&str> {
        self.stderr_lines().into_iter().filter(|l| !is_note(l) && !is_warning(l)).collect()
    }

    /// The stderr lines that report warnings.
    pub fn warning_lines(&self) -> Vec<&str> {
        self.stderr_lines().into_iter().filter(|l| is_warning(l)).collect()
    }

    /// The stdout table; panics (showing the whole run) when it is not one.
    pub fn table(&self) -> Table {
        Table::parse(&self.stdout).unwrap_or_else(|e| panic!("{e}\n{self}"))
    }

    /// Fails unless the process neither panicked nor was killed by a signal.
    pub fn assert_no_panic(&self) {
        assert!(self.code().is_some(), "killed by a signal\n{self}");
        assert!(!self.stderr.contains("panicked"), "the binary panicked\n{self}");
    }

    /// Fails unless the run ended within `budget`.
    pub fn assert_within(&self, budget: Duration) {
        assert!(self.elapsed < budget, "took {:?}, over {budget:?}\n{self}", self.elapsed);
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "--- exit: {:?} after {:?}", self.status.code(), self.elapsed)?;
        writeln!(f, "--- stdout:\n{}", clip(&self.stdout))?;
        write!(f, "--- stderr:\n{}", clip(&self.stderr))
    }
}

/// A `note:` line on stderr is information, not an error.
pub fn is_note(line: &str) -> bool {
    line.trim_start().starts_with("note:")
}

/// A `warning:` line of `check`: the input is accepted.
pub fn is_warning(line: &str) -> bool {
    line.trim_start().starts_with("warning:")
}

fn clip(text: &str) -> &str {
    const MAX: usize = 8_000;
    if text.len() <= MAX {
        return text;
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// A command for the binary: run from [`root`], no stdin, and the default
/// log level (a developer's `RUST_LOG` must not change what tests see).
pub fn command() -> Command {
    let mut cmd = Command::new(bin());
    cmd.current_dir(root()).env_remove("RUST_LOG").stdin(Stdio::null());
    cmd
}

/// Runs the binary with `args` under [`DEADLINE`].
pub fn run<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = command();
    cmd.args(args);
    run_command(cmd, DEADLINE)
}

/// Runs `svcproxy check ARGS...` under [`DEADLINE`].
pub fn check<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = command();
    cmd.arg("check").args(args);
    run_command(cmd, DEADLINE)
}

/// Runs `cmd` to its end, killing it (and failing) past `deadline`. Output
/// is drained by threads so a chatty child can never block on a full pipe.
pub fn run_command(mut cmd: Command, deadline: Duration) -> Output {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let status = wait_until(&mut child, start + deadline);
    let elapsed = start.elapsed();
    let output = Output {
        status: status.unwrap_or_else(|| kill(&mut child)),
        stdout: join(stdout),
        stderr: join(stderr),
        elapsed,
    };
    assert!(
        status.is_some(),
        "{cmd:?} ran past its {deadline:?} deadline and was killed\n{output}"
    );
    output
}

/// Waits for `child` to exit, up to `until`; `None` if it is still running.
fn wait_until(child: &mut Child, until: Instant) -> Option<ExitStatus> {
    // std has no wait-with-timeout: poll at a short interval, bounded by
    // the deadline.
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() >= until => return None,
            Ok(None) => thread::sleep(Duration::from_millis(1)),
            Err(e) => panic!("waiting for the child: {e}"),
        }
    }
}

fn kill(child: &mut Child) -> ExitStatus {
    // Our own child, by its handle: nothing else is touched.
    let _ = child.kill();
    child.wait().unwrap_or_else(|e| panic!("reaping the killed child: {e}"))
}

fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

fn join(reader: JoinHandle<String>) -> String {
    reader.join().unwrap_or_else(|_| panic!("pipe reader thread panicked"))
}

/// Runs `svcproxy check ARGS...` under GNU time to read its peak resident
/// memory, in KiB (fails the test when GNU time is not installed).
pub fn check_with_peak_rss<I, S>(args: I) -> (Output, u64)
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let report = tempfile::NamedTempFile::new().expect("temp file for GNU time");
    let mut cmd = Command::new(tools::gnu_time());
    cmd.current_dir(root()).env_remove("RUST_LOG").stdin(Stdio::null());
    cmd.arg("-f").arg("%M").arg("-o").arg(report.path()).arg(bin()).arg("check").args(args);
    let output = run_command(cmd, DEADLINE);
    let text = std::fs::read_to_string(report.path()).unwrap_or_default();
    // GNU time writes "Command exited with non-zero status N" before the
    // figure when the command fails: the figure is the last line.
    let peak = text.lines().rev().find_map(|l| l.trim().parse::<u64>().ok());
    let peak = peak.unwrap_or_else(|| panic!("no peak memory from GNU time: {text:?}\n{output}"));
    (output, peak)
}

/// Every manifest file (`*.yaml`, `*.yml`, `*.json`) under `dir`,
/// recursively, sorted by path.
pub fn manifest_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path
                .extension()
                .and_then(OsStr::to_str)
                .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
            {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The table `svcproxy check` prints on stdout.
#[derive(Debug)]
pub struct Table {
    pub rows: Vec<Row>,
}

/// One Service in the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub namespace: String,
    pub name: String,
    pub kind: String,
    pub cluster_ip: String,
    pub external_ip: String,
    pub ports: String,
    pub endpoints: String,
}

// === impl Table ===

impl Table {
    /// Parses a header line then one row per line, columns separated by
    /// three or more spaces (a cell never holds that many).
    pub fn parse(stdout: &str) -> Result<Table, String> {
        let mut lines = stdout.lines().filter(|l| !l.trim().is_empty());
        let header = lines.next().ok_or("stdout is empty: no table header")?;
        let header = columns(header);
        if header != HEADER {
            return Err(format!("table header is {header:?}, expected {HEADER:?}"));
        }
        let rows = lines
            .map(|line| match <[String; 7]>::try_from(columns(line)) {
                Ok([namespace, name, kind, cluster_ip, external_ip, ports, endpoints]) => {
                    Ok(Row { namespace, name, kind, cluster_ip, external_ip, ports, endpoints })
                }
                Err(cells) => Err(format!("row {line:?} has {} columns, not 7", cells.len())),
            })
            .collect::<Result<_, _>>()?;
        Ok(Table { rows })
    }

    /// The row of `namespace/name`, if listed.
    pub fn get(&self, namespace: &str, name: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.namespace == namespace && r.name == name)
    }

    /// The row of `namespace/name`; panics with the table when missing.
    pub fn row(&self, namespace: &str, name: &str) -> &Row {
        self.get(namespace, name)
            .unwrap_or_else(|| panic!("{namespace}/{name} is not in the table: {:#?}", self.rows))
    }

    /// `namespace/name` of every row, in table order.
    pub fn keys(&self) -> Vec<String> {
        self.rows.iter().map(|r| format!("{}/{}", r.namespace, r.name)).collect()
    }

    /// True when some row is named `name` (in any namespace).
    pub fn lists(&self, name: &str) -> bool {
        self.rows.iter().any(|r| r.name == name)
    }
}

/// Splits a table line on runs of three or more spaces.
pub fn columns(line: &str) -> Vec<String> {
    let mut cells = Vec::new();
    let mut cell = String::new();
    let mut spaces = 0;
    for c in line.trim().chars() {
        if c == ' ' {
            spaces += 1;
            continue;
        }
        if spaces >= 3 {
            cells.push(std::mem::take(&mut cell));
        } else {
            cell.extend(std::iter::repeat_n(' ', spaces));
        }
        spaces = 0;
        cell.push(c);
    }
    if !cell.is_empty() {
        cells.push(cell);
    }
    cells
}

/// An ENDPOINTS cell: the `ip:port` pairs shown and, as kubectl writes
/// past three (`a,b,c + 3 more...`), how many more there are.
#[derive(Debug, PartialEq, Eq)]
pub struct Endpoints {
    pub shown: BTreeSet<String>,
    pub more: usize,
}

// === impl Endpoints ===

impl Endpoints {
    pub fn parse(cell: &str) -> Endpoints {
        let (list, more) = match cell.split_once(" + ") {
            Some((list, more)) => {
                let count = more.trim_end_matches(" more...").parse().unwrap_or(usize::MAX);
                (list, count)
            }
            None => (cell, 0),
        };
        Endpoints { shown: list_set(list), more }
    }

    /// True when the cell lists `expected`, all of them or (truncated) a
    /// part and the count of the others.
    pub fn matches<S: AsRef<str>>(&self, expected: &[S]) -> bool {
        let expected: BTreeSet<&str> = expected.iter().map(AsRef::as_ref).collect();
        self.shown.iter().all(|e| expected.contains(e.as_str()))
            && self.shown.len() + self.more == expected.len()
    }
}

/// The comma-separated items of a cell; `<none>` is the empty set.
pub fn list_set(cell: &str) -> BTreeSet<String> {
    if cell == "<none>" {
        return BTreeSet::new();
    }
    cell.split(',').map(|s| s.trim().to_owned()).collect()
}

/// Parses a PORT(S) item `port[:nodePort]/PROTO`.
pub fn parse_port(item: &str) -> Option<(u16, Option<u16>, String)> {
    let (ports, proto) = item.split_once('/')?;
    let (port, node) = match ports.split_once(':') {
        Some((port, node)) => (port.parse().ok()?, Some(node.parse().ok()?)),
        None => (ports.parse().ok()?, None),
    };
    Some((port, node, proto.to_owned()))
}
pub mod admin;
pub mod apiserver;
pub mod cluster_ip;
pub mod endpoint;
pub mod grpc;
pub mod http;
pub mod manifests;
pub mod metrics;
pub mod net;
pub mod prom;
pub mod proxy;
pub mod semantics;
pub mod tagged;
pub mod tools;
pub mod udp;
pub mod websocket;
