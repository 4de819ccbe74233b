//! `docker/Dockerfile` (and its ignore file) and `docker/svcproxy.service`:
//! they build and run the binary the rest of the packaging expects, with
//! flags `svcproxy run` knows. Docker is not run; the unit is verified by
//! `systemd-analyze`.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::support;
use crate::support::tools::{self, run_tool, shown};
use crate::{DEFAULT_DRAIN_TIMEOUT, INSTALLED_BIN, assert_run_knows, docker, read};

/// One Dockerfile instruction: `(INSTRUCTION, arguments)`.
type Instruction = (String, String);

/// The Dockerfile's instructions: continuation lines joined, comments and
/// blank lines dropped.
fn dockerfile() -> Vec<Instruction> {
    let text = read(&docker("Dockerfile"));
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
            continue;
        }
        if let Some(part) = line.strip_suffix('\\') {
            current.push_str(part);
            current.push(' ');
            continue;
        }
        current.push_str(line);
        let (instruction, args) = current.split_once(' ').unwrap_or((&current, ""));
        instructions.push((instruction.to_ascii_uppercase(), args.trim().to_owned()));
        current.clear();
    }
    instructions
}

/// The arguments of every `instruction`, in order.
fn all<'a>(instructions: &'a [Instruction], instruction: &str) -> Vec<&'a str> {
    instructions.iter().filter(|(i, _)| i == instruction).map(|(_, a)| a.as_str()).collect()
}

/// `rust-version` of Cargo.toml, as (major, minor).
fn rust_version() -> (u32, u32) {
    let manifest = read(&support::root().join("Cargo.toml"));
    let version = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version"))
        .and_then(|l| l.split('"').nth(1))
        .expect("rust-version in Cargo.toml");
    major_minor(version).expect("rust-version is MAJOR.MINOR")
}

fn major_minor(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// Every file `include_str!`/`include_bytes!` pulls into the binary, as a
/// path relative to the crate root.
fn included_files() -> Vec<PathBuf> {
    let root = support::root().canonicalize().expect("crate root");
    let mut files = Vec::new();
    let mut pending = vec![root.join("src")];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).expect("src dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = read(&path);
                for macro_call in ["include_str!(\"", "include_bytes!(\""] {
                    for (at, _) in text.match_indices(macro_call) {
                        let rest = &text[at + macro_call.len()..];
                        let Some(end) = rest.find('"') else { continue };
                        let target = path.parent().expect("parent").join(&rest[..end]);
                        let target = target.canonicalize().unwrap_or(target);
                        let inside = target.strip_prefix(&root).expect("inside the crate");
                        files.push(inside.to_owned());
                    }
                }
            }
        }
    }
    files
}

#[test]
fn dockerfile_builds_the_binary_the_daemonset_and_the_unit_run() {
    let instructions = dockerfile();
    let froms = all(&instructions, "FROM");
    assert!(froms.len() >= 2, "multi-stage: {froms:?}");

    // Builder: a Rust at least as new as rust-version, on the runtime's Debian.
    let builder = froms[0];
    let tag = builder
        .strip_prefix("rust:")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("the first stage builds with the rust image: {builder}"));
    let version = major_minor(tag.split('-').next().expect("version"))
        .unwrap_or_else(|| panic!("rust:{tag}: pin MAJOR.MINOR"));
    assert!(version >= rust_version(), "rust:{tag} is older than Cargo.toml's rust-version");
    assert!(tag.contains("bookworm"), "rust:{tag}: build on Debian 12, as the runtime image");
    let runtime = froms.last().expect("a runtime stage");
    assert!(runtime.starts_with("gcr.io/distroless/cc-debian12"), "runtime: {runtime}");
    let runs = all(&instructions, "RUN");
    assert!(
        runs.iter().any(|r| r.contains("cargo build --release --locked")),
        "build the reviewed Cargo.lock: {runs:?}"
    );

    assert_build_context_complete(&instructions);
    let last_from = instructions.iter().rposition(|(i, _)| i == "FROM").expect("FROM");
    assert_runtime_stage(&instructions[last_from..]);
}

