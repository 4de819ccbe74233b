//! Series follow the Snapshot (DESIGN §5): across 1,000 reloads that each
//! replace a Service's endpoints, and the deletion of a Service, the series
//! of what is gone disappear and the Service, endpoint and generation
//! gauges track what is configured, so `/metrics` does not grow; each
//! publish is counted and timestamped, as `/healthz` says too.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::admin::{self, get_with_headers, rfc3339, routes, unix_now};
use crate::support::endpoint::Endpoint;
use crate::support::manifests::{Port, endpoint_slice, service, write_by_rename};
use crate::support::metrics::{
    ACTIVE, CONNECT_ERRORS, CONNECTIONS, ENDPOINT_CONNECTIONS, ENDPOINTS, GENERATION, PORT,
    RECEIVED, SERVICES, WAIT, port_labels, scrape, service_with_pods, settle,
};
use crate::support::net::{self, addr, fresh_ip};
use crate::support::proxy::Proxy;
use crate::support::tagged::{self, Named, service_of, visit_expecting};

/// How many Snapshots the churn publishes, each with a fresh set of
/// [`CHURN_WIDTH`] endpoints.
const CHURN_GENERATIONS: usize = 1_000;
const CHURN_WIDTH: usize = 20;

/// The churned Service's endpoints in generation `g`: `10.a.b.1`..`.20`,
/// never connected to, never repeated.
fn churn_ips(g: usize) -> Vec<Ipv4Addr> {
    let (a, b) = ((g / 256) as u8, (g % 256) as u8);
    (1..=CHURN_WIDTH as u8).map(|d| Ipv4Addr::new(10, a, b, d)).collect()
}

/// 1,000 published generations, each replacing all 20 endpoints of a
/// Service (20,000 endpoint series made and dropped): only the last 20
/// remain, and the exposition is as long as after the first. Then a
/// Service that carried traffic is deleted: none of its series remain.
#[test]
fn series_of_removed_endpoints_and_services_disappear() {
    let gone_endpoint = Endpoint::echo(fresh_ip());
    let (gone_frontend, gone_yaml) = service_with_pods("gone", "tcp", &[gone_endpoint.addr]);
    let churn_ip = fresh_ip();
    let churn_yaml = service("churn", churn_ip, None, &[Port::tcp(PORT)], "");
    let manifest = |g: usize, with_gone: bool| {
        let mut yaml = churn_yaml.clone();
        yaml.push_str(&endpoint_slice("churn-1", "churn", "tcp", 9000, &churn_ips(g)));
        if with_gone {
            yaml.push_str(&gone_yaml);
        }
        yaml
    };
    // Rebuilds back to back: the pacing of --min-sync-period is not what
    // this test is about.
    let (mut proxy, ()) = Proxy::serving(&manifest(0, true), &["--min-sync-period", "0s"], || {
        net::echo(gone_frontend, b"counted")
    });
    let churn_port = port_labels("churn", "tcp");
    let gone_port = port_labels("gone", "tcp");
    let first = settle(&mut proxy, "gone's connection to end", |m| {
        m.value(ACTIVE, &gone_port) == Some(0.0) && m.count(ENDPOINT_CONNECTIONS, &churn_port) > 0
    });
    let samples_at_first = first.samples.len();
    assert_eq!(first.count(ENDPOINT_CONNECTIONS, &churn_port), CHURN_WIDTH);

    // Each generation is waited for by its content: the new set's series
    // are there and the previous set's are gone. SIGHUP after each rewrite
    // re-reads at once instead of after the watcher's 25 ms of quiet
    // (which the steady rewrites keep postponing, so it adds a rebuild
    // only every 150 ms or so): 1,000 generations fit in seconds.
    let path = proxy.manifest();
    let admin = proxy.admin();
    let series_of = |ip: Ipv4Addr| format!("endpoint=\"{ip}:9000\"");
    let start = Instant::now();
    for g in 1..CHURN_GENERATIONS {
        write_by_rename(&path, &manifest(g, true));
        proxy.signal("HUP");
        let (new, old) = (series_of(churn_ips(g)[0]), series_of(churn_ips(g - 1)[0]));
        let until = Instant::now() + WAIT;
        loop {
            let text = admin.metrics().unwrap_or_else(|e| panic!("{e}\n{}", proxy.log()));
            if text.contains(&new) && !text.contains(&old) {
                break;
            }
            assert!(
                Instant::now() < until,
                "generation {g} after {WAIT:?}: its series {} there, the previous set's {}\n\
                 {text}\n{}",
                if text.contains(&new) { "are" } else { "are not" },
                if text.contains(&old) { "remain" } else { "are gone" },
                proxy.log()
            );
            thread::sleep(Duration::from_millis(1));
        }
    }
    let churn_time = start.elapsed();
    eprintln!(
        "note: {CHURN_GENERATIONS} endpoint generations ({} endpoint series) in {churn_time:?}",
        CHURN_GENERATIONS * CHURN_WIDTH
    );

    let last = scrape(&mut proxy);
    let want: BTreeSet<String> =
        churn_ips(CHURN_GENERATIONS - 1).into_iter().map(|ip| format!("{ip}:9000")).collect();
    let have: BTreeSet<String> = last
        .select(ENDPOINT_CONNECTIONS, &churn_port)
        .map(|s| s.label("endpoint").expect("endpoint label").to_owned())
        .collect();
    assert_eq!(last.count(ENDPOINT_CONNECTIONS, &churn_port), CHURN_WIDTH);
    assert_eq!(have, want, "{ENDPOINT_CONNECTIONS} series of churn after the churn");
    assert_eq!(last.count(CONNECT_ERRORS, &churn_port), CHURN_WIDTH * 3, "3 reasons each");
    assert_eq!(last.get(ENDPOINTS, &[]), (CHURN_WIDTH + 1) as f64, "{ENDPOINTS}");
    assert_eq!(last.get(SERVICES, &[]), 2.0, "{SERVICES}");
    assert!(last.get(GENERATION, &[]) >= CHURN_GENERATIONS as f64, "{GENERATION}");
    assert_eq!(
        last.samples.len(),
        samples_at_first,
        "the exposition grew over the churn; first had {samples_at_first} samples"
    );

    // Delete a Service that carried traffic.
    let gone_labels = [("service", "gone")];
    assert!(last.get(CONNECTIONS, &gone_port) >= 1.0, "gone carried the probe");
    assert!(last.get(RECEIVED, &gone_port) >= 7.0, "gone carried the probe's bytes");
    let gone_series = last.with_labels(&gone_labels).count();
    assert!(gone_series > 10, "gone has {gone_series} series");
    write_by_rename(&path, &manifest(CHURN_GENERATIONS - 1, false));
    let removed =
        settle(&mut proxy, "gone to leave the Snapshot", |m| m.value(SERVICES, &[]) == Some(1.0));
    let left: Vec<String> = removed.with_labels(&gone_labels).map(ToString::to_string).collect();
    assert!(left.is_empty(), "series of the deleted Service remain: {left:#?}");
    assert_eq!(removed.samples.len(), samples_at_first - gone_series);
    assert_eq!(removed.get(ENDPOINTS, &[]), CHURN_WIDTH as f64);
    assert_eq!(removed.count(ENDPOINT_CONNECTIONS, &churn_port), CHURN_WIDTH);
    let routes = routes(&admin);
    let gone_frontend = format!("{gone_frontend}/TCP");
    assert!(
        routes["frontends"]
            .as_array()
            .expect("frontends")
            .iter()
            .all(|f| f["service"] != "gone" && f["frontend"] != gone_frontend.as_str()),
        "/debug/routes still lists gone: {routes:#}"
    );
}

