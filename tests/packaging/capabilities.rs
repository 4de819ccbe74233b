//! The one capability the packaging grants (CAP_NET_BIND_SERVICE) is what
//! svcproxy needs: as an unprivileged user holding only it, svcproxy serves
//! port 80 and binds a ClusterIP that is not a local address (IP_FREEBIND
//! needs no CAP_NET_ADMIN); without it, port 80 cannot be bound.
//!
//! Needs setpriv (the test fails without it) and root, to change user:
//! not run as root, or when the unprivileged user cannot run the binary
//! (a target dir under a private home), it is skipped with a `note:`.

use std::fs::{self, File};
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};

use crate::support::endpoint::Endpoint;
use crate::support::manifests::{endpoint_slice, ipv4, simple_service};
use crate::support::net;
use crate::support::proxy::READY;
use crate::support::tools;
use crate::{read, support};

/// A Service's ClusterIP that is not a local address (TEST-NET-2,
/// RFC 5737): only ever bound, never sent to.
const NON_LOCAL_CLUSTER_IP: &str = "198.51.100.7";

/// The unprivileged user (`nobody`).
const UID: &str = "65534";

/// `svcproxy run` as uid/gid 65534 under setpriv, with exactly the
/// capabilities given (ambient, as the systemd unit grants them) and
/// no_new_privs; killed when dropped.
struct Unprivileged {
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

// === impl Unprivileged ===

impl Unprivileged {
    /// `caps`: setpriv's names, comma-separated (`net_bind_service`), or
    /// empty for none.
    fn start(setpriv: &Path, manifests: &str, caps: &str) -> Unprivileged {
        let dir = tempfile::tempdir().expect("temp dir");
        // Readable by the unprivileged user.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        let file = dir.path().join("services.yaml");
        fs::write(&file, manifests).expect("manifests");
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).expect("chmod");
        let log = dir.path().join("svcproxy.log");
        let out = File::create(&log).expect("log");
        let err = out.try_clone().expect("log");
        let set = if caps.is_empty() { "-all".to_owned() } else { format!("-all,+{caps}") };
        let mut cmd = as_nobody(setpriv);
        cmd.arg("--no-new-privs")
            .arg(format!("--inh-caps={set}"))
            .arg(format!("--ambient-caps={set}"))
            .arg(format!("--bounding-set={set}"))
            .arg("--")
            .arg(support::bin())
            .arg("run")
            .arg("--manifests")
            .arg(dir.path())
            .args(["--metrics-bind-address=127.0.0.1:0", "--healthz-bind-address=127.0.0.1:0"])
            .current_dir(dir.path())
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        Unprivileged { child, log, _dir: dir }
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("svcproxy exited ({status})\n{}", self.log());
        }
    }

    /// Waits until some log line holds every one of `parts`.
    fn wait_log(&mut self, parts: &[&str]) {
        let until = Instant::now() + READY;
        loop {
            if self.log().lines().any(|l| parts.iter().all(|p| l.contains(p))) {
                return;
            }
            self.assert_running();
            assert!(Instant::now() < until, "no log line with {parts:?}\n{}", self.log());
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Unprivileged {
    fn drop(&mut self) {
        // Our own child, by its handle (setpriv execs svcproxy in place).
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!("--- svcproxy log:\n{}", self.log());
        }
    }
}

/// setpriv switching to uid/gid [`UID`] with no supplementary groups.
fn as_nobody(setpriv: &Path) -> Command {
    let mut cmd = Command::new(setpriv);
    cmd.arg(format!("--reuid={UID}")).arg(format!("--regid={UID}")).arg("--clear-groups");
    cmd
}

/// True when this process runs as root (it can then drop to another user).
fn is_root() -> bool {
    read(Path::new("/proc/self/status"))
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().next().map(|uid| uid == "0"))
        .unwrap_or(false)
}

/// setpriv (failing the test when it is not installed), when this test
/// can use it: root, and the binary runnable by the unprivileged user (a
/// target dir under a private home may not be).
fn setpriv() -> Option<PathBuf> {
    let setpriv = tools::setpriv();
    if !is_root() {
        eprintln!("note: not root, cannot change user: capabilities not exercised");
        return None;
    }
    let probe = as_nobody(&setpriv)
        .arg("--")
        .arg(support::bin())
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .expect("run setpriv");
    if !probe.status.success() {
        let why = String::from_utf8_lossy(&probe.stderr);
        let bin = support::bin().display();
        eprintln!("note: uid {UID} cannot run {bin} ({}): capabilities not exercised", why.trim());
        return None;
    }
    Some(setpriv)
}

#[test]
fn cap_net_bind_service_alone_serves_low_ports_and_non_local_cluster_ips() {
    let Some(setpriv) = setpriv() else { return };
    let pod = Endpoint::name(net::fresh_ip(), "hello");
    let local_ip = net::fresh_ip();
    let slice = |service: &str| {
        let name = format!("{service}-1");
        endpoint_slice(&name, service, "tcp", pod.port(), &[ipv4(pod.addr)])
    };
    let manifests = simple_service("low", local_ip, 80, false)
        + &slice("low")
        + &format!(
            "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: far\n  namespace: default\n\
             spec:\n  clusterIP: {NON_LOCAL_CLUSTER_IP}\n  ports:\n    - name: tcp\n      \
             port: 80\n      targetPort: tcp\n"
        )
        + &slice("far");

    let mut granted = Unprivileged::start(&setpriv, &manifests, "net_bind_service");
    let frontend = net::addr(local_ip, 80);
    let until = Instant::now() + READY;
    loop {
        match net::fetch(frontend) {
            Ok(answer) if answer == "hello" => break,
            result if Instant::now() >= until => {
                panic!("{frontend} not served: {result:?}\n{}", granted.log())
            }
            _ => thread::sleep(Duration::from_millis(20)),
        }
    }
    // The non-local ClusterIP's port is taken: svcproxy holds it.
    let far: SocketAddr = format!("{NON_LOCAL_CLUSTER_IP}:80").parse().expect("address");
    while !held(far) {
        granted.assert_running();
        assert!(Instant::now() < until, "{far} not bound after {READY:?}\n{}", granted.log());
        thread::sleep(Duration::from_millis(20));
    }
    drop(granted);

    // The control: without the capability, port 80 is refused.
    let mut bare = Unprivileged::start(&setpriv, &manifests, "");
    bare.wait_log(&[&frontend.to_string(), "ermission denied"]);
}

/// True when `addr` is bound by some socket: binding it (with IP_FREEBIND,
/// as it is not local) fails with EADDRINUSE.
fn held(addr: SocketAddr) -> bool {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    socket.set_freebind_v4(true).expect("IP_FREEBIND");
    match socket.bind(&addr.into()) {
        Ok(()) => false,
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => true,
        Err(e) => panic!("bind {addr}: {e}"),
    }
}
