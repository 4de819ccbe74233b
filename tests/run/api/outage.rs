//! Watches that end: a 410 expiry relists, an API server that is down
//! leaves the last routing table serving, and what changed meanwhile is
//! picked up once it is back.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use super::{Cluster, RECONNECT, ROUTED, service};
use crate::support::endpoint::Endpoint;
use crate::support::manifests::{Ep, slices};
use crate::support::net::{eventually, fetch, fresh_ip, refuses};

/// Fetches from `frontend` over and over until stopped; counts the
/// fetches and keeps the failures.
struct Probe {
    stop: Arc<AtomicBool>,
    fetches: Arc<AtomicUsize>,
    thread: Option<thread::JoinHandle<Vec<String>>>,
}

impl Probe {
    fn start(frontend: std::net::SocketAddr, want: &'static str) -> Probe {
        let stop = Arc::new(AtomicBool::new(false));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (s, f) = (stop.clone(), fetches.clone());
        let thread = thread::spawn(move || {
            let mut errors = Vec::new();
            while !s.load(Ordering::Relaxed) {
                match fetch(frontend) {
                    Ok(got) if got == want => {}
                    other => errors.push(format!("{other:?}")),
                }
                f.fetch_add(1, Ordering::Relaxed);
            }
            errors
        });
        Probe { stop, fetches, thread: Some(thread) }
    }

    /// Stops probing; the errors seen.
    fn stop(mut self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let errors = self.thread.take().expect("running").join().expect("probe thread");
        (self.fetches.load(Ordering::Relaxed), errors)
    }
}

#[test]
fn an_expired_watch_relists_and_no_service_is_missing_meanwhile() {
    let cluster = Cluster::start();
    let (a, b) = (Endpoint::name(fresh_ip(), "a"), Endpoint::name(fresh_ip(), "b"));
    let (kept, objects) = service("kept", &[&a]);
    cluster.api.apply(&objects);
    let mut proxy = cluster.serving(&[], kept, "a");
    let relists = "svcproxy_api_relists_total{kind=\"Service\"}";
    assert_eq!(proxy.metric(relists), 0.0);

    let probe = Probe::start(kept, "a");
    // The relist's answer is held a while: the old objects serve meanwhile.
    let lists = |api: &crate::support::apiserver::ApiServer| {
        let requests = api.requests();
        requests.iter().filter(|r| !r.is_watch() && r.path.ends_with("/services")).count()
    };
    let before = lists(&cluster.api);
    cluster.api.hold_lists("Service", true);
    cluster.api.expire();
    eventually("the relist asked for", Duration::from_secs(10), || {
        if lists(&cluster.api) > before { Ok(()) } else { Err("no new LIST") }
    });
    let (added, objects) = service("added", &[&b]);
    cluster.api.apply(&objects);
    thread::sleep(Duration::from_millis(500));
    cluster.api.hold_lists("Service", false);
    let got = eventually("the Service added during the relist", ROUTED, || fetch(added));
    assert_eq!(got, "b");
    assert_eq!(proxy.metric(relists), 1.0, "{}", proxy.log());
    let (fetches, errors) = probe.stop();
    assert!(fetches > 10, "the probe ran ({fetches} fetches)");
    assert!(
        errors.is_empty(),
        "the kept Service failed during the relist: {errors:?}\n{}",
        proxy.log()
    );
    proxy.assert_running();
}

#[test]
fn an_api_server_down_for_5_s_leaves_traffic_flowing_and_changes_are_picked_up_after() {
    let cluster = Cluster::start();
    let (a, b, c) = (
        Endpoint::name(fresh_ip(), "a"),
        Endpoint::name(fresh_ip(), "b"),
        Endpoint::name(fresh_ip(), "c"),
    );
    let (kept, objects) = service("kept", &[&a]);
    cluster.api.apply(&objects);
    let (gone, objects) = service("gone", &[&b]);
    cluster.api.apply(&objects);
    let mut proxy = cluster.serving(&[], kept, "a");
    let admin = proxy.admin();
    assert_eq!(fetch(gone).expect("served"), "b");

    let probe = Probe::start(gone, "b");
    cluster.api.stop();
    proxy.wait_metric("svcproxy_api_up", Duration::from_secs(10), |v| v == 0.0);
    // Meanwhile: one Service deleted, one changed, one added.
    cluster.api.delete("Service", "default", "gone");
    cluster.api.apply(&slices("kept", &[Ep::ready(&c)]));
    let (added, objects) = service("added", &[&b]);
    cluster.api.apply(&objects);
    cluster.api.expire();
    let down = Instant::now();
    while down.elapsed() < Duration::from_secs(5) {
        // Healthy all along: nothing seen is left unpublished.
        assert_eq!(admin.healthz().expect("healthz").0, 200, "{}", proxy.log());
        thread::sleep(Duration::from_millis(100));
    }
    let (fetches, errors) = probe.stop();
    assert!(fetches > 10 && errors.is_empty(), "{fetches} fetches, errors {errors:?}");

    cluster.api.start_again();
    let got = eventually("the change made while down", RECONNECT, || match fetch(kept) {
        Ok(name) if name == "c" => Ok(name),
        other => Err(format!("{other:?}")),
    });
    assert_eq!(got, "c");
    // Each kind relists on its own: the Services' relist may be published
    // a period after the EndpointSlices'.
    let got = eventually("the Service added while down", RECONNECT, || fetch(added));
    assert_eq!(got, "b");
    eventually("the Service deleted while down removed after the relist", RECONNECT, || {
        if refuses(gone) { Ok(()) } else { Err("still accepting") }
    });
    assert_eq!(proxy.metric("svcproxy_api_up"), 1.0, "{}", proxy.log());
    proxy.assert_running();
}
