//! Hot swap (DESIGN §4), end to end: the real binary watching its
//! manifests while clients use it. A change reaches new connections within
//! a second; a bad change keeps what works; live connections are never
//! re-routed, cut or reset, even when their Service or endpoint goes; a
//! frontend that stays keeps its socket; old Snapshots are not kept alive.
//!
//! Black-box: every endpoint is a `Named` echo server on a loopback address
//! of its own, which greets each connection with its name so a client
//! knows where it landed and still checks every byte of the echo.
//!
//! These tests publish generations back to back, so their proxies run with
//! `--min-sync-period 0s` ([`BACK_TO_BACK`]); the pacing of the default
//! period has a test of its own.

use std::collections::VecDeque;
use std::io;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::support::manifests::{weighty_service, write_by_rename, write_in_place};
use crate::support::net::{addr, fresh_ip, refuses};
use crate::support::proxy::Proxy;
use crate::support::tagged::{
    Conn, Named, PORT, assert_all_reach, service_of, visit, visit_expecting, wait_reaching,
};

/// The promise: a change reaches new connections within this.
const APPLY: Duration = Duration::from_secs(1);
/// Bound on the waits that are not the point of a test.
const WAIT: Duration = Duration::from_secs(5);
/// Every change rebuilt at once, however close to the last.
const BACK_TO_BACK: &[&str] = &["--min-sync-period", "0s"];
/// `--min-sync-period` by default.
const MIN_SYNC_PERIOD: Duration = Duration::from_secs(1);
const LAST_SYNC: &str = "kubeproxy_sync_proxy_rules_last_timestamp_seconds";

const GENERATION: &str = "svcproxy_routing_generation";
const RELOADS_OK: &str = "svcproxy_config_reloads_total{result=\"success\"}";
const RELOADS_FAILED: &str = "svcproxy_config_reloads_total{result=\"failure\"}";
const INVALID: &str = "svcproxy_config_invalid_objects";

/// The soak and the memory test each keep both CPUs of a small runner
/// busy for seconds: they take turns, so neither skews the other's figures.
static HEAVY: Mutex<()> = Mutex::new(());

