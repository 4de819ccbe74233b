//! The kinds of the API groups svcproxy reads, to tell a kind it skips
//! (a ConfigMap beside the Services) from one that does not exist (`Servce`).

use k8s_openapi::Resource as _;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::discovery::v1 as discovery;

use super::near;

/// Every kind of core `v1` that the API server serves (its resources, as
/// kubectl's REST mapper knows them), taken from k8s-openapi's types.
const CORE_V1: &[&str] = &[
    core::Binding::KIND,
    core::ComponentStatus::KIND,
    core::ConfigMap::KIND,
    core::Endpoints::KIND,
    core::Event::KIND,
    core::LimitRange::KIND,
    core::Namespace::KIND,
    core::Node::KIND,
    core::PersistentVolume::KIND,
    core::PersistentVolumeClaim::KIND,
    core::Pod::KIND,
    core::PodTemplate::KIND,
    core::ReplicationController::KIND,
    core::ResourceQuota::KIND,
    core::Secret::KIND,
    core::Service::KIND,
    core::ServiceAccount::KIND,
];

/// Every kind of `discovery.k8s.io/v1`.
const DISCOVERY_V1: &[&str] = &[discovery::EndpointSlice::KIND];

/// The kinds svcproxy reads, under any version.
const READ: &[&str] = &["Service", "Endpoints", "Pod", "Node", "EndpointSlice"];

/// Why a kind svcproxy does not read cannot be skipped: kubectl's
/// `no matches for kind "Servce" in version "v1"`, with the kind it most
/// likely means. `None` for a kind that exists, or one of a group svcproxy
/// does not read (a Deployment, a custom resource): those are skipped.
pub(crate) fn no_match(api_version: &str, kind: &str) -> Option<String> {
    let known = match api_version {
        "v1" => CORE_V1,
        "discovery.k8s.io/v1" => DISCOVERY_V1,
        // A kind svcproxy reads under a version that has none of them.
        _ if READ.contains(&kind) => &[],
        _ => return None,
    };
    if known.contains(&kind) {
        return None;
    }
    let mut message = format!("no matches for kind \"{kind}\" in version \"{api_version}\"");
    if let Some(meant) = near::nearest(kind, known) {
        message.push_str(&format!(" (did you mean {meant}?)"));
    }
    Some(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_misspelt_kind_is_no_match_with_a_suggestion() {
        let message = no_match("v1", "Servce");
        assert_eq!(
            message.as_deref(),
            Some("no matches for kind \"Servce\" in version \"v1\" (did you mean Service?)")
        );
        assert!(no_match("discovery.k8s.io/v1", "EndpointSlices").is_some());
    }

    #[test]
    fn kinds_that_exist_and_other_groups_are_skipped() {
        for kind in ["ConfigMap", "ServiceAccount", "Namespace", "Secret", "Node"] {
            assert_eq!(no_match("v1", kind), None, "{kind}");
        }
        assert_eq!(no_match("apps/v1", "Deployment"), None);
        assert_eq!(no_match("example.com/v1", "Servce"), None);
        assert!(no_match("v2", "Service").is_some(), "a read kind under another version");
    }
}
