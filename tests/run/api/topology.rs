//! This node's Node from the API server: its zone decides which hinted
//! endpoints serve, and a changed label moves the choice; its deletion
//! turns `/healthz` to 503.

use std::time::Duration;

use super::{Cluster, ROUTED};
use crate::support::admin::{get, routes};
use crate::support::endpoint::Endpoint;
use crate::support::net::{addr, eventually, fetch, fresh_ip};
use crate::topology::{NODE, answered, hinted_service, names, node};

#[test]
fn the_nodes_zone_from_the_api_server_picks_the_hinted_endpoints() {
    let cluster = Cluster::start();
    let pods = [Endpoint::name(fresh_ip(), "a1"), Endpoint::name(fresh_ip(), "b1")];
    let cluster_ip = fresh_ip();
    let frontend = addr(cluster_ip, 80);
    cluster.api.apply(&hinted_service(cluster_ip, &[(&pods[0], "a"), (&pods[1], "b")]));
    cluster.api.apply(&node("a", ""));
    let mut proxy = cluster.proxy(&["--node-name", NODE]);
    proxy.wait_ready(|| fetch(frontend));
    eventually("only zone a", ROUTED, || {
        let got = answered(frontend);
        if got == names(&["a1"]) { Ok(()) } else { Err(format!("{got:?}")) }
    });

    cluster.api.apply(&node("b", ""));
    eventually("only zone b", ROUTED, || {
        let got = answered(frontend);
        if got == names(&["b1"]) { Ok(()) } else { Err(format!("{got:?}")) }
    });

    // The Node deleted (a deletion timestamp, finalizers pending): 503.
    let health = proxy.admin().healthz;
    let deleting = node("b", "")
        .replace("metadata:\n", "metadata:\n  deletionTimestamp: '2026-01-01T00:00:00Z'\n");
    cluster.api.apply(&deleting);
    eventually("503 while the Node is deleted", Duration::from_secs(5), || {
        match get(health, "/healthz") {
            Ok((503, body)) if body.contains("\"nodeEligible\": false") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    assert_eq!(fetch(frontend).unwrap(), "b1", "still serving");

    // Gone for good: it has left, and stays ineligible.
    cluster.api.delete("node", "", NODE);
    let generation = proxy.metric("svcproxy_routing_generation");
    proxy.wait_metric("svcproxy_routing_generation", ROUTED, |g| g > generation);
    let (status, _) = get(health, "/healthz").unwrap();
    assert_eq!(status, 503, "{}", proxy.log());
    proxy.assert_running();
}

#[test]
fn a_node_update_the_proxy_does_not_read_rebuilds_nothing() {
    let cluster = Cluster::start();
    let pod = Endpoint::name(fresh_ip(), "a1");
    let cluster_ip = fresh_ip();
    let frontend = addr(cluster_ip, 80);
    cluster.api.apply(&hinted_service(cluster_ip, &[(&pod, "a")]));
    cluster.api.apply(&node("a", ""));
    let mut proxy = cluster.proxy(&["--node-name", NODE]);
    proxy.wait_ready(|| fetch(frontend));
    // The first table does not wait for the Node: wait for its zone to be
    // in use before counting rebuilds.
    let admin = proxy.admin();
    let shown = format!("{frontend}/TCP");
    eventually("the Node's zone in use", ROUTED, || {
        let routes = routes(&admin);
        let all = routes["frontends"].as_array().cloned().unwrap_or_default();
        let ours = all.iter().find(|f| f["frontend"] == shown.as_str()).cloned();
        match ours.map(|f| f["topology"].clone()) {
            Some(t) if t == "PreferSameZone" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    let events = "svcproxy_api_watch_events_total{kind=\"Node\",type=\"MODIFIED\"}";
    // A rebuild the initial lists queued (the Node's may complete just
    // after the first table is read) lands within a period: let it.
    std::thread::sleep(ROUTED);
    let generation = proxy.metric("svcproxy_routing_generation");
    // Kubelet's status reports: the status changes, nothing the proxy reads.
    for heartbeat in 0..5 {
        let status = format!(
            "status:\n  conditions: [{{type: Ready, status: 'True', reason: beat-{heartbeat}}}]\n"
        );
        cluster.api.apply(&(node("a", "").trim_end_matches("---\n").to_owned() + &status));
    }
    proxy.wait_metric(events, Duration::from_secs(5), |n| n >= 5.0);
    // The period passes: nothing was queued, so nothing is rebuilt.
    std::thread::sleep(ROUTED);
    assert_eq!(proxy.metric("svcproxy_routing_generation"), generation, "{}", proxy.log());
}