/// Everything the build reads is copied in, and let through the
/// Dockerfile's ignore file: the manifest and lock, the source, the
/// benches Cargo.toml names, and files the source includes.
fn assert_build_context_complete(instructions: &[Instruction]) {
    let copied: Vec<&str> = all(instructions, "COPY")
        .into_iter()
        .filter(|a| !a.starts_with("--from"))
        .flat_map(|a| {
            let words: Vec<&str> = a.split_whitespace().collect();
            words[..words.len() - 1].to_vec()
        })
        .collect();
    let ignore = read(&docker("Dockerfile.dockerignore"));
    let allowed: Vec<&str> = ignore.lines().filter_map(|l| l.trim().strip_prefix('!')).collect();
    let mut needed: Vec<PathBuf> =
        ["Cargo.toml", "Cargo.lock", "src/lib.rs", "src/main.rs"].map(PathBuf::from).to_vec();
    if read(&support::root().join("Cargo.toml")).contains("[[bench]]") {
        needed.push(PathBuf::from("benches"));
    }
    needed.extend(included_files());
    for path in &needed {
        assert!(
            copied.iter().any(|c| path.starts_with(c.trim_end_matches('/'))),
            "the build stage does not COPY {} (COPY sources: {copied:?})",
            path.display()
        );
        assert!(
            allowed.iter().any(|a| path.starts_with(a.trim_end_matches('/'))),
            "docker/Dockerfile.dockerignore keeps {} out of the context",
            path.display()
        );
    }
}

/// The runtime stage: the binary where the unit expects it, a non-root
/// default user, `svcproxy run` as the entrypoint the DaemonSet's args
/// follow, and default args `run` knows.
fn assert_runtime_stage(stage: &[Instruction]) {
    assert!(
        all(stage, "COPY").iter().any(|a| a.starts_with("--from=") && a.ends_with(INSTALLED_BIN)),
        "the runtime stage installs {INSTALLED_BIN}"
    );
    let user = *all(stage, "USER").last().expect("a USER in the runtime stage");
    assert!(!matches!(user.split(':').next(), Some("0" | "root")), "USER {user}");
    let entrypoint = all(stage, "ENTRYPOINT");
    let entrypoint: Vec<String> =
        serde_json::from_str(entrypoint.first().expect("ENTRYPOINT")).expect("exec form");
    assert_eq!(entrypoint, [INSTALLED_BIN, "run"]);
    if let Some(cmd) = all(stage, "CMD").last() {
        let cmd: Vec<String> = serde_json::from_str(cmd).expect("CMD in exec form");
        assert_run_knows(cmd.iter().map(String::as_str), "CMD");
    }
}

/// `key -> values` of the unit's `[Service]` section.
fn unit_service_section() -> BTreeMap<String, Vec<String>> {
    let text = read(&docker("svcproxy.service"));
    let mut section = "";
    let mut keys: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') {
            section = line;
        } else if section == "[Service]" {
            let (key, value) = line.split_once('=').expect("KEY=VALUE");
            keys.entry(key.trim().to_owned()).or_default().push(value.trim().to_owned());
        }
    }
    keys
}

#[test]
fn systemd_unit_runs_drains_and_reloads_svcproxy() {
    let unit = unit_service_section();
    let one = |key: &str| match unit.get(key).map(Vec::as_slice) {
        Some([value]) => value.clone(),
        other => panic!("[Service] {key}: expected one value, found {other:?}"),
    };
    assert_eq!(one("Type"), "exec");
    let exec_start = one("ExecStart");
    let words: Vec<&str> = exec_start.split_whitespace().collect();
    assert_eq!(words[..2], [INSTALLED_BIN, "run"], "ExecStart={exec_start}");
    assert!(words.contains(&"--manifests"), "ExecStart={exec_start}");
    assert_run_knows(words.iter().copied(), "ExecStart");
    assert_eq!(one("ExecReload"), "/bin/kill -HUP $MAINPID", "SIGHUP re-reads every source");
    assert_eq!(one("KillSignal"), "SIGTERM");
    let stop: u64 = one("TimeoutStopSec").parse().expect("TimeoutStopSec in seconds");
    assert!(Duration::from_secs(stop) > DEFAULT_DRAIN_TIMEOUT, "TimeoutStopSec={stop}");
    assert_eq!(one("Restart"), "on-failure");
    for (key, value) in [
        ("DynamicUser", "yes"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("LimitNOFILE", "1048576"),
        ("AmbientCapabilities", "CAP_NET_BIND_SERVICE"),
    ] {
        assert_eq!(one(key), value, "{key}");
    }
    assert_eq!(one("CapabilityBoundingSet"), one("AmbientCapabilities"));
    verify_unit();
}

/// `systemd-analyze verify`, which also checks that ExecStart's program
/// exists: on a copy pointing at the build.
fn verify_unit() {
    let analyze = tools::systemd_analyze();
    let dir = tempfile::tempdir().expect("temp dir");
    let copy = dir.path().join("svcproxy.service");
    let text = read(&docker("svcproxy.service"))
        .replace(INSTALLED_BIN, support::bin().to_str().expect("UTF-8 path"));
    fs::write(&copy, text).expect("write the unit");
    let output = run_tool(Command::new(analyze).args(["verify", "--man=no"]).arg(&copy), "");
    // It warns (unknown keys, bad values) on stderr and still exits 0.
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify {}",
        shown(&output)
    );
}
