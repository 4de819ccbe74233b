//! The fake API server (`support::apiserver`) itself, from the outside: raw
//! HTTP requests as kube-rs and kubectl send them, and the answers a real
//! kube-apiserver gives.

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::apiserver::{ApiServer, Auth};
use crate::support::net::eventually;

use client::{Client, DEADLINE, End};

mod client;

/// How long a test waits for an event that should come at once.
const SOON: Duration = Duration::from_secs(2);

fn service(namespace: &str, name: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"clusterIP": "10.96.0.10", "ports": [{"port": 80, "protocol": "TCP"}]},
    })
}

/// `namespace/name` of each item of a list body.
fn names(list: &Value) -> Vec<String> {
    let items = list["items"].as_array().expect("a list has items");
    items
        .iter()
        .map(|i| format!("{}/{}", i["metadata"]["namespace"].as_str().unwrap(), name(i)))
        .collect()
}

fn name(object: &Value) -> &str {
    object["metadata"]["name"].as_str().expect("metadata.name")
}

fn rv(object: &Value) -> u64 {
    object["metadata"]["resourceVersion"].as_str().expect("a resourceVersion").parse().unwrap()
}

/// `type` and `namespace/name` of a watch event.
fn event(event: &Value) -> (String, String) {
    let object = &event["object"];
    let key =
        format!("{}/{}", object["metadata"]["namespace"].as_str().unwrap_or(""), name(object));
    (event["type"].as_str().unwrap().to_owned(), key)
}

#[test]
fn lists_page_in_key_order_and_a_continue_token_reads_the_first_page_s_version() {
    let server = ApiServer::start();
    let objects = ["b/one", "a/two", "a/one", "c/one", "b/two"]
        .map(|key| key.split_once('/').unwrap())
        .map(|(ns, n)| service(ns, n, json!({})));
    server.apply_json(objects.to_vec());
    let client = Client::plain(server.addr());

    let first = client.get("/api/v1/services?limit=2");
    assert_eq!((first.code, first.content_type.as_str()), (200, "application/json"));
    let first = first.body;
    assert_eq!(first["kind"], "ServiceList");
    assert_eq!(names(&first), ["a/one", "a/two"]);
    assert!(first["items"][0].get("kind").is_none(), "list items carry no kind: {first}");
    let version = first["metadata"]["resourceVersion"].as_str().unwrap().to_owned();
    // Changed between pages: the next page still shows it as it was.
    server.apply_json(vec![service("b", "one", json!({"changed": "yes"}))]);
    server.delete("Service", "b", "two");

    let token = first["metadata"]["continue"].as_str().expect("a continue token");
    let second = client.get(&format!("/api/v1/services?limit=2&continue={token}")).body;
    assert_eq!(names(&second), ["b/one", "b/two"]);
    assert_eq!(second["metadata"]["resourceVersion"], version.as_str());
    assert!(second["items"][0]["metadata"]["labels"].get("changed").is_none());
    let token = second["metadata"]["continue"].as_str().expect("a continue token");
    let last = client.get(&format!("/api/v1/services?limit=2&continue={token}")).body;
    assert_eq!(names(&last), ["c/one"]);
    assert!(last["metadata"].get("continue").is_none(), "no continue on the last page");

    let now = client.get("/api/v1/namespaces/b/services").body;
    assert_eq!(names(&now), ["b/one"]);
    assert_eq!(now["metadata"]["resourceVersion"], server.resource_version().to_string());
    let one = client.get("/api/v1/namespaces/b/services/one");
    assert_eq!((one.code, one.body["kind"].as_str()), (200, Some("Service")));
    let gone = client.get("/api/v1/namespaces/b/services/two");
    assert_eq!((gone.code, gone.body["reason"].as_str()), (404, Some("NotFound")));
}