#[test]
fn fifty_rewrites_under_load_drop_nothing_and_the_last_applies_within_a_second() {
    const STREAMS: usize = 20;
    const REWRITES: usize = 50;
    // Endpoint sets before the last rewrite use soak-0..3; the last adds
    // soak-4, so reaching it shows the final set is in effect.
    const SETS: [&[usize]; 8] =
        [&[0, 1], &[1, 2, 3], &[0], &[2], &[0, 3], &[1, 3], &[0, 1, 2, 3], &[3]];
    const FINAL: &[usize] = &[3, 4];
    let _turn = HEAVY.lock();
    let ip = fresh_ip();
    let frontend = addr(ip, PORT);
    let pool: Vec<Named> = (0..5).map(|i| Named::echo(&format!("soak-{i}"))).collect();
    let extras: Vec<(Ipv4Addr, Named)> =
        (0..3).map(|k| (fresh_ip(), Named::echo(&format!("extra-{k}")))).collect();
    // Rewrite i: an endpoint set, and extra Service k present when bit k
    // of i is set, so other Services keep appearing and disappearing.
    let manifest = |i: usize| {
        let set = if i == REWRITES { FINAL } else { SETS[i % SETS.len()] };
        let members: Vec<&Named> = set.iter().map(|&k| &pool[k]).collect();
        let mut yaml = service_of("soak", ip, &members);
        for (k, (extra_ip, extra)) in extras.iter().enumerate() {
            if (i >> k) & 1 == 1 {
                yaml.push_str(&service_of(&format!("extra-{k}"), *extra_ip, &[extra]));
            }
        }
        yaml
    };
    let (mut proxy, _) = Proxy::serving(&manifest(0), BACK_TO_BACK, || visit(frontend));
    let generation = proxy.metric(GENERATION);

    let stop = Arc::new(AtomicBool::new(false));
    let streams: Vec<_> = (0..STREAMS)
        .map(|i| {
            let mut conn = Conn::open(frontend).unwrap_or_else(|e| panic!("stream {i}: {e}"));
            conn.exchange().unwrap_or_else(|e| panic!("stream {i}: {e}"));
            let stop = Arc::clone(&stop);
            thread::spawn(move || -> Result<u64, String> {
                let fail = |conn: &Conn, e: io::Error| {
                    format!(
                        "stream {i} (to {}) after {} exchanges: {e}",
                        conn.name,
                        conn.exchanges()
                    )
                };
                while !stop.load(Ordering::SeqCst) {
                    conn.exchange().map_err(|e| fail(&conn, e))?;
                    thread::sleep(Duration::from_millis(10));
                }
                conn.exchange().map_err(|e| fail(&conn, e))?;
                let exchanges = conn.exchanges();
                let name = conn.name.clone();
                conn.finish().map_err(|e| format!("stream {i} (to {name}) at its end: {e}"))?;
                Ok(exchanges)
            })
        })
        .collect();
    let flows: Vec<_> = (0..2)
        .map(|_| {
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                let (mut ok, mut failures) = (0u64, Vec::new());
                while !stop.load(Ordering::SeqCst) {
                    match visit(frontend) {
                        Ok(_) => ok += 1,
                        Err(e) => failures.push(e.to_string()),
                    }
                    thread::sleep(Duration::from_millis(2));
                }
                (ok, failures)
            })
        })
        .collect();

    let path = proxy.manifest();
    let started = Instant::now();
    for i in 1..=REWRITES {
        thread::sleep(Duration::from_millis(60));
        if i % 2 == 0 {
            write_by_rename(&path, &manifest(i));
        } else {
            write_in_place(&path, &manifest(i));
        }
    }
    let rewrites_took = started.elapsed();
    let took = wait_reaching(frontend, "soak-4", APPLY * 3);
    assert!(took <= APPLY, "the last rewrite reached new connections after {took:?}");
    assert_all_reach(frontend, &["soak-3", "soak-4"], 20);

    stop.store(true, Ordering::SeqCst);
    let mut short = 0;
    for flow in flows {
        let (ok, failures) = flow.join().expect("flow thread");
        assert!(failures.is_empty(), "{} short connections failed: {failures:#?}", failures.len());
        short += ok;
    }
    for (i, stream) in streams.into_iter().enumerate() {
        let exchanges = stream.join().expect("stream thread").unwrap_or_else(|e| panic!("{e}"));
        assert!(exchanges >= 20, "stream {i} only made {exchanges} exchanges");
    }
    let published = proxy.metric(GENERATION) - generation;
    assert!(
        published >= 10.0,
        "only {published} generations for {REWRITES} rewrites\n{}",
        proxy.log()
    );
    eprintln!(
        "soak: {REWRITES} rewrites in {rewrites_took:?}, {published} generations, {short} short \
         connections, last rewrite in effect after {took:?}"
    );
}

/// Serves `web` from `a`, writes `broken`, and checks: routing as it was,
/// the file named in a WARN line, the failure counted; then a valid
/// rewrite to `b` applies and counts as a success.
fn a_broken_rewrite_keeps_routing(broken: impl FnOnce(Ipv4Addr, &Named, &Named) -> String) {
    let ip = fresh_ip();
    let frontend = addr(ip, PORT);
    let (a, b) = (Named::echo("a"), Named::echo("b"));
    let (mut proxy, ()) = Proxy::serving(&service_of("web", ip, &[&a]), BACK_TO_BACK, || {
        visit_expecting(frontend, "a")
    });
    let path = proxy.manifest();
    let file = path.display().to_string();
    assert!(!proxy.warned(&[&file]), "a valid manifest logs no fault\n{}", proxy.log());
    let (failed, ok) = (proxy.metric(RELOADS_FAILED), proxy.metric(RELOADS_OK));

    write_in_place(&path, &broken(ip, &a, &b));
    proxy.wait_metric(RELOADS_FAILED, WAIT, |v| v > failed);
    assert_all_reach(frontend, &["a"], 10);
    proxy.assert_warned(&[&file]);

    write_by_rename(&path, &service_of("web", ip, &[&b]));
    let took = wait_reaching(frontend, "b", WAIT);
    assert!(took <= APPLY, "the repaired manifest applied after {took:?}");
    proxy.wait_metric(RELOADS_OK, WAIT, |v| v > ok);
    assert_all_reach(frontend, &["b"], 10);
}

