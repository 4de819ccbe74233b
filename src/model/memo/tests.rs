use std::path::Path;

use super::*;
use crate::manifest::Loaded;
use crate::model::tests::{options, service_yaml};
use crate::model::{ClusterIp, Model};

fn objects(text: &str) -> Vec<Object> {
    let mut loaded = Loaded::default();
    loaded.add_text(Path::new("test.yaml"), text);
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    loaded.objects
}

const SLICE: &str = "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
    metadata: {name: web-1, labels: {kubernetes.io/service-name: web}}\n\
    addressType: IPv4\nports: [{port: 80}]\nendpoints: [{addresses: [127.0.1.1]}]\n";

#[test]
fn an_unchanged_object_is_validated_once() {
    let objects = objects(&format!("{}{SLICE}", service_yaml("web", true)));
    let mut memo = Memo::default();
    let first = Model::rebuild(&objects, &options(), &mut memo);
    let second = Model::rebuild(&objects, &options(), &mut memo);
    assert_eq!(memo.kept.len(), 2);
    // Allocation filled in a copy: what is kept stays as written...
    let service = memo.kept.values().find_map(|k| match &k.entry {
        Ok(Validated::Service(s)) => Some(s.clone()),
        _ => None,
    });
    let service = service.expect("the Service is kept");
    assert_eq!(service.cluster_ip, ClusterIp::Allocate);
    assert_eq!(service.ports[0].node_port, None);
    // ...and every build allocates the same.
    for model in [&first, &second] {
        let resolved = &model.services[0];
        assert!(matches!(resolved.service.cluster_ip, ClusterIp::Set(_)));
        assert!(resolved.service.ports[0].node_port.is_some());
        assert_eq!(resolved.endpoints[0].len(), 1);
    }
    assert_eq!(first.services[0].service.cluster_ip, second.services[0].service.cluster_ip);
    assert_eq!(first.services[0].service.ports, second.services[0].service.ports);
}

#[test]
fn a_service_with_nothing_to_allocate_is_shared_with_the_memo() {
    let text = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\n\
        spec: {clusterIP: 10.96.0.10, ports: [{port: 80}]}\n";
    let objects = objects(text);
    let mut memo = Memo::default();
    let first = Model::rebuild(&objects, &options(), &mut memo);
    let second = Model::rebuild(&objects, &options(), &mut memo);
    assert!(Arc::ptr_eq(&first.services[0].service, &second.services[0].service));
}

#[test]
fn errors_are_reported_on_every_build_and_objects_gone_are_forgotten() {
    let bad = "apiVersion: v1\nkind: Service\nmetadata: {name: bad}\nspec: {ports: [{port: 0}]}\n";
    let objects = objects(bad);
    let mut memo = Memo::default();
    for _ in 0..2 {
        let model = Model::rebuild(&objects, &options(), &mut memo);
        assert_eq!(model.errors.len(), 1, "{:?}", model.errors);
        assert!(model.services.is_empty());
    }
    let _ = Model::rebuild(&[], &options(), &mut memo);
    assert!(memo.kept.is_empty());
}

#[test]
fn a_build_without_a_memo_keeps_nothing() {
    let objects = objects(&service_yaml("web", false));
    let mut memo = Memo::default();
    let _ = Model::assemble(&objects, &options(), &mut memo, crate::model::Purpose::Once);
    assert!(memo.kept.is_empty());
}