/// DESIGN §5: each publish counts: `svcproxy_config_reloads_total
/// {result="success"}`, the generation and the rebuild histogram's count
/// move together; `kubeproxy_sync_proxy_rules_last_timestamp_seconds` is
/// the Unix time of the publish, and `/healthz`'s `lastUpdated` follows.
#[test]
fn each_publish_is_counted_and_timestamped() {
    const SUCCESS: &str = "svcproxy_config_reloads_total{result=\"success\"}";
    const SYNCS: &str = "kubeproxy_sync_proxy_rules_duration_seconds_count";
    const LAST: &str = "kubeproxy_sync_proxy_rules_last_timestamp_seconds";
    let ip = fresh_ip();
    let frontend = addr(ip, tagged::PORT);
    let e = Named::echo("e");
    let (mut proxy, ()) =
        Proxy::serving(&service_of("web", ip, &[&e]), &[], || visit_expecting(frontend, "e"));
    let read = |proxy: &mut Proxy| -> [f64; 4] {
        let text = proxy.admin().metrics().expect("/metrics");
        [SUCCESS, GENERATION, SYNCS, LAST].map(|series| {
            admin::sample(&text, series).unwrap_or_else(|| panic!("no {series}\n{text}"))
        })
    };
    let [success, generation, syncs, last] = read(&mut proxy);
    assert!(generation >= 1.0 && success >= 1.0 && syncs >= 1.0, "{}", proxy.log());
    assert!((last - unix_now()).abs() < 60.0, "last sync at {last}, now {}", unix_now());

    let hup = unix_now();
    proxy.signal("HUP");
    proxy.wait_metric(GENERATION, WAIT, |g| g > generation);
    let [success2, generation2, syncs2, last2] = read(&mut proxy);
    let published = generation2 - generation;
    assert_eq!(success2 - success, published, "successes per publish\n{}", proxy.log());
    assert_eq!(syncs2 - syncs, published, "rebuild durations per publish\n{}", proxy.log());
    assert!(last2 >= hup - 1.0 && last2 <= unix_now() + 1.0, "last sync {last2}, SIGHUP at {hup}");
    let (status, headers, body) = get_with_headers(proxy.admin().healthz, "/healthz");
    assert!(status.contains(" 200 "), "{status}: {body}");
    let content_type = headers.get("content-type").map(String::as_str).unwrap_or_default();
    assert!(content_type.starts_with("application/json"), "Content-Type {content_type:?}");
    let json: Value = serde_json::from_str(&body).expect("a JSON body");
    let updated = json["lastUpdated"].as_str().and_then(rfc3339).expect("lastUpdated");
    // Second precision.
    assert!(updated >= hup.floor() - 1.0, "lastUpdated {updated} before the SIGHUP at {hup}");
}
