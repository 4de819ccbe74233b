//! The API server beside the files, what the model rejects, the label
//! selector, credentials and TLS.

use std::time::Duration;

use super::{Cluster, RECONNECT, ROUTED, service};
use crate::support::apiserver::{ApiServer, Auth};
use crate::support::endpoint::Endpoint;
use crate::support::manifests::{Ep, PORT, simple_service, slices, write_file};
use crate::support::net::{addr, eventually, fetch, fresh_ip, refuses};
use crate::support::proxy::Proxy;

#[test]
fn file_services_serve_while_the_api_server_is_down_and_its_objects_join_later() {
    let cluster = Cluster::start();
    let (f, a) = (Endpoint::name(fresh_ip(), "file"), Endpoint::name(fresh_ip(), "api"));
    let (from_api, objects) = service("from-api", &[&a]);
    cluster.api.apply(&objects);
    cluster.api.stop();
    let (from_file, manifest) = service("from-file", &[&f]);
    let dir = tempfile::tempdir().expect("temp dir");
    let manifests = dir.path().join("manifests");
    write_file(&manifests.join("services.yaml"), &manifest);
    let kubeconfig = cluster.kubeconfig.to_str().expect("utf-8");
    let mut proxy = Proxy::start_on(dir, &manifests, &["--kubeconfig", kubeconfig]);
    assert_eq!(proxy.wait_ready(|| fetch(from_file)), "file");
    let admin = proxy.admin();
    let (status, body) = admin.healthz().expect("healthz");
    assert_eq!(status, 503, "unhealthy until the API server is listed: {body}\n{}", proxy.log());
    assert!(refuses(from_api));

    cluster.api.start_again();
    let got = eventually("the API server's Service joined", RECONNECT, || fetch(from_api));
    assert_eq!(got, "api");
    assert_eq!(admin.healthz().expect("healthz").0, 200, "{}", proxy.log());
    assert_eq!(fetch(from_file).expect("still served"), "file");
}

#[test]
fn the_api_servers_object_wins_over_a_files_and_the_conflict_is_logged_once() {
    let cluster = Cluster::start();
    let e = Endpoint::name(fresh_ip(), "e");
    let ip = fresh_ip();
    // One Service, default/web: the file says port PORT, the API server PORT + 1.
    let eps = [Ep::ready(&e)];
    let file = simple_service("web", ip, PORT, false) + &slices("web", &eps);
    let api = simple_service("web", ip, PORT + 1, false);
    cluster.api.apply(&(api + &slices("web", &eps)));
    let dir = tempfile::tempdir().expect("temp dir");
    let manifests = dir.path().join("manifests");
    write_file(&manifests.join("services.yaml"), &file);
    let kubeconfig = cluster.kubeconfig.to_str().expect("utf-8");
    let args = ["--kubeconfig", kubeconfig, "--min-sync-period", "0s"];
    let mut proxy = Proxy::start_on(dir, &manifests, &args);
    let (file_port, api_port) = (addr(ip, PORT), addr(ip, PORT + 1));
    assert_eq!(proxy.wait_ready(|| fetch(api_port)), "e");
    eventually("the file's port closed", ROUTED, || {
        if refuses(file_port) { Ok(()) } else { Err("the file's version still served") }
    });
    // More rebuilds: the conflict is not logged again.
    let generation = proxy.metric("svcproxy_routing_generation") as u64;
    proxy.hup_to_generation(generation + 2);
    let log = proxy.log();
    let conflict = |l: &&str| {
        l.contains("the API server holds this object too") && l.contains("Service default/web")
    };
    assert_eq!(log.lines().filter(conflict).count(), 1, "{log}");
}

#[test]
fn an_invalid_object_from_the_api_server_is_rejected_alone_and_keeps_its_last_good_version() {
    let cluster = Cluster::start();
    let (a, b) = (Endpoint::name(fresh_ip(), "a"), Endpoint::name(fresh_ip(), "b"));
    let (good, objects) = service("good", &[&a]);
    cluster.api.apply(&objects);
    let (kept, objects) = service("kept", &[&b]);
    cluster.api.apply(&objects);
    let mut proxy = cluster.serving(&["--min-sync-period", "0s"], good, "a");
    assert_eq!(fetch(kept).expect("served"), "b");

    // `kept` turns invalid; `bad` is invalid from the start.
    let invalid = |name: &str| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default}}\n\
             spec: {{clusterIP: {}, ports: [{{name: tcp, port: 0, targetPort: tcp}}]}}\n",
            fresh_ip()
        )
    };
    cluster.api.apply(&invalid("kept"));
    cluster.api.apply(&invalid("bad"));
    proxy.wait_metric("svcproxy_config_invalid_objects", ROUTED, |v| v == 2.0);
    proxy.assert_warned(&["default/bad (from the API server)", "spec.ports[0].port"]);
    proxy.assert_warned(&["default/kept (from the API server)", "spec.ports[0].port"]);
    assert_eq!(fetch(good).expect("the valid Service still served"), "a");
    assert_eq!(fetch(kept).expect("its last good version still served"), "b");
}