#[test]
fn an_unparseable_rewrite_keeps_the_whole_file_as_it_was() {
    // Valid documents moving `web` to `b`, then a syntax error: the file
    // no longer parses, so none of it applies.
    a_broken_rewrite_keeps_routing(|ip, _, b| {
        format!("{}---\nkind: [unclosed\n", service_of("web", ip, &[b]))
    });
}

#[test]
fn a_rewrite_with_port_zero_keeps_routing_as_it_was() {
    a_broken_rewrite_keeps_routing(|ip, a, _| {
        service_of("web", ip, &[a]).replace("\n      port: 8080\n", "\n      port: 0\n")
    });
}

#[test]
fn a_rewrite_with_a_port_that_is_not_a_number_keeps_routing_as_it_was() {
    a_broken_rewrite_keeps_routing(|ip, a, _| {
        service_of("web", ip, &[a]).replace("\n      port: 8080\n", "\n      port: eighty\n")
    });
}

#[test]
fn an_object_turned_invalid_keeps_its_last_good_version_while_its_neighbour_updates() {
    let (web_ip, api_ip) = (fresh_ip(), fresh_ip());
    let (web, api) = (addr(web_ip, PORT), addr(api_ip, PORT));
    let (a, c, d) = (Named::echo("a"), Named::echo("c"), Named::echo("d"));
    let good = service_of("web", web_ip, &[&a]) + &service_of("api", api_ip, &[&c]);
    let (mut proxy, ()) = Proxy::serving(&good, BACK_TO_BACK, || {
        visit_expecting(web, "a")?;
        visit_expecting(api, "c")
    });

    let broken = service_of("web", web_ip, &[&a])
        .replace("\n      port: 8080\n", "\n      port: eighty\n")
        + &service_of("api", api_ip, &[&d]);
    write_by_rename(&proxy.manifest(), &broken);
    let took = wait_reaching(api, "d", WAIT);
    assert!(took <= APPLY, "the valid neighbour's change applied after {took:?}");
    assert_all_reach(api, &["d"], 10);
    assert_all_reach(web, &["a"], 10);
    proxy.wait_metric(INVALID, WAIT, |v| v == 1.0);
    let file = proxy.manifest().display().to_string();
    proxy.assert_warned(&[&file, "default/web", "spec.ports[0].port"]);
}

#[test]
fn an_unknown_field_is_logged_once_and_its_object_served() {
    const FIELD: &str = "unknown field \"spec.trafficShaping\"";
    let (web_ip, api_ip) = (fresh_ip(), fresh_ip());
    let (web, api) = (addr(web_ip, PORT), addr(api_ip, PORT));
    let (a, c) = (Named::echo("a"), Named::echo("c"));
    // A field newer than the Kubernetes version svcproxy knows.
    let newer = service_of("web", web_ip, &[&a]).replacen(
        "spec:\n",
        "spec:\n  trafficShaping:\n    burst: 10\n",
        1,
    );
    let (mut proxy, ()) = Proxy::serving(&newer, BACK_TO_BACK, || visit_expecting(web, "a"));
    let file = proxy.manifest().display().to_string();
    proxy.assert_warned(&[&file, "default/web", FIELD, "svcproxy knows Kubernetes 1.33's Service"]);

    // The file parsed again (a neighbour added), then a re-read: the same
    // field of the same object is not logged again.
    write_by_rename(&proxy.manifest(), &(newer + &service_of("api", api_ip, &[&c])));
    proxy.wait_ready(|| visit_expecting(api, "c"));
    let generation = proxy.metric(GENERATION);
    proxy.hup_to_generation(generation as u64 + 1);
    assert_all_reach(web, &["a"], 10);
    let log = proxy.log();
    let logged = log.lines().filter(|l| l.contains("WARN") && l.contains(FIELD)).count();
    assert_eq!(logged, 1, "logged once per object\n{log}");
}

