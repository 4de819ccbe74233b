//! Validation and defaulting, one rule per test, from YAML text.

use std::path::Path;

use super::*;
use crate::manifest::Loaded;

pub(crate) fn options() -> Options {
    Options {
        service_cidr: "10.96.0.0/12".parse().unwrap(),
        node_name: "node-a".to_owned(),
        service_proxy_name: None,
        http_by_port_name: false,
    }
}

pub(crate) fn model(text: &str) -> Model {
    let mut loaded = Loaded::default();
    loaded.add_text(Path::new("test.yaml"), text);
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    Model::build(&loaded.objects, &options())
}

/// A Service without clusterIP (and without nodePort when `node_port`).
pub(crate) fn service_yaml(name: &str, node_port: bool) -> String {
    let kind = if node_port { "NodePort" } else { "ClusterIP" };
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  type: {kind}\n  ports:\n  - port: 80\n"
    )
}

fn errors(text: &str) -> Vec<String> {
    model(text).errors.iter().map(ToString::to_string).collect()
}

fn svc(spec: &str) -> String {
    format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: s\n  namespace: ns\nspec:\n{spec}")
}

#[test]
fn defaults_protocol_target_port_and_type() {
    let m = model(&svc("  ports:\n  - port: 80\n"));
    let r = &m.services[0];
    assert_eq!(r.service.kind, ServiceType::ClusterIp);
    let port = &r.service.ports[0];
    assert_eq!((port.protocol, port.target.clone()), (Protocol::Tcp, TargetPort::Number(80)));
    assert_eq!(r.service.affinity, None);
}

#[test]
fn a_missing_port_is_required_and_points_at_its_line() {
    let e =
        errors(&svc("  ports:\n  - name: a\n    port: 80\n  - name: b\n    targetPort: 8000\n"));
    assert_eq!(e, ["test.yaml:10: ns/s: spec.ports[1].port: Required value"]);
}

#[test]
fn ports_out_of_range_are_invalid() {
    for bad in ["0", "70000", "-1"] {
        let e = errors(&svc(&format!("  ports:\n  - port: {bad}\n")));
        assert_eq!(
            e,
            [format!(
                "test.yaml:8: ns/s: spec.ports[0].port: Invalid value: {bad}: must be between 1 and 65535, inclusive"
            )]
        );
    }
}

#[test]
fn multi_port_services_need_unique_names() {
    let e = errors(&svc("  ports:\n  - port: 80\n  - port: 81\n"));
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(e[1].ends_with("spec.ports[1].name: Required value"));
    let e = errors(&svc("  ports:\n  - {name: web, port: 80}\n  - {name: web, port: 81}\n"));
    assert_eq!(e, ["test.yaml:9: ns/s: spec.ports[1].name: Duplicate value: \"web\""]);
}

#[test]
fn node_ports_must_be_in_range_and_on_node_port_services() {
    let e = errors(&svc("  type: NodePort\n  ports:\n  - {port: 80, nodePort: 80}\n"));
    assert!(e[0].contains("spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767"), "{e:?}");
    let e = errors(&svc("  ports:\n  - {port: 80, nodePort: 30080}\n"));
    assert!(e[0].contains("spec.ports[0].nodePort: Forbidden"), "{e:?}");
}

#[test]
fn node_ports_are_unique_across_services() {
    let a = "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {type: NodePort, ports: [{port: 80, nodePort: 30080}]}\n";
    let b = "apiVersion: v1\nkind: Service\nmetadata: {name: b}\nspec: {type: NodePort, ports: [{port: 80, nodePort: 30080}]}\n";
    let u = "apiVersion: v1\nkind: Service\nmetadata: {name: u}\nspec: {type: NodePort, ports: [{port: 80, nodePort: 30080, protocol: UDP}]}\n";
    let m = model(&format!("{b}---\n{a}---\n{u}"));
    let names: Vec<&str> = m.services.iter().map(|r| &*r.service.id.name).collect();
    assert_eq!(names, ["a", "u"], "the first in sorted order keeps it; UDP does not clash");
    assert!(m.errors[0].to_string().contains("default/b: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated"));
}