#[test]
fn services_of_another_proxy_and_headless_ones_are_filtered_on_the_server() {
    let cluster = Cluster::start();
    let (a, b) = (Endpoint::name(fresh_ip(), "a"), Endpoint::name(fresh_ip(), "b"));
    let (mine, objects) = service("mine", &[&a]);
    cluster.api.apply(&objects);
    let ip = fresh_ip();
    let theirs = simple_service("theirs", ip, PORT, false).replace(
        "  namespace: default\n",
        "  namespace: default\n  labels:\n    service.kubernetes.io/service-proxy-name: other\n",
    );
    cluster.api.apply(&(theirs + &slices("theirs", &[Ep::ready(&b)])));
    let headless_ip = fresh_ip();
    let headless = simple_service("headless", headless_ip, PORT, false).replace(
        "  namespace: default\n",
        "  namespace: default\n  labels:\n    service.kubernetes.io/headless: \"\"\n",
    );
    cluster.api.apply(&(headless + &slices("headless", &[Ep::ready(&b)])));
    let mut proxy = cluster.serving(&[], mine, "a");
    assert!(refuses(addr(ip, PORT)), "another proxy's Service is not served\n{}", proxy.log());
    assert!(refuses(addr(headless_ip, PORT)), "a headless-labelled Service is not served");
    let selectors: Vec<String> = cluster
        .api
        .requests()
        .iter()
        .filter_map(|r| r.query.iter().find(|(k, _)| k == "labelSelector").map(|(_, v)| v.clone()))
        .collect();
    let want = "!service.kubernetes.io/service-proxy-name,!service.kubernetes.io/headless";
    assert!(!selectors.is_empty() && selectors.iter().all(|s| s == want), "{selectors:?}");
    // Watches ask for bookmarks, so a restarted watch resumes from a fresh
    // resourceVersion instead of relisting.
    let watches: Vec<_> = cluster.api.requests().into_iter().filter(|r| r.is_watch()).collect();
    assert!(!watches.is_empty(), "both kinds are watched");
    for watch in &watches {
        assert_eq!(watch.param("allowWatchBookmarks"), Some("true"), "{}", watch.path);
    }
    proxy.assert_running();
}

#[test]
fn a_kubeconfig_with_tls_and_a_token_is_followed() {
    let cluster = Cluster::with(ApiServer::start_tls(), Auth::Token("s3cret".into()));
    cluster.api.accept_tokens(&["s3cret"]);
    let e = Endpoint::name(fresh_ip(), "e");
    let (frontend, objects) = service("web", &[&e]);
    cluster.api.apply(&objects);
    let mut proxy = cluster.serving(&[], frontend, "e");
    proxy.assert_running();
}

/// kube-rs reads a kubeconfig's `tokenFile` again once its cached token
/// is a minute old, as client-go does: a rotated projected token is
/// picked up without a restart.
#[test]
fn a_rotated_token_file_is_read_again() {
    let dir = tempfile::tempdir().expect("temp dir");
    let token = dir.path().join("token");
    std::fs::write(&token, "first").expect("token");
    let cluster = Cluster::with(ApiServer::start(), Auth::TokenFile(token.clone()));
    cluster.api.accept_tokens(&["first"]);
    let (a, b) = (Endpoint::name(fresh_ip(), "a"), Endpoint::name(fresh_ip(), "b"));
    let (frontend, objects) = service("web", &[&a]);
    cluster.api.apply(&objects);
    let mut proxy = cluster.serving(&[], frontend, "a");

    // Rotated: only the new token is accepted from now on, and the
    // watches are cut so the client must authenticate again.
    std::fs::write(&token, "second").expect("token");
    cluster.api.accept_tokens(&["second"]);
    cluster.api.stop();
    cluster.api.apply(&slices("web", &[Ep::ready(&b)]));
    cluster.api.start_again();
    // kube-rs reads the file again a minute after its last read; the 401s
    // until then back off (0.8 s doubling to 30 s, up to +100 % jitter),
    // so the retry that carries the new token may come ~100 s in.
    let got = eventually("served with the new token", Duration::from_secs(180), || {
        match fetch(frontend) {
            Ok(name) if name == "b" => Ok(name),
            other => Err(format!("{other:?}")),
        }
    });
    assert_eq!(got, "b");
    let used = cluster.api.requests().iter().any(|r| r.token.as_deref() == Some("second"));
    assert!(used, "requests carry the rotated token");
    proxy.assert_running();
}