#[test]
fn label_selectors_filter_lists_with_every_supported_operator() {
    let server = ApiServer::start();
    server.apply(
        "apiVersion: v1\nkind: Service\nmetadata: {name: plain}\n---\n\
         apiVersion: v1\nkind: Service\nmetadata: {name: headless, labels: {service.kubernetes.io/headless: ''}}\n---\n\
         apiVersion: v1\nkind: Service\nmetadata: {name: other, labels: {service.kubernetes.io/service-proxy-name: x, tier: db}}\n---\n\
         apiVersion: v1\nkind: Service\nmetadata: {name: web, labels: {tier: web}}\n",
    );
    let client = Client::plain(server.addr());
    let select = |selector: &str| {
        let reply = client.get(&format!("/api/v1/services?labelSelector={selector}"));
        assert_eq!(reply.code, 200, "{selector}: {:?}", reply.body);
        names(&reply.body)
    };
    let svcproxy =
        "%21service.kubernetes.io%2Fservice-proxy-name%2C%21service.kubernetes.io%2Fheadless";
    assert_eq!(select(svcproxy), ["default/plain", "default/web"]);
    assert_eq!(select("tier"), ["default/other", "default/web"]);
    assert_eq!(select("tier%3Dweb"), ["default/web"]);
    assert_eq!(select("tier%3D%3Ddb"), ["default/other"]);
    assert_eq!(select("tier%21%3Dweb"), ["default/headless", "default/other", "default/plain"]);
    assert_eq!(select("tier,tier!%3Ddb"), ["default/web"]);

    let refused = client.get("/api/v1/services?labelSelector=tier+in+%28web%29");
    assert_eq!((refused.code, refused.body["reason"].as_str()), (400, Some("BadRequest")));
}

#[test]
fn a_watch_replays_after_its_resource_version_then_sends_live_events_and_bookmarks() {
    let server = ApiServer::start();
    server.bookmark_every(Duration::from_millis(50));
    server.apply_json(vec![service("default", "first", json!({}))]);
    let after_first = server.resource_version();
    server.apply_json(vec![service("default", "second", json!({}))]);
    let client = Client::plain(server.addr());

    let target = format!(
        "/api/v1/services?watch=true&allowWatchBookmarks=true&timeoutSeconds=290&resourceVersion={after_first}"
    );
    let mut watch = client.watch(&target);
    assert_eq!(watch.code, 200);
    server.wait_for_watches("Service", 1, DEADLINE);
    let replayed = watch.next_change(SOON).expect("the replayed event");
    assert_eq!(event(&replayed), ("ADDED".into(), "default/second".into()));
    assert_eq!(replayed["object"]["kind"], "Service", "watch objects carry their kind");

    server.apply_json(vec![service("default", "second", json!({"v": "2"}))]);
    let modified = watch.next_change(SOON).expect("a live event");
    assert_eq!(event(&modified), ("MODIFIED".into(), "default/second".into()));
    server.delete("Service", "default", "second");
    let deleted = watch.next_change(SOON).expect("a live event");
    assert_eq!(event(&deleted), ("DELETED".into(), "default/second".into()));
    assert_eq!(rv(&deleted["object"]), server.resource_version());

    let bookmark = std::iter::from_fn(|| watch.next(SOON)).find(|e| e["type"] == "BOOKMARK");
    let bookmark = bookmark.expect("a bookmark");
    assert_eq!(rv(&bookmark["object"]), server.resource_version());
    assert_eq!(bookmark["object"]["kind"], "Service");
}

#[test]
fn a_watch_without_a_version_starts_with_the_current_objects_and_ends_cleanly_at_its_timeout_or_when_told()
 {
    let server = ApiServer::start();
    server.apply_json(vec![service("a", "one", json!({})), service("b", "two", json!({}))]);
    let client = Client::plain(server.addr());

    let mut watch = client.watch("/api/v1/namespaces/b/services?watch=1&timeoutSeconds=1");
    let initial = watch.next_change(SOON).expect("an initial ADDED");
    assert_eq!(event(&initial), ("ADDED".into(), "b/two".into()));
    assert_eq!(watch.end(SOON), End::Clean);
    assert_eq!(server.watches("Service"), 0);

    let mut ended = client.watch("/api/v1/namespaces/b/services?watch=true");
    server.wait_for_watches("Service", 1, DEADLINE);
    server.end_watches();
    assert_eq!(ended.next(SOON).map(|e| event(&e)), Some(("ADDED".into(), "b/two".into())));
    assert_eq!(ended.end(SOON), End::Clean);

    let left = client.watch("/api/v1/services?watch=true");
    server.wait_for_watches("Service", 1, DEADLINE);
    drop(left);
    eventually("the watch the client left closed", SOON, || match server.watches("Service") {
        0 => Ok(()),
        n => Err(format!("{n} open")),
    });
}