#[test]
fn session_affinity_timeout_defaults_and_is_bounded() {
    let m = model(&svc("  sessionAffinity: ClientIP\n  ports: [{port: 80}]\n"));
    assert_eq!(m.services[0].service.affinity, Some(std::time::Duration::from_secs(10_800)));
    let e = errors(&svc(
        "  sessionAffinity: ClientIP\n  sessionAffinityConfig:\n    clientIP:\n      timeoutSeconds: 86401\n  ports: [{port: 80}]\n",
    ));
    assert_eq!(
        e,
        [
            "test.yaml:10: ns/s: spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: 86401: must be greater than 0 and less than or equal to 86400"
        ]
    );
    let e = errors(&svc("  sessionAffinity: Sticky\n  ports: [{port: 80}]\n"));
    assert!(e[0].contains("spec.sessionAffinity: Unsupported value: \"Sticky\": supported values: \"ClientIP\", \"None\""));
}

#[test]
fn protocols_and_target_port_names_are_checked() {
    let e = errors(&svc("  ports:\n  - {port: 80, protocol: HTTP}\n"));
    assert!(e[0].contains("spec.ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\""));
    let e = errors(&svc("  ports:\n  - {port: 80, targetPort: Not_A_Name}\n"));
    assert!(e[0].contains("spec.ports[0].targetPort: Invalid value: \"Not_A_Name\""), "{e:?}");
    let m = model(&svc("  ports:\n  - {port: 53, protocol: UDP, targetPort: dns}\n"));
    assert_eq!(m.services[0].service.ports[0].target, TargetPort::Name("dns".into()));
}

#[test]
fn ips_must_be_ips() {
    let e = errors(&svc(
        "  clusterIP: 10.0.0.300\n  externalIPs: [127.0.0.9, nope]\n  ports: [{port: 80}]\n",
    ));
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(
        e[0].contains("spec.clusterIP: Invalid value: \"10.0.0.300\": must be a valid IP address")
    );
    assert!(e[1].contains("spec.externalIPs[1]: Invalid value: \"nope\""));
}

#[test]
fn headless_external_name_and_labels_are_not_proxied() {
    let text = "apiVersion: v1\nkind: Service\nmetadata: {name: h}\nspec: {clusterIP: None, ports: [{port: 80}]}\n---\n\
        apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {type: ExternalName, externalName: example.org}\n---\n\
        apiVersion: v1\nkind: Service\nmetadata: {name: l, labels: {service.kubernetes.io/headless: ''}}\nspec: {ports: [{port: 80}]}\n---\n\
        apiVersion: v1\nkind: Service\nmetadata: {name: p, labels: {service.kubernetes.io/service-proxy-name: other}}\nspec: {ports: [{port: 80}]}\n---\n\
        apiVersion: v1\nkind: Service\nmetadata: {name: z}\nspec: {ports: [{port: 80}]}\n";
    let m = model(text);
    let skips: Vec<(&str, Option<Skip>)> =
        m.services.iter().map(|r| (&*r.service.id.name, r.skip)).collect();
    assert_eq!(
        skips,
        [
            ("h", Some(Skip::Headless)),
            ("l", Some(Skip::HeadlessLabel)),
            ("p", Some(Skip::OtherProxy)),
            ("x", Some(Skip::ExternalName)),
            ("z", None)
        ]
    );
    let mut loaded = Loaded::default();
    loaded.add_text(Path::new("t.yaml"), text);
    let named = Options { service_proxy_name: Some("other".into()), ..options() };
    let m = Model::build(&loaded.objects, &named);
    let served: Vec<&str> =
        m.services.iter().filter(|r| r.skip.is_none()).map(|r| &*r.service.id.name).collect();
    assert_eq!(served, ["p"], "with a proxy name only its Services are served");
}

#[test]
fn an_invalid_object_does_not_hide_the_others() {
    let text = format!("{}---\n{}", svc("  ports: [{port: 0}]\n"), service_yaml("fine", false));
    let m = model(&text);
    assert_eq!(m.errors.len(), 1);
    assert_eq!(m.invalid_objects(), 1);
    assert_eq!(&*m.services[0].service.id.name, "fine");
}

#[test]
fn wildcard_and_multicast_service_ips_are_invalid() {
    let e = errors(&svc(
        "  clusterIP: 0.0.0.0\n  externalIPs: ['::', 224.0.0.1]\n  ports: [{port: 80}]\n",
    ));
    assert_eq!(e.len(), 3, "{e:?}");
    assert!(e[0].contains("spec.clusterIP: Invalid value: \"0.0.0.0\": may not be unspecified"));
    assert!(e[1].contains("spec.externalIPs[0]: Invalid value: \"::\""));
    assert!(e[2].contains("spec.externalIPs[1]: Invalid value: \"224.0.0.1\""));
}

