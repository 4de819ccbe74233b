//! Request paths to what they name, as the API server lays them out:
//! `/api/v1[/namespaces/{ns}]/services[/{name}]`,
//! `/apis/discovery.k8s.io/v1[/namespaces/{ns}]/endpointslices[/{name}]` and
//! `/api/v1/nodes[/{name}]`, plus the discovery documents.

use super::store::Kind;

/// What a path names.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Route {
    Version,
    /// `/api`.
    LegacyGroup,
    /// `/apis`.
    Groups,
    /// `/apis/discovery.k8s.io`.
    Group,
    /// `/api/v1` or `/apis/discovery.k8s.io/v1`: the resource list.
    Resources(Kind),
    /// A collection, in one namespace or all of them.
    Collection {
        kind: Kind,
        namespace: Option<String>,
    },
    /// One object.
    Object {
        kind: Kind,
        namespace: String,
        name: String,
    },
    Unknown,
}

/// The route of `path`.
pub(super) fn route(path: &str) -> Route {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["version"] => Route::Version,
        ["api"] => Route::LegacyGroup,
        ["apis"] => Route::Groups,
        ["apis", "discovery.k8s.io"] => Route::Group,
        ["api", "v1", "nodes"] => Route::Collection { kind: Kind::Node, namespace: None },
        ["api", "v1", "nodes", name] => {
            Route::Object { kind: Kind::Node, namespace: String::new(), name: (*name).to_owned() }
        }
        ["api", "v1", rest @ ..] => resource(Kind::Service, rest),
        ["apis", "discovery.k8s.io", "v1", rest @ ..] => resource(Kind::EndpointSlice, rest),
        _ => Route::Unknown,
    }
}

/// The route of the segments after a group version that serves `kind`.
fn resource(kind: Kind, rest: &[&str]) -> Route {
    let named = |plural: &str| plural == kind.plural();
    match rest {
        [] => Route::Resources(kind),
        [plural] if named(plural) => Route::Collection { kind, namespace: None },
        ["namespaces", ns, plural] if named(plural) => {
            Route::Collection { kind, namespace: Some((*ns).to_owned()) }
        }
        ["namespaces", ns, plural, name] if named(plural) => {
            Route::Object { kind, namespace: (*ns).to_owned(), name: (*name).to_owned() }
        }
        _ => Route::Unknown,
    }
}
