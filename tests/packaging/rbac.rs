//! `docker/00-rbac.yaml`: the ServiceAccount `docker/daemonset.yaml` runs as,
//! with its token mounted; a ClusterRole granting what svcproxy reads and
//! nothing more; the binding between the two.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Subject};

use crate::daemonset::{api_daemon_set, pod_spec};
use crate::{docker, kube};

/// `(apiGroup, resource, verb)`: one permission.
type Grant = (String, String, String);

/// What svcproxy reads: the Services and EndpointSlices it routes and its
/// Node, as kube-proxy's `system:node-proxier` does. No events: svcproxy
/// emits none.
const READS: &[(&str, &str)] =
    &[("", "services"), ("discovery.k8s.io", "endpointslices"), ("", "nodes")];

/// Only reads.
const VERBS: &[&str] = &["get", "list", "watch"];

/// The objects of `docker/00-rbac.yaml`.
struct Objects {
    service_account: ServiceAccount,
    cluster_role: ClusterRole,
    binding: ClusterRoleBinding,
}

fn objects() -> Objects {
    let path = docker("00-rbac.yaml");
    Objects {
        service_account: kube::the(&path),
        cluster_role: kube::the(&path),
        binding: kube::the(&path),
    }
}

/// Every permission of `role`, checking that each rule names its groups,
/// resources and verbs one by one (no `*`, no resourceNames, no URLs).
fn grants(role: &ClusterRole) -> BTreeSet<Grant> {
    assert!(role.aggregation_rule.is_none(), "an aggregated role grants what others add");
    let mut grants = BTreeSet::new();
    for rule in role.rules.iter().flatten() {
        assert!(rule.non_resource_urls.is_none() && rule.resource_names.is_none(), "{rule:?}");
        let (groups, resources) =
            (rule.api_groups.iter().flatten(), rule.resources.iter().flatten());
        for (group, resource) in groups.flat_map(|g| resources.clone().map(move |r| (g, r))) {
            for verb in &rule.verbs {
                assert!(![group, resource, verb].contains(&&"*".to_owned()), "{rule:?}");
                grants.insert((group.clone(), resource.clone(), verb.clone()));
            }
        }
    }
    grants
}

#[test]
fn cluster_role_grants_reading_services_endpointslices_and_nodes_only() {
    let Objects { cluster_role, .. } = objects();
    let expected: BTreeSet<Grant> = READS
        .iter()
        .flat_map(|(group, resource)| {
            VERBS.iter().map(|verb| (group.to_string(), resource.to_string(), verb.to_string()))
        })
        .collect();
    assert_eq!(grants(&cluster_role), expected);
}

#[test]
fn cluster_role_binding_binds_the_role_to_the_daemonsets_service_account() {
    let Objects { service_account, cluster_role, binding } = objects();
    let role_ref = &binding.role_ref;
    assert_eq!(role_ref.api_group, "rbac.authorization.k8s.io");
    assert_eq!(role_ref.kind, "ClusterRole");
    assert_eq!(Some(&role_ref.name), cluster_role.metadata.name.as_ref());

    let daemon_set = api_daemon_set();
    let account = pod_spec(&daemon_set).service_account_name.clone().expect("serviceAccountName");
    let expected = Subject {
        kind: "ServiceAccount".to_owned(),
        name: account.clone(),
        namespace: daemon_set.metadata.namespace.clone(),
        api_group: None,
    };
    assert_eq!(binding.subjects.as_deref(), Some(&[expected][..]), "one subject: svcproxy's pods");

    assert_eq!(service_account.metadata.name, Some(account), "the DaemonSet's ServiceAccount");
    assert_eq!(service_account.metadata.namespace, daemon_set.metadata.namespace);
    assert_ne!(
        service_account.automount_service_account_token,
        Some(false),
        "the in-cluster configuration reads the account's mounted token"
    );
}