/// The documents of `yaml` as the items of one `kind: List`.
fn as_list(yaml: &str) -> String {
    let mut list = String::from("apiVersion: v1\nkind: List\nitems:\n");
    for doc in yaml.split("---\n").filter(|d| !d.trim().is_empty()) {
        for (i, line) in doc.lines().enumerate() {
            list.push_str(if i == 0 { "- " } else { "  " });
            list.push_str(line);
            list.push('\n');
        }
    }
    list
}

#[test]
fn several_broken_items_of_a_list_each_keep_their_last_good_version() {
    let (ip1, ip2) = (fresh_ip(), fresh_ip());
    let (a, b) = (Named::echo("a"), Named::echo("b"));
    let good = as_list(&(service_of("one", ip1, &[&a]) + &service_of("two", ip2, &[&b])));
    let (mut proxy, ()) =
        Proxy::serving(&good, BACK_TO_BACK, || visit_expecting(addr(ip2, PORT), "b"));
    let failed = proxy.metric(RELOADS_FAILED);
    // Both Services' ports stop being numbers: two decode errors, one List.
    let broken = good.replace(&format!("port: {PORT}"), "port: eighty");
    assert_ne!(broken, good, "the rewrite breaks the ports");
    write_in_place(&proxy.manifest(), &broken);
    proxy.wait_metric(RELOADS_FAILED, WAIT, |v| v > failed);
    assert_all_reach(addr(ip1, PORT), &["a"], 5);
    assert_all_reach(addr(ip2, PORT), &["b"], 5);
}

#[test]
fn a_file_argument_ignores_changes_to_other_files_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let ip = fresh_ip();
    let a = Named::echo("a");
    let file = dir.path().join("svc.yaml");
    std::fs::write(&file, service_of("lone", ip, &[&a])).unwrap();
    let mut proxy = Proxy::start_on(dir, &file, BACK_TO_BACK);
    proxy.wait_ready(|| visit_expecting(addr(ip, PORT), "a"));
    let generation = proxy.metric(GENERATION);
    let noise = file.with_file_name("unrelated.log");
    // Spaced beyond the watcher's debounce, so each would be a rebuild.
    for i in 0..5 {
        std::fs::write(&noise, format!("line {i}\n")).unwrap();
        thread::sleep(Duration::from_millis(200));
    }
    // The file itself changing is still seen (proof the watch is alive).
    let b = Named::echo("b");
    write_by_rename(&file, &service_of("lone", ip, &[&b]));
    wait_reaching(addr(ip, PORT), "b", WAIT);
    let after = proxy.metric(GENERATION);
    assert!(after - generation <= 2.0, "unrelated writes rebuilt: {generation} -> {after}");
}

#[test]
fn a_removed_services_live_connection_keeps_working() {
    let (web_ip, api_ip) = (fresh_ip(), fresh_ip());
    let (web, api) = (addr(web_ip, PORT), addr(api_ip, PORT));
    let (a, c) = (Named::echo("a"), Named::echo("c"));
    let both = service_of("web", web_ip, &[&a]) + &service_of("api", api_ip, &[&c]);
    let (proxy, ()) = Proxy::serving(&both, BACK_TO_BACK, || {
        visit_expecting(web, "a")?;
        visit_expecting(api, "c")
    });
    let mut live = Conn::open(web).expect("connect to web");
    live.exchange().expect("first exchange");

    write_by_rename(&proxy.manifest(), &service_of("api", api_ip, &[&c]));
    let start = Instant::now();
    while !refuses(web) {
        assert!(
            start.elapsed() < APPLY,
            "web's frontend still accepts {APPLY:?} after its removal"
        );
        thread::sleep(Duration::from_millis(5));
    }
    for i in 0..20 {
        live.exchange().unwrap_or_else(|e| panic!("exchange {i} after web was removed: {e}"));
    }
    live.finish().expect("the live connection ends cleanly");
    assert_all_reach(api, &["c"], 5);
}