#[test]
fn an_object_from_the_api_server_is_named_without_a_file() {
    use k8s_openapi::api::core::v1 as k8s;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use crate::manifest::{Object, Origin, Resource};

    let port = k8s::ServicePort { port: 0, ..Default::default() };
    let service = k8s::Service {
        metadata: ObjectMeta { name: Some("web".into()), ..Default::default() },
        spec: Some(k8s::ServiceSpec { ports: Some(vec![port]), ..Default::default() }),
        ..Default::default()
    };
    let object = Object::new(Origin::Api, Resource::Service(std::sync::Arc::new(service)));
    let model = Model::build([&object], &options());
    let errors: Vec<String> = model.errors.iter().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("default/web (from the API server): spec.ports[0].port: "),
        "{errors:?}"
    );
}

/// The API server checked a NodePort against its own
/// `--service-node-port-range`, which may not be the default: its
/// Services are taken as it stored them; a manifest's are held to
/// 30000-32767.
#[test]
fn a_node_port_outside_the_default_range_is_taken_from_the_api_server_only() {
    use k8s_openapi::api::core::v1 as k8s;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use crate::manifest::{Object, Origin, Resource};

    let port = k8s::ServicePort { port: 80, node_port: Some(40_000), ..Default::default() };
    let service = k8s::Service {
        metadata: ObjectMeta { name: Some("web".into()), ..Default::default() },
        spec: Some(k8s::ServiceSpec {
            type_: Some("NodePort".into()),
            cluster_ip: Some("10.96.0.10".into()),
            ports: Some(vec![port]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let service = std::sync::Arc::new(service);
    let from_api = Object::new(Origin::Api, Resource::Service(service.clone()));
    let model = Model::build([&from_api], &options());
    assert!(model.errors.is_empty(), "{:?}", model.errors);
    assert_eq!(model.services[0].service.ports[0].node_port, Some(40_000));

    let text = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  type: NodePort\n  \
                clusterIP: 10.96.0.10\n  ports: [{port: 80, nodePort: 40000}]\n";
    let mut loaded = crate::manifest::Loaded::default();
    loaded.add_text(std::path::Path::new("web.yaml"), text);
    let model = Model::build(&loaded.objects, &options());
    assert_eq!(model.errors.len(), 1, "{:?}", model.errors);
    assert!(model.errors[0].to_string().contains("spec.ports[0].nodePort"), "{:?}", model.errors);
}

/// The API server allocated the ClusterIPs of its objects: a
/// `PreferDualStack` Service it gave one family (made before the cluster
/// was dual-stack) keeps one, whatever pools `--service-cidr` has; the
/// same Service from a file gets the second family from its pool.
#[test]
fn no_cluster_ip_is_allocated_for_an_object_of_the_api_server() {
    use k8s_openapi::api::core::v1 as k8s;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use crate::manifest::{Object, Origin, Resource};

    let options =
        Options { service_cidr: "10.96.0.0/12,fd00:10:96::/112".parse().unwrap(), ..options() };
    let service = k8s::Service {
        metadata: ObjectMeta { name: Some("web".into()), ..Default::default() },
        spec: Some(k8s::ServiceSpec {
            cluster_ip: Some("10.96.0.10".into()),
            cluster_ips: Some(vec!["10.96.0.10".into()]),
            ip_families: Some(vec!["IPv4".into()]),
            ip_family_policy: Some("PreferDualStack".into()),
            ports: Some(vec![k8s::ServicePort { port: 80, ..Default::default() }]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let from_api = Object::new(Origin::Api, Resource::Service(std::sync::Arc::new(service)));
    let model = Model::build([&from_api], &options);
    assert!(model.errors.is_empty(), "{:?}", model.errors);
    assert_eq!(model.services[0].cluster_ips(), ["10.96.0.10".parse::<IpAddr>().unwrap()]);

    let text = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  \
                clusterIP: 10.96.0.10\n  ipFamilyPolicy: PreferDualStack\n  ports: [{port: 80}]\n";
    let mut loaded = crate::manifest::Loaded::default();
    loaded.add_text(std::path::Path::new("web.yaml"), text);
    let model = Model::build(&loaded.objects, &options);
    assert!(model.errors.is_empty(), "{:?}", model.errors);
    assert_eq!(model.services[0].cluster_ips().len(), 2);
}
