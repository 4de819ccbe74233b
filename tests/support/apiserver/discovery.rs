//! Discovery, as much as kubectl reads before a `get`: `/version`, the
//! legacy group (`/api`, `/api/v1`) and the named groups (`/apis`,
//! `/apis/discovery.k8s.io`, `/apis/discovery.k8s.io/v1`), each version
//! listing only what the fake serves, with the verbs get, list and watch.
//!
//! Only the legacy JSON documents: kubectl first asks for aggregated
//! discovery (`Accept: ...;as=APIGroupDiscoveryList,...,application/json`)
//! and falls back to these when the answer is plain `application/json`.

use std::net::SocketAddr;

use serde_json::{Value, json};

use super::store::Kind;

const GROUP: &str = "discovery.k8s.io";
const GROUP_VERSION: &str = "discovery.k8s.io/v1";

/// What `/version` answers: a 1.33 server (the API types svcproxy is built
/// against).
pub(super) fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": "v1.33.0-svcproxy-fake",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-04-23T00:00:00Z",
        "goVersion": "go1.24.2",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// `/api`: the legacy group's versions.
pub(super) fn api_versions(addr: SocketAddr) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": addr.to_string()}],
    })
}

/// `/apis`: the named groups.
pub(super) fn group_list() -> Value {
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [group_body()]})
}

/// `/apis/discovery.k8s.io`.
pub(super) fn group() -> Value {
    let mut group = group_body();
    group["kind"] = json!("APIGroup");
    group["apiVersion"] = json!("v1");
    group
}

/// `/api/v1` (Services and Nodes) or `/apis/discovery.k8s.io/v1`
/// (EndpointSlices).
pub(super) fn resources(kind: Kind) -> Value {
    let resource = json!({
        "name": kind.plural(),
        "singularName": kind.name().to_ascii_lowercase(),
        "namespaced": true,
        "kind": kind.name(),
        "verbs": ["get", "list", "watch"],
    });
    let mut resources = vec![resource];
    if kind == Kind::Service {
        resources[0]["shortNames"] = json!(["svc"]);
        resources[0]["categories"] = json!(["all"]);
        // The legacy group serves Nodes too, cluster-scoped.
        resources.push(json!({
            "name": Kind::Node.plural(),
            "singularName": "node",
            "namespaced": false,
            "kind": Kind::Node.name(),
            "shortNames": ["no"],
            "verbs": ["get", "list", "watch"],
        }));
    }
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": kind.api_version(),
        "resources": resources,
    })
}

fn group_body() -> Value {
    let version = json!({"groupVersion": GROUP_VERSION, "version": "v1"});
    json!({"name": GROUP, "versions": [version], "preferredVersion": version})
}