#[test]
fn a_removed_endpoints_live_connection_keeps_working() {
    let ip = fresh_ip();
    let frontend = addr(ip, PORT);
    let (a, b) = (Named::echo("a"), Named::echo("b"));
    let (proxy, ()) = Proxy::serving(&service_of("web", ip, &[&a]), BACK_TO_BACK, || {
        visit_expecting(frontend, "a")
    });
    let mut live = Conn::open(frontend).expect("connect");
    assert_eq!(live.name, "a");
    live.exchange().expect("first exchange");

    write_in_place(&proxy.manifest(), &service_of("web", ip, &[&b]));
    let took = wait_reaching(frontend, "b", WAIT);
    assert!(took <= APPLY, "the new endpoint set applied after {took:?}");
    for i in 0..20 {
        live.exchange().unwrap_or_else(|e| panic!("exchange {i} after a was removed: {e}"));
    }
    live.finish().expect("the live connection ends cleanly");
}

#[test]
fn a_configmap_data_symlink_swap_is_picked_up() {
    use std::os::unix::fs::symlink;
    let ip = fresh_ip();
    let frontend = addr(ip, PORT);
    let (a, b) = (Named::echo("a"), Named::echo("b"));
    // What the kubelet mounts: a timestamped directory, `..data` pointing
    // at it, and each key a symlink through `..data`.
    let root = tempfile::tempdir().expect("temp dir");
    let mount = root.path().join("manifests");
    let version = |name: &str, yaml: &str| {
        std::fs::create_dir_all(mount.join(name)).expect("version dir");
        std::fs::write(mount.join(name).join("services.yaml"), yaml).expect("write");
    };
    let (first, second) = ("..2026_01_01_00_00_00.1", "..2026_01_01_00_00_01.2");
    version(first, &service_of("web", ip, &[&a]));
    symlink(first, mount.join("..data")).expect("..data");
    symlink(Path::new("..data").join("services.yaml"), mount.join("services.yaml")).expect("key");
    let mut proxy = Proxy::start_on(root, &mount, BACK_TO_BACK);
    proxy.wait_ready(|| visit_expecting(frontend, "a"));

    // The kubelet's update: the new version, `..data_tmp` to it, renamed
    // over `..data`, then the old version removed.
    version(second, &service_of("web", ip, &[&b]));
    symlink(second, mount.join("..data_tmp")).expect("..data_tmp");
    std::fs::rename(mount.join("..data_tmp"), mount.join("..data")).expect("swap ..data");
    let swapped = Instant::now();
    std::fs::remove_dir_all(mount.join(first)).expect("remove the old version");
    wait_reaching(frontend, "b", WAIT);
    let took = swapped.elapsed();
    assert!(took <= APPLY, "the ..data swap reached new connections after {took:?}");
    assert_all_reach(frontend, &["b"], 10);
}

