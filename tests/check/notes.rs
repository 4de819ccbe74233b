//! `check` says why a Service takes no traffic, one note per Service,
//! in words precise about the cause: no Pod matches its selector, none has
//! a podIP, none names the targetPort; no selector and nothing names it;
//! EndpointSlices or Endpoints that list nothing or on other ports;
//! endpoints none of which is ready or serving-terminating; a `Local`
//! traffic policy with no endpoint on this node; endpoints only of a family
//! the Service has no ClusterIP of.

use std::fs;

use crate::support::{self, check};

/// The note lines `check` prints for `yaml`, with `flags`; the run must
/// succeed (every object valid).
fn notes(yaml: &str, flags: &[&str]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("manifests.yaml");
    fs::write(&file, yaml).unwrap();
    let mut args = vec![file.to_str().unwrap()];
    args.extend(flags);
    let out = check(args);
    out.assert_no_panic();
    assert_eq!(out.code(), Some(0), "{out}");
    out.stderr_lines().into_iter().filter(|l| support::is_note(l)).map(str::to_owned).collect()
}

/// The one note about `id` that holds `part`; fails showing every note.
fn one_note(notes: &[String], id: &str, part: &str) -> String {
    let found: Vec<&String> =
        notes.iter().filter(|n| n.contains(&format!("{id}: ")) && n.contains(part)).collect();
    assert_eq!(found.len(), 1, "one note on {id} with {part:?}: {notes:#?}");
    found[0].clone()
}

fn service(name: &str, spec: &str) -> String {
    format!("---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n{spec}")
}

fn slice(service: &str, family: &str, ports: &str, endpoints: &str) -> String {
    format!(
        "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {service}-x\n  \
         labels: {{kubernetes.io/service-name: {service}}}\naddressType: {family}\n\
         ports: {ports}\nendpoints: {endpoints}\n"
    )
}

const SELECTED: &str = "  selector: {app: web}\n  ports: [{port: 80, targetPort: web}]\n";

#[test]
fn the_seed_services_say_no_pod_matches_their_selector() {
    let out = check(["config/seed"]);
    out.assert_no_panic();
    let lines = out.stderr_lines();
    for (name, selector) in [("svc-1", "type=web"), ("svc-2", "type=db")] {
        let want = format!(
            "note: default/{name}: no endpoints: no Pod matches selector {selector}; no \
             EndpointSlice or Endpoints names it"
        );
        assert!(lines.contains(&want.as_str()), "{want}\n{out}");
    }
}

#[test]
fn pods_that_match_without_a_pod_ip_are_named_as_the_cause() {
    let pod = "---\napiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {app: web}}\n\
               spec: {containers: [{name: c, image: x}]}\n";
    let notes = notes(&(service("web", SELECTED) + pod), &[]);
    let note = one_note(&notes, "default/web", "no endpoints");
    assert!(
        note.ends_with(
            "no endpoints: 1 Pod matches selector app=web, none with a podIP (not scheduled or \
             not started); no EndpointSlice or Endpoints names it"
        ),
        "{note}"
    );
}

#[test]
fn pods_without_the_named_target_port_are_named_as_the_cause() {
    let pod = "---\napiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {app: web}}\n\
               spec: {containers: [{name: c, image: x, ports: [{name: http, containerPort: 8080}]}]}\n\
               status: {phase: Running, podIP: 10.1.0.1}\n";
    let notes = notes(&(service("web", SELECTED) + pod), &[]);
    let note = one_note(&notes, "default/web", "no endpoints");
    assert!(
        note.ends_with(
            "no endpoints: 1 Pod with a podIP matches selector app=web, but none has a \
             container port named web/TCP (the targetPort)"
        ),
        "{note}"
    );
}

#[test]
fn a_service_without_selector_or_endpoints_is_said_to_have_neither() {
    let notes = notes(&service("bare", "  ports: [{port: 80}]\n"), &[]);
    let note = one_note(&notes, "default/bare", "no endpoints");
    assert!(
        note.ends_with(
            "no endpoints: it has no selector, and no EndpointSlice or Endpoints names it"
        ),
        "{note}"
    );
}