#[test]
fn a_watch_with_a_selector_sees_objects_that_stop_matching_deleted_and_that_start_added() {
    let server = ApiServer::start();
    server.apply_json(vec![service("default", "web", json!({}))]);
    let client = Client::plain(server.addr());
    let since = server.resource_version();
    let mut watch = client.watch(&format!(
        "/api/v1/services?watch=true&labelSelector=%21service.kubernetes.io%2Fheadless&resourceVersion={since}"
    ));
    server.wait_for_watches("Service", 1, DEADLINE);

    server.apply_json(vec![service(
        "default",
        "web",
        json!({"service.kubernetes.io/headless": ""}),
    )]);
    let left = watch.next_change(SOON).expect("the object leaving the selection");
    assert_eq!(event(&left), ("DELETED".into(), "default/web".into()));
    assert_eq!(rv(&left["object"]), server.resource_version(), "at the change's version");
    assert!(left["object"]["metadata"]["labels"].get("service.kubernetes.io/headless").is_none());

    server.apply_json(vec![service("default", "web", json!({}))]);
    let back = watch.next_change(SOON).expect("the object matching again");
    assert_eq!(event(&back), ("ADDED".into(), "default/web".into()));
}

#[test]
fn a_streaming_list_ends_its_initial_events_with_an_annotated_bookmark() {
    let server = ApiServer::start();
    server.apply_json(vec![service("default", "web", json!({}))]);
    let client = Client::plain(server.addr());
    let mut watch = client.watch(
        "/api/v1/services?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true",
    );
    assert_eq!(event(&watch.next(SOON).unwrap()), ("ADDED".into(), "default/web".into()));
    let end = watch.next(SOON).unwrap();
    assert_eq!(end["type"], "BOOKMARK");
    assert_eq!(end["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"], "true");
    assert_eq!(rv(&end["object"]), server.resource_version());

    let refused = client.get("/api/v1/services?watch=true&sendInitialEvents=true");
    assert_eq!((refused.code, refused.body["reason"].as_str()), (422, Some("Invalid")));
}

#[test]
fn expire_ends_open_watches_and_makes_older_versions_gone() {
    let server = ApiServer::start();
    server.apply_json((0..3).map(|i| service("default", &format!("s{i}"), json!({}))).collect());
    let client = Client::plain(server.addr());
    let old = server.resource_version();
    let page = client.get("/api/v1/services?limit=1").body;
    let token = page["metadata"]["continue"].as_str().unwrap().to_owned();
    let mut watch = client.watch(&format!("/api/v1/services?watch=true&resourceVersion={old}"));
    server.wait_for_watches("Service", 1, DEADLINE);
    server.apply_json(vec![service("default", "s0", json!({"v": "2"}))]);
    assert_eq!(watch.next_change(SOON).map(|e| event(&e).0).as_deref(), Some("MODIFIED"));

    server.expire();
    let error = watch.next_change(SOON).expect("an ERROR event");
    assert_eq!(error["type"], "ERROR");
    let status = &error["object"];
    assert_eq!((status["kind"].as_str(), status["code"].as_u64()), (Some("Status"), Some(410)));
    assert_eq!(status["reason"], "Expired");
    assert_eq!(watch.end(SOON), End::Clean);

    let mut late = client.watch(&format!("/api/v1/services?watch=true&resourceVersion={old}"));
    assert_eq!(late.code, 200, "the real server answers 200, then the ERROR event");
    let error = late.next(SOON).expect("an ERROR event");
    let expected = format!("too old resource version: {old} ({})", server.resource_version());
    assert_eq!(
        (error["type"].as_str(), error["object"]["message"].as_str()),
        (Some("ERROR"), Some(&*expected))
    );

    let continued = client.get(&format!("/api/v1/services?limit=1&continue={token}"));
    assert_eq!((continued.code, continued.body["reason"].as_str()), (410, Some("Expired")));
    let exact =
        client.get(&format!("/api/v1/services?resourceVersion={old}&resourceVersionMatch=Exact"));
    assert_eq!(exact.code, 410);
    assert_eq!(client.get("/api/v1/services?limit=500").code, 200, "a fresh LIST works");
}

