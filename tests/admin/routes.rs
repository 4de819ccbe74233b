//! `/debug/routes` (DESIGN §5), end to end: each frontend with its Service,
//! port and kind, and its endpoints' states as the balancer sees them,
//! consistent with `/metrics`; after each change, the Snapshot just
//! published.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::admin::routes;
use crate::support::endpoint::{Endpoint, refused_addr};
use crate::support::manifests::{Port, endpoint_slice, ipv4, service, write_in_place};
use crate::support::metrics::{
    CONNECT_ERRORS, CONNECTIONS, ENDPOINT_CONNECTIONS, GENERATION, PORT, REJECTED, WAIT,
    port_labels, scrape, service_with_pods,
};
use crate::support::net::{self, addr, eventually, fresh_ip};
use crate::support::proxy::Proxy;
use crate::support::tagged::{self, Named, service_of, visit_expecting};

/// The entry of `frontend` ("ip:port/TCP") in `/debug/routes`.
fn frontend_entry<'a>(routes: &'a Value, frontend: &str) -> &'a Value {
    routes["frontends"]
        .as_array()
        .expect("`frontends` is an array")
        .iter()
        .find(|f| f["frontend"] == frontend)
        .unwrap_or_else(|| panic!("no frontend {frontend} in /debug/routes: {routes:#}"))
}

/// `address -> state` of a frontend entry's endpoints.
fn endpoint_states(entry: &Value) -> BTreeMap<String, String> {
    entry["endpoints"]
        .as_array()
        .unwrap_or_else(|| panic!("`endpoints` is not an array: {entry:#}"))
        .iter()
        .map(|e| {
            let address = e["address"].as_str().expect("endpoint address").to_owned();
            let state = e["state"].as_str().expect("endpoint state").to_owned();
            (address, state)
        })
        .collect()
}

/// `/debug/routes` lists each frontend with its Service, port and kind and
/// its endpoints' states: `ready`; `ejected` right after a refused connect
/// (and `ready` again once the 0.5 s ejection ends); `terminating` for an
/// endpoint used only for lack of ready ones.
#[test]
fn debug_routes_shows_frontends_and_endpoint_states() {
    let good = Endpoint::echo(fresh_ip());
    let bad = refused_addr(fresh_ip());
    let (frontend, mut yaml) = service_with_pods("routed", "web", &[good.addr, bad]);
    // A selector-less Service whose one endpoint is terminating but serving.
    let fading = Endpoint::echo(fresh_ip());
    let fading_ip = fresh_ip();
    yaml.push_str(&service("fading", fading_ip, None, &[Port::tcp(PORT)], ""));
    yaml.push_str(&endpoint_slice(
        "fading-1",
        "fading",
        "tcp",
        fading.port(),
        &[ipv4(fading.addr)],
    ));
    let yaml = yaml.replace(
        &format!("      - {}\n    conditions:\n      ready: true", fading.addr.ip()),
        &format!(
            "      - {}\n    conditions:\n      ready: false\n      serving: true\n      \
             terminating: true",
            fading.addr.ip()
        ),
    );
    assert!(yaml.contains("terminating: true"), "{yaml}");
    let (mut proxy, ()) = Proxy::serving(&yaml, &[], || net::echo(frontend, b"route me"));
    let admin = proxy.admin();
    let key = format!("{frontend}/TCP");
    let (good_addr, bad_addr) = (good.addr.to_string(), bad.to_string());

    // The dump is consistent with /metrics and names what was configured.
    let dump = routes(&admin);
    let generation = proxy.metric(GENERATION);
    assert_eq!(dump["generation"].as_f64(), Some(generation), "generation: {dump:#}");
    let entry = frontend_entry(&dump, &key);
    assert_eq!(entry["service"], "routed", "{entry:#}");
    assert_eq!(entry["namespace"], "default", "{entry:#}");
    assert_eq!(entry["port"], "web", "{entry:#}");
    assert_eq!(entry["kind"], "ClusterIP", "{entry:#}");
    let states = endpoint_states(entry);
    // Not asserting both `ready` yet: a probe may have met the refusing one.
    assert_eq!(
        states.keys().cloned().collect::<BTreeSet<_>>(),
        BTreeSet::from([good_addr.clone(), bad_addr.clone()]),
        "{entry:#}"
    );
    assert_eq!(states[&good_addr], "ready");
    let fading_entry = frontend_entry(&dump, &format!("{}/TCP", addr(fading_ip, PORT)));
    assert_eq!(
        endpoint_states(fading_entry),
        BTreeMap::from([(fading.addr.to_string(), "terminating".to_owned())]),
        "{fading_entry:#}"
    );
    // The fallback is really used.
    net::echo(addr(fading_ip, PORT), b"last orders").expect("through a terminating endpoint");

    // Both ready once any ejection from the probes has ended.
    let both_ready = || {
        eventually("both endpoints of routed to be ready", WAIT, || {
            let states = endpoint_states(frontend_entry(&routes(&admin), &key));
            if states.values().all(|s| s == "ready") {
                Ok(())
            } else {
                Err(io::Error::other(format!("{states:?}")))
            }
        });
    };
    both_ready();

    // Round robin over two: within two clients one tries the refusing
    // endpoint first, fails over to the good one, and the dump taken
    // right after shows the refusing one ejected.
    let errors = [("service", "routed"), ("endpoint", bad_addr.as_str()), ("reason", "refused")];
    let until = Instant::now() + WAIT;
    let mut inconclusive = 0;
    loop {
        let errors_before = scrape(&mut proxy).get(CONNECT_ERRORS, &errors);
        let client = Instant::now();
        net::echo(frontend, b"fail over").unwrap_or_else(|e| panic!("{e}\n{}", proxy.log()));
        let states = endpoint_states(frontend_entry(&routes(&admin), &key));
        let elapsed = client.elapsed();
        let errors_after = scrape(&mut proxy).get(CONNECT_ERRORS, &errors);
        if errors_after > errors_before {
            if states[&bad_addr] == "ejected" {
                assert_eq!(states[&good_addr], "ready", "{states:?}");
                break;
            }
            // Too slow to see a 0.5 s ejection: not a verdict, try again.
            assert!(
                elapsed >= Duration::from_millis(450),
                "{bad_addr} refused a connect {elapsed:?} ago and shows {states:?}\n{}",
                proxy.log()
            );
            inconclusive += 1;
        }
        assert!(Instant::now() < until, "never saw the ejection ({inconclusive} slow tries)");
    }
    // The ejection ends; the failed-over clients were all carried.
    both_ready();
    let metrics = scrape(&mut proxy);
    let port = port_labels("routed", "web");
    let mut failed = port.to_vec();
    failed.push(("reason", "connect_failed"));
    assert_eq!(metrics.get(REJECTED, &failed), 0.0, "failover rejected nobody");
    assert_eq!(
        metrics.select(ENDPOINT_CONNECTIONS, &port).map(|s| s.value).sum::<f64>(),
        metrics.get(CONNECTIONS, &port),
        "every client of routed reached an endpoint"
    );
}

