//! This node's Node from the API server: its zone decides which hinted
//! endpoints serve, and a changed label moves the choice; its deletion
//! turns `/healthz` to 503.

use std::time::Duration;

use super::{Cluster, ROUTED};
use crate::support::admin::get;
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
    proxy.assert_running();
}