#[test]
fn a_manifests_directory_removed_and_made_again_keeps_serving_and_is_watched_again() {
    let ip = fresh_ip();
    let frontend = addr(ip, PORT);
    let (a, b) = (Named::echo("a"), Named::echo("b"));
    let root = tempfile::tempdir().expect("temp dir");
    let dir = root.path().join("manifests");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::write(dir.join("web.yaml"), service_of("web", ip, &[&a])).expect("write");
    let mut proxy = Proxy::start_on(root, &dir, BACK_TO_BACK);
    proxy.wait_ready(|| visit_expecting(frontend, "a"));

    // A deploy that replaces the directory: while it is gone, the Services
    // it held keep their last version.
    std::fs::remove_dir_all(&dir).expect("rm -r");
    proxy.wait_metric(RELOADS_FAILED, WAIT, |v| v >= 1.0);
    assert_all_reach(frontend, &["a"], 5);

    std::fs::create_dir(&dir).expect("mkdir again");
    std::fs::write(dir.join("web.yaml"), service_of("web", ip, &[&b])).expect("write again");
    let made = Instant::now();
    wait_reaching(frontend, "b", WAIT);
    // The new directory is watched: a later edit applies too.
    let c = Named::echo("c");
    write_by_rename(&dir.join("web.yaml"), &service_of("web", ip, &[&c]));
    wait_reaching(frontend, "c", WAIT);
    let took = made.elapsed();
    assert!(took <= 2 * APPLY, "the directory made again was applied after {took:?}");
}

#[test]
fn a_listener_whose_frontend_stays_is_never_rebound() {
    const REWRITES: usize = 20;
    let ip = fresh_ip();
    let frontend = addr(ip, PORT);
    let pool: Vec<Named> = ["a", "b", "c", "d"].into_iter().map(Named::echo).collect();
    // Only the endpoints change; `d` serves only after the last rewrite.
    const SETS: [&[usize]; 5] = [&[0], &[1], &[2], &[0, 1], &[1, 2]];
    let manifest = |i: usize| {
        let set = if i == REWRITES { &[3][..] } else { SETS[i % SETS.len()] };
        service_of("web", ip, &set.iter().map(|&k| &pool[k]).collect::<Vec<_>>())
    };
    let (mut proxy, _) = Proxy::serving(&manifest(0), BACK_TO_BACK, || visit(frontend));
    let mut live = Conn::open(frontend).expect("connect");
    live.exchange().expect("first exchange");

    let stop = Arc::new(AtomicBool::new(false));
    let prober = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            let (mut ok, mut refused, mut failed) = (0u64, 0u64, Vec::new());
            while !stop.load(Ordering::SeqCst) {
                match visit(frontend) {
                    Ok(_) => ok += 1,
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => refused += 1,
                    Err(e) => failed.push(e.to_string()),
                }
                thread::sleep(Duration::from_millis(1));
            }
            (ok, refused, failed)
        })
    };
    let path = proxy.manifest();
    for i in 1..=REWRITES {
        let generation = proxy.metric(GENERATION);
        if i % 2 == 0 {
            write_by_rename(&path, &manifest(i));
        } else {
            write_in_place(&path, &manifest(i));
        }
        proxy.wait_metric(GENERATION, WAIT, |v| v > generation);
    }
    wait_reaching(frontend, "d", WAIT);
    stop.store(true, Ordering::SeqCst);
    let (ok, refused, failed) = prober.join().expect("prober thread");
    assert_eq!(refused, 0, "{refused} connections refused while only endpoints changed");
    assert!(failed.is_empty(), "{} connections failed: {failed:#?}", failed.len());
    assert!(ok >= REWRITES as u64, "only {ok} connections during {REWRITES} rewrites");
    live.exchange().expect("the live connection after the rewrites");
    live.finish().expect("the live connection ends cleanly");
    let log = proxy.log();
    let bound = log
        .lines()
        .filter(|l| l.contains("listening") && l.contains(&frontend.to_string()))
        .count();
    assert_eq!(bound, 1, "{frontend} bound {bound} times\n{log}");
}