/// DESIGN §5: `/debug/routes` is the current Snapshot: after a change its
/// generation is the new one (as `/metrics` says) and the frontend lists
/// the new endpoints.
#[test]
fn debug_routes_follows_each_published_snapshot() {
    let ip = fresh_ip();
    let frontend = addr(ip, tagged::PORT);
    let (a, b) = (Named::echo("a"), Named::echo("b"));
    let (mut proxy, ()) =
        Proxy::serving(&service_of("web", ip, &[&a]), &[], || visit_expecting(frontend, "a"));
    let admin = proxy.admin();
    let key = format!("{frontend}/TCP");
    let endpoints_of = |dump: &Value| -> Vec<String> {
        let entry = dump["frontends"]
            .as_array()
            .and_then(|f| f.iter().find(|f| f["frontend"] == key.as_str()))
            .unwrap_or_else(|| panic!("no frontend {key}: {dump:#}"));
        entry["endpoints"]
            .as_array()
            .unwrap_or_else(|| panic!("no endpoints: {entry:#}"))
            .iter()
            .map(|e| e["address"].as_str().expect("address").to_owned())
            .collect()
    };
    let before = routes(&admin);
    let first = before["generation"].as_f64().expect("a generation number");
    assert_eq!(endpoints_of(&before), [a.addr().to_string()], "{before:#}");

    write_in_place(&proxy.manifest(), &service_of("web", ip, &[&b]));
    let after = eventually("/debug/routes to show the new endpoint", WAIT, || {
        let dump = routes(&admin);
        if endpoints_of(&dump) == [b.addr().to_string()] { Ok(dump) } else { Err("not yet") }
    });
    let generation = after["generation"].as_f64().expect("a generation number");
    assert!(generation > first, "generation {generation} after {first}: {after:#}");
    assert_eq!(proxy.metric("svcproxy_routing_generation"), generation, "{after:#}");
}
