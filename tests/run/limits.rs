//! `svcproxy run` out of file descriptors: accepting pauses with backoff
//! (no spinning, no panic) and resumes once descriptors are free again.

use std::net::TcpStream;
use std::process::Command;
use std::thread;
use std::time::Duration;

use crate::support::endpoint::Endpoint;
use crate::support::manifests::{pod_at, simple_service};
use crate::support::net::{self, addr, eventually, fresh_ip};
use crate::support::proxy::Proxy;

/// User plus system CPU time of `pid` so far, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) start after ')'.
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[test]
fn running_out_of_descriptors_pauses_accepting_without_spinning_then_recovers() {
    let endpoint = Endpoint::echo(fresh_ip());
    let cluster_ip = fresh_ip();
    let frontend = addr(cluster_ip, 8080);
    let yaml =
        simple_service("fds", cluster_ip, 8080, true) + &pod_at("fds-0", "fds", endpoint.addr);
    let (mut proxy, ()) = Proxy::serving(&yaml, &[], || net::echo(frontend, b"ready"));
    // Few descriptors left: each proxied connection needs two.
    let status = Command::new("prlimit")
        .args(["--pid", &proxy.pid().to_string(), "--nofile=40:40"])
        .status()
        .expect("prlimit");
    assert!(status.success(), "prlimit failed");
    let clients: Vec<TcpStream> = (0..80).filter_map(|_| net::connect(frontend).ok()).collect();
    assert!(clients.len() >= 40, "the kernel queues connections the proxy cannot accept yet");
    eventually("the proxy runs out of descriptors", Duration::from_secs(5), || {
        if proxy.log().contains("out of file descriptors") {
            Ok(())
        } else {
            Err(std::io::Error::other("not yet"))
        }
    });
    let before = cpu_ticks(proxy.pid());
    thread::sleep(Duration::from_secs(1));
    let spent = cpu_ticks(proxy.pid()) - before;
    // 100 ticks per second: a spinning accept loop would use ~100.
    assert!(spent < 30, "the proxy used {spent} ticks in 1 s while out of descriptors");
    proxy.assert_running();
    drop(clients);
    eventually("serving again once descriptors are free", Duration::from_secs(10), || {
        net::echo(frontend, b"again")
    });
    proxy.assert_running();
}