#[test]
fn stop_cuts_watches_and_start_again_serves_the_same_objects_on_the_same_port() {
    let server = ApiServer::start();
    server.apply_json(vec![service("default", "web", json!({}))]);
    let client = Client::plain(server.addr());
    let before = client.get("/api/v1/services").body;
    let mut watch = client.watch("/api/v1/services?watch=true");
    watch.next(SOON).expect("the initial ADDED");

    server.stop();
    assert_eq!(watch.end(SOON), End::Cut);
    assert!(!client.connects(), "the port is closed");

    server.start_again();
    assert_eq!(client.get("/api/v1/services").body, before);
    let since = rv(&before);
    let mut resumed = client.watch(&format!("/api/v1/services?watch=true&resourceVersion={since}"));
    server.wait_for_watches("Service", 1, DEADLINE);
    server.apply_json(vec![service("default", "api", json!({}))]);
    let added = resumed.next_change(SOON).expect("a live event after the restart");
    assert_eq!(event(&added), ("ADDED".into(), "default/api".into()));
}

#[test]
fn held_lists_are_answered_only_once_released() {
    let server = ApiServer::start();
    server.hold_lists("Service", true);
    let client = Client::plain(server.addr());
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(client.get("/api/v1/services?limit=500").code);
    });
    // Bounded: a held LIST must still be unanswered after this long.
    assert!(rx.recv_timeout(Duration::from_millis(300)).is_err(), "a held LIST was answered");
    assert!(server.requests().iter().any(|r| r.path == "/api/v1/services"), "it arrived");
    let endpoints = Client::plain(server.addr()).get("/apis/discovery.k8s.io/v1/endpointslices");
    assert_eq!(endpoints.code, 200, "only Service LISTs are held");

    server.hold_lists("Service", false);
    assert_eq!(rx.recv_timeout(DEADLINE), Ok(200));
}

#[test]
fn tokens_are_required_once_set_and_recorded_with_each_request() {
    let server = ApiServer::start();
    server.accept_tokens(&["good", "also-good"]);
    let plain = Client::plain(server.addr());
    let refused = plain.get("/api/v1/services");
    assert_eq!((refused.code, refused.body["reason"].as_str()), (401, Some("Unauthorized")));
    let wrong = Client::plain(server.addr()).with_token("bad").get("/version");
    assert_eq!(wrong.code, 401);
    let right = Client::plain(server.addr()).with_token("also-good").get("/api/v1/services");
    assert_eq!(right.code, 200);

    let tokens: Vec<_> = server.requests().into_iter().map(|r| r.token).collect();
    assert_eq!(tokens, [None, Some("bad".into()), Some("also-good".into())]);
    server.accept_tokens(&[]);
    assert_eq!(plain.get("/api/v1/services").code, 200);
}

#[test]
fn tls_serves_a_certificate_its_ca_signed_and_the_kubeconfig_names_both() {
    let server = ApiServer::start_tls();
    let ca = server.ca_pem().expect("a CA");
    assert!(server.url().starts_with("https://127.0.0.1:"));
    let version = Client::tls(server.addr(), &ca).get("/version");
    assert_eq!((version.code, version.body["major"].as_str()), (200, Some("1")));

    let dir = tempfile::tempdir().unwrap();
    let path = server.kubeconfig(dir.path(), Auth::Token("t0ken".into()));
    let config: Value = serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let cluster = &config["clusters"][0]["cluster"];
    assert_eq!(cluster["server"].as_str(), Some(server.url().as_str()));
    assert!(cluster["certificate-authority-data"].is_string());
    assert_eq!(config["users"][0]["user"]["token"], "t0ken");
    assert_eq!(config["current-context"], config["contexts"][0]["name"]);
}

#[test]
fn discovery_lists_both_resources_and_unknown_paths_are_404_statuses() {
    let server = ApiServer::start();
    let client = Client::plain(server.addr());
    assert_eq!(client.get("/api").body["versions"], json!(["v1"]));
    let groups = client.get("/apis").body;
    assert_eq!(groups["groups"][0]["preferredVersion"]["groupVersion"], "discovery.k8s.io/v1");
    let core = client.get("/api/v1").body;
    assert_eq!(core["resources"][0]["name"], "services");
    let discovery = client.get("/apis/discovery.k8s.io/v1").body;
    assert_eq!(discovery["resources"][0]["verbs"], json!(["get", "list", "watch"]));

    let unknown = client.get("/api/v1/pods");
    assert_eq!((unknown.code, unknown.body["kind"].as_str()), (404, Some("Status")));
    assert_eq!(client.request("POST", "/api/v1/namespaces/default/services").code, 405);
}