#[test]
fn slices_and_endpoints_on_other_ports_are_named_with_both_sides() {
    let spec = "  ports: [{name: http, port: 80}]\n";
    let yaml = service("sliced", spec)
        + &slice(
            "sliced",
            "IPv4",
            "[{name: web, port: 8080}]",
            "[{addresses: [10.1.0.1]}, {addresses: [10.1.0.2]}]",
        )
        + &service("listed", spec)
        + "---\napiVersion: v1\nkind: Endpoints\nmetadata: {name: listed}\nsubsets:\n  \
           - addresses: [{ip: 10.1.0.3}]\n    ports: [{name: http, port: 8080, protocol: UDP}]\n";
    let notes = notes(&yaml, &[]);
    let note = one_note(&notes, "default/sliced", "no endpoints");
    assert!(
        note.ends_with(
            "no endpoints: its EndpointSlices list 2 addresses on web/TCP, which match no \
             ServicePort by name and protocol (http/TCP)"
        ),
        "{note}"
    );
    let note = one_note(&notes, "default/listed", "no endpoints");
    assert!(
        note.ends_with(
            "no endpoints: its Endpoints object lists 1 address on http/UDP, which match no \
             ServicePort by name and protocol (http/TCP)"
        ),
        "{note}"
    );
}

#[test]
fn a_slice_without_endpoints_is_said_to_list_no_address() {
    let yaml =
        service("empty", "  ports: [{port: 80}]\n") + &slice("empty", "IPv4", "[{port: 80}]", "[]");
    let notes = notes(&yaml, &[]);
    let note = one_note(&notes, "default/empty", "no endpoints");
    assert!(note.ends_with("no endpoints: its EndpointSlices list no address"), "{note}");
}

#[test]
fn endpoints_none_of_which_is_ready_or_serving_terminating_are_counted() {
    let yaml = service("sick", "  ports: [{port: 80}]\n")
        + &slice(
            "sick",
            "IPv4",
            "[{port: 80}]",
            "[{addresses: [10.1.0.1], conditions: {ready: false}}, \
              {addresses: [10.1.0.2], conditions: {ready: false, serving: true}}]",
        );
    let notes = notes(&yaml, &[]);
    let note = one_note(&notes, "default/sick", "no endpoints");
    assert!(
        note.contains(
            "no endpoints: 2 endpoints listed, none is ready, and none is serving and terminating"
        ),
        "{note}"
    );
}

#[test]
fn a_local_traffic_policy_with_no_endpoint_on_this_node_is_noted() {
    let spec = "  type: NodePort\n  internalTrafficPolicy: Local\n  externalTrafficPolicy: Local\n  \
                ports: [{port: 80, nodePort: 30080}]\n";
    let endpoints = "[{addresses: [10.1.0.1], nodeName: other-node}]";
    let yaml = service("local", spec) + &slice("local", "IPv4", "[{port: 80}]", endpoints);
    let notes = notes(&yaml, &["--node-name", "this-node"]);
    for policy in ["internalTrafficPolicy", "externalTrafficPolicy"] {
        let note = one_note(&notes, "default/local", policy);
        assert!(
            note.contains(&format!(
                "{policy}: Local: no usable endpoint is on this node (this-node; see \
                 --node-name)"
            )),
            "{note}"
        );
        assert!(note.contains("the ENDPOINTS column lists the whole cluster's"), "{note}");
    }
    assert!(!notes.iter().any(|n| n.contains("no endpoints")), "{notes:#?}");
    // On the node that has the endpoint, nothing to say.
    let notes = notes_on(&yaml, "other-node");
    assert!(!notes.iter().any(|n| n.contains("TrafficPolicy")), "{notes:#?}");
}

fn notes_on(yaml: &str, node: &str) -> Vec<String> {
    notes(yaml, &["--node-name", node])
}

#[test]
fn endpoints_only_of_a_family_without_cluster_ip_are_noted() {
    let yaml = service("v4", "  clusterIP: 10.96.0.10\n  ports: [{port: 80}]\n")
        + &slice("v4", "IPv6", "[{port: 80}]", "[{addresses: [\"fd00::1\"]}]");
    let notes = notes(&yaml, &[]);
    let note = one_note(&notes, "default/v4", "family");
    assert!(
        note.contains(
            "no endpoints of its family: its endpoints are IPv6 only and it has no IPv6 \
             ClusterIP, so 10.96.0.10 (IPv4) refuses every connection"
        ),
        "{note}"
    );
}

#[test]
fn a_service_with_usable_endpoints_gets_no_such_note() {
    let yaml = service("fine", "  ports: [{port: 80}]\n")
        + &slice("fine", "IPv4", "[{port: 80}]", "[{addresses: [10.1.0.1]}]");
    let notes = notes(&yaml, &[]);
    assert!(notes.iter().all(|n| !n.contains("default/fine")), "{notes:#?}");
}
