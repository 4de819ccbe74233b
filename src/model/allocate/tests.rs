use super::*;
use crate::model::tests::{model, service_yaml};
use std::collections::HashSet;

fn cidr() -> IpNet {
    "10.96.0.0/12".parse().unwrap()
}

#[test]
fn hash_is_fnv1a_64() {
    // Reference values of FNV-1a 64: allocation must never change across versions.
    assert_eq!(fnv1a(&[""]), 0xcbf2_9ce4_8422_2325);
    assert_eq!(fnv1a(&["a"]), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(fnv1a(&["a", "b"]), fnv1a(&["a/b"]));
}

#[test]
fn allocation_ignores_file_order() {
    let docs: Vec<String> =
        (0..60).map(|i| service_yaml(&format!("svc-{i}"), i % 3 == 0)).collect();
    let forward = model(&docs.join("---\n"));
    let mut reversed = docs.clone();
    reversed.reverse();
    let backward = model(&reversed.join("---\n"));
    let summary = |m: &crate::model::Model| -> Vec<String> {
        m.services
            .iter()
            .map(|r| {
                format!("{} {:?} {:?}", r.service.id, r.cluster_ips(), r.service.ports[0].node_port)
            })
            .collect()
    };
    assert!(forward.errors.is_empty(), "{:?}", forward.errors);
    assert_eq!(summary(&forward), summary(&backward));
    let ips: HashSet<Vec<IpAddr>> =
        forward.services.iter().map(|r| r.cluster_ips().to_vec()).collect();
    assert_eq!(ips.len(), 60, "every Service gets its own ClusterIP");
}

#[test]
fn allocated_addresses_stay_inside_the_cidr_and_skip_network_and_broadcast() {
    let small: IpNet = "10.0.0.0/30".parse().unwrap();
    let (base, size) = host_range(small).unwrap();
    assert_eq!((base, size), (1, 2));
    let ips: Vec<IpAddr> = (0..size).map(|o| add(small.network(), base + o)).collect();
    assert_eq!(ips, ["10.0.0.1".parse::<IpAddr>().unwrap(), "10.0.0.2".parse().unwrap()]);
    assert!(host_range("10.0.0.0/31".parse().unwrap()).is_none());
    assert_eq!(host_range("fd00::/120".parse().unwrap()), Some((1, 255)));
    assert!(host_range("10.0.0.1/32".parse().unwrap()).is_none());
    for r in model(&service_yaml("one", false)).services {
        assert!(cidr().contains(&r.cluster_ips()[0]));
    }
}

#[test]
fn explicit_values_win_over_hashed_ones() {
    let auto = model(&service_yaml("first", true));
    let taken_ip = auto.services[0].cluster_ips()[0];
    let taken_port = auto.services[0].service.ports[0].node_port.unwrap();
    // Another Service claims exactly those values explicitly.
    let explicit = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: zzz}}\nspec:\n  type: NodePort\n  \
         clusterIP: {taken_ip}\n  ports: [{{port: 80, nodePort: {taken_port}}}]\n"
    );
    let both = model(&format!("{}---\n{explicit}", service_yaml("first", true)));
    assert!(both.errors.is_empty(), "{:?}", both.errors);
    let first = &both.services[0];
    let zzz = &both.services[1];
    assert_eq!(zzz.cluster_ips(), [taken_ip]);
    assert_eq!(zzz.service.ports[0].node_port, Some(taken_port));
    assert_ne!(first.cluster_ips(), [taken_ip]);
    assert_ne!(first.service.ports[0].node_port, Some(taken_port));
}

#[test]
fn a_duplicate_explicit_cluster_ip_rejects_the_later_service_only() {
    let text = "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {clusterIP: 127.96.0.1, ports: [{port: 80}]}\n---\n\
                apiVersion: v1\nkind: Service\nmetadata: {name: b}\nspec: {clusterIP: 127.96.0.1, ports: [{port: 81}]}\n";
    let m = model(text);
    assert_eq!(m.services.len(), 1);
    assert_eq!(&*m.services[0].service.id.name, "a");
    let error = m.errors[0].to_string();
    assert!(error.contains("default/b: spec.clusterIP: Invalid value: \"127.96.0.1\": provided IP is already allocated"), "{error}");
}

#[test]
fn node_ports_are_unique_per_protocol() {
    let mut taken = FxHashSet::default();
    let tcp = free_node_port(7, Protocol::Tcp, &mut taken).unwrap();
    let udp = free_node_port(7, Protocol::Udp, &mut taken).unwrap();
    let tcp2 = free_node_port(7, Protocol::Tcp, &mut taken).unwrap();
    assert_eq!(tcp, udp, "TCP and UDP may share a number");
    assert_eq!(tcp2, tcp + 1, "a collision probes upward");
    assert!(NODE_PORTS.contains(&tcp));
}

#[test]
fn node_port_range_is_exhausted_cleanly() {
    let mut taken = FxHashSet::default();
    let count = (0..3000).filter_map(|i| free_node_port(i, Protocol::Tcp, &mut taken)).count();
    assert_eq!(count, 2768);
}

fn load_balancer(name: &str, extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\n\
         spec:\n  type: LoadBalancer\n  externalTrafficPolicy: Local\n  ports: [{{port: 80}}]\n{extra}"
    )
}

#[test]
fn a_local_load_balancer_gets_a_health_check_node_port_of_its_own() {
    let one = model(&load_balancer("lb", ""));
    assert!(one.errors.is_empty(), "{:?}", one.errors);
    let service = &one.services[0].service;
    let health = service.health_check_node_port.expect("allocated");
    assert!(NODE_PORTS.contains(&health));
    assert_ne!(Some(health), service.ports[0].node_port);
    // A pure function of the objects: the same again, whatever else is there.
    let again = model(&format!("{}---\n{}", service_yaml("other", true), load_balancer("lb", "")));
    let same = again.services.iter().find(|r| &*r.service.id.name == "lb").expect("lb");
    assert_eq!(same.service.health_check_node_port, Some(health));
}

#[test]
fn a_health_check_node_port_taken_by_a_node_port_is_rejected() {
    let first = "apiVersion: v1\nkind: Service\nmetadata: {name: a-first}\n\
                 spec: {type: NodePort, ports: [{port: 80, nodePort: 30555}]}\n";
    let second = load_balancer("b-second", "  healthCheckNodePort: 30555\n");
    let both = model(&format!("{first}---\n{second}"));
    let names: Vec<&str> = both.services.iter().map(|r| &*r.service.id.name).collect();
    assert_eq!(names, ["a-first"]);
    let error = both.errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n");
    assert!(
        error.contains(
            "spec.healthCheckNodePort: Invalid value: 30555: provided port is already allocated"
        ),
        "{error}"
    );
}
