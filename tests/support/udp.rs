//! UDP pods and clients on loopback: `dnsmasq` as a DNS pod (Debian
//! `dnsmasq-base`), `dig` as its resolver (Debian `bind9-dnsutils`), and a
//! plain UDP pod that echoes datagrams and tells its name. Every pod is
//! stopped when its guard drops; every wait has a deadline.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::net::addr;
use super::tools::required;

/// What a datagram asks a [`UdpPod`] for its name.
pub const WHO: &[u8] = b"who?";
/// How long a client waits for one reply.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(2);

/// A `dnsmasq` answering `NAME.svc.test` with `answer` and, when asked,
/// `big.svc.test` with a TXT record of `txt_bytes` bytes; killed on drop.
pub struct DnsPod {
    child: Child,
    pub addr: SocketAddr,
}

/// A UDP pod: answers [`WHO`] with its name, echoes anything else.
pub struct UdpPod {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

// === impl DnsPod ===

impl DnsPod {
    /// Starts dnsmasq on `ip:port` and waits until it answers.
    pub fn start(ip: Ipv4Addr, port: u16, answer: Ipv4Addr, txt_bytes: usize) -> DnsPod {
        let dnsmasq = required("dnsmasq", "dnsmasq-base");
        let mut cmd = Command::new(dnsmasq);
        cmd.args(["--keep-in-foreground", "--no-resolv", "--no-hosts", "--bind-interfaces"])
            .args(["--conf-file=/dev/null", "--pid-file=", "--user=", "--edns-packet-max=16384"])
            .arg(format!("--port={port}"))
            .arg(format!("--listen-address={ip}"))
            .arg(format!("--address=/svc.test/{answer}"));
        if txt_bytes > 0 {
            cmd.arg(txt_record("big.svc.test", txt_bytes));
        }
        let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("dnsmasq");
        let pod = DnsPod { child, addr: addr(ip, port) };
        let until = Instant::now() + Duration::from_secs(10);
        while dig(pod.addr, "a.svc.test", &[]).is_err() {
            assert!(Instant::now() < until, "dnsmasq on {} does not answer", pod.addr);
            thread::sleep(Duration::from_millis(20));
        }
        pod
    }
}

impl Drop for DnsPod {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `--txt-record=NAME,"…","…"`: strings of 200 bytes up to `bytes`.
fn txt_record(name: &str, bytes: usize) -> String {
    let strings: Vec<String> = (0..bytes.div_ceil(200))
        .map(|i| {
            let len = (bytes - i * 200).min(200);
            format!("\"{}\"", char::from(b'a' + (i % 26) as u8).to_string().repeat(len))
        })
        .collect();
    format!("--txt-record={name},{}", strings.join(","))
}

/// `dig @to -p PORT name +short +tries=1 +time=2 extra…`: its answer
/// lines, or an error when dig failed or answered nothing.
pub fn dig(to: SocketAddr, name: &str, extra: &[&str]) -> io::Result<String> {
    let dig = required("dig", "bind9-dnsutils");
    let out = Command::new(dig)
        .arg(format!("@{}", to.ip()))
        .args(["-p", &to.port().to_string(), name, "+short", "+tries=1", "+time=2"])
        .args(extra)
        .stdin(Stdio::null())
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() || text.is_empty() || text.starts_with(";;") {
        return Err(io::Error::other(format!("dig {name} @{to}: {:?} {text}", out.status)));
    }
    Ok(text)
}

// === impl UdpPod ===

impl UdpPod {
    /// A pod named `name` on `ip:port`, serving at once.
    pub fn start(ip: Ipv4Addr, port: u16, name: &str) -> UdpPod {
        let socket = UdpSocket::bind(addr(ip, port)).expect("bind the UDP pod");
        socket.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (name, stopping) = (name.as_bytes().to_vec(), stop.clone());
        let thread = thread::spawn(move || {
            let mut buf = vec![0; 65_536];
            while !stopping.load(Ordering::Relaxed) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else { continue };
                let reply = if &buf[..n] == WHO { &name[..] } else { &buf[..n] };
                let _ = socket.send_to(reply, from);
            }
        });
        UdpPod { addr: addr(ip, port), stop, thread: Some(thread) }
    }

    /// Stops serving and closes the socket: datagrams to it now draw ICMP
    /// port unreachable.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for UdpPod {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A client socket on `ip` (an ephemeral port), with the reply timeout.
pub fn client(ip: Ipv4Addr) -> UdpSocket {
    let socket = UdpSocket::bind(addr(ip, 0)).expect("bind a client");
    socket.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
    socket
}

/// Sends `data` to `to` and returns the reply and where it came from.
pub fn exchange(
    socket: &UdpSocket,
    to: SocketAddr,
    data: &[u8],
) -> io::Result<(Vec<u8>, SocketAddr)> {
    socket.send_to(data, to)?;
    let mut buf = vec![0; 65_536];
    let (n, from) = socket.recv_from(&mut buf)?;
    buf.truncate(n);
    Ok((buf, from))
}

/// The name of the pod that answers [`WHO`] from `socket` through `to`.
pub fn who(socket: &UdpSocket, to: SocketAddr) -> io::Result<String> {
    let (name, _) = exchange(socket, to, WHO)?;
    Ok(String::from_utf8_lossy(&name).into_owned())
}