#[test]
fn a_thousand_generations_under_a_hundred_live_connections_do_not_grow_memory() {
    const LIVE: usize = 100;
    const EARLY: u64 = 100;
    const LATE: u64 = 1000;
    const GROWTH_KIB: u64 = 8 * 1024;
    const BUDGET: Duration = Duration::from_secs(60);
    let _turn = HEAVY.lock();
    let (ip, ballast_ip) = (fresh_ip(), fresh_ip());
    let frontend = addr(ip, PORT);
    let echo = Named::echo("mem");
    let yaml = service_of("mem", ip, &[&echo]) + &weighty_service("ballast", ballast_ip, 1000);
    let (mut proxy, ()) = Proxy::serving(&yaml, BACK_TO_BACK, || visit_expecting(frontend, "mem"));
    // The ballast is valid, so it is in every Snapshot.
    assert_eq!(proxy.metric(INVALID), 0.0, "{}", proxy.log());
    assert_eq!(proxy.metric("svcproxy_services"), 2.0, "{}", proxy.log());
    let open = || {
        let mut conn = Conn::open(frontend).expect("open a live connection");
        conn.exchange().expect("first exchange");
        conn
    };
    let mut live: VecDeque<Conn> = (0..LIVE).map(|_| open()).collect();
    let start = Instant::now();
    proxy.hup_to_generation(EARLY);
    let early = proxy.rss_kib();
    // From here on, one live connection in nine generations is replaced by
    // a new one: at the end every live connection was accepted on a
    // different Snapshot, which it must not keep alive.
    let mut generation = EARLY;
    while generation < LATE {
        assert!(start.elapsed() < BUDGET, "generation {generation} only after {BUDGET:?}");
        generation += 1;
        proxy.hup_to_generation(generation);
        if generation.is_multiple_of(9) {
            let mut old = live.pop_front().expect("a live connection");
            old.exchange().expect("exchange on a connection from an old generation");
            old.finish().expect("close a connection from an old generation");
            live.push_back(open());
        }
    }
    let late = proxy.rss_kib();
    let took = start.elapsed();
    for (i, mut conn) in live.into_iter().enumerate() {
        conn.exchange().unwrap_or_else(|e| panic!("live connection {i} after the swaps: {e}"));
        conn.finish().unwrap_or_else(|e| panic!("live connection {i} at its end: {e}"));
    }
    eprintln!("memory: VmRSS {early} KiB at generation {EARLY}, {late} KiB at {LATE}; {took:?}");
    assert!(
        late.saturating_sub(early) < GROWTH_KIB,
        "VmRSS grew from {early} KiB to {late} KiB between generations {EARLY} and {LATE}"
    );
}

/// `--min-sync-period` as kube-proxy means it, at its default: a change
/// after a quiet period is applied at once; a change right after a
/// rebuild waits until a period has passed since that rebuild started,
/// and is applied then, not dropped.
#[test]
fn a_change_after_a_quiet_period_applies_at_once_and_the_next_waits_for_the_period() {
    let ip = fresh_ip();
    let frontend = addr(ip, PORT);
    let (a, b, c) = (Named::echo("a"), Named::echo("b"), Named::echo("c"));
    let (mut proxy, ()) =
        Proxy::serving(&service_of("web", ip, &[&a]), &[], || visit_expecting(frontend, "a"));
    let path = proxy.manifest();

    // Quiet for longer than a period: the pacing itself is what is tested.
    thread::sleep(MIN_SYNC_PERIOD + MIN_SYNC_PERIOD / 4);
    write_by_rename(&path, &service_of("web", ip, &[&b]));
    let took = wait_reaching(frontend, "b", WAIT);
    assert!(took < MIN_SYNC_PERIOD, "after a quiet period, applied after {took:?}");
    let first = proxy.wait_metric(GENERATION, WAIT, |g| g >= 2.0);
    let first_sync = proxy.metric(LAST_SYNC);

    write_by_rename(&path, &service_of("web", ip, &[&c]));
    let took = wait_reaching(frontend, "c", WAIT);
    proxy.wait_metric(GENERATION, WAIT, |g| g > first);
    let apart = proxy.metric(LAST_SYNC) - first_sync;
    // Published one period apart, less the first rebuild's own time.
    assert!(
        apart >= MIN_SYNC_PERIOD.as_secs_f64() * 0.9,
        "two rebuilds {apart:.3}s apart; the second change applied after {took:?}\n{}",
        proxy.log()
    );
    assert_all_reach(frontend, &["c"], 5);
}
