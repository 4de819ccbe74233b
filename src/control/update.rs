//! A manifest edit read as the API server reads an update.
//!
//! A NodePort Service changed back to `type: ClusterIP` by its type alone
//! still lists its nodePorts. The API server rejects nodePorts on a
//! ClusterIP Service when it is created, but on an update it drops the ones
//! the new type does not need and the edit left as they were
//! (`dropTypeDependentFields`): `kubectl edit` and the e2e tests change
//! the type that way. An edited manifest is an update, so the same edit
//! here serves the Service without its nodePorts, and goes on doing so
//! while the file keeps them unchanged.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::good::Good;
use crate::manifest::{Object, ObjectKey, Resource};

/// The nodePorts dropped from each Service, while its file still lists them.
#[derive(Debug, Default)]
pub(super) struct Updates {
    dropped: FxHashMap<ObjectKey, Vec<i32>>,
}

// === impl Updates ===

impl Updates {
    /// The objects of `current` to build from in another version: each
    /// Service whose type needs no nodePorts but which lists exactly the
    /// ones its last served version had (with a type that needed them, or
    /// dropped already), without them.
    pub(super) fn apply<'a>(
        &mut self,
        current: impl Iterator<Item = &'a Object>,
        good: &Good,
    ) -> Vec<Object> {
        let leftover: Vec<(&Object, Vec<i32>)> =
            current.filter_map(|o| Some((o, leftover(o)?))).collect();
        if leftover.is_empty() {
            self.dropped.clear();
            return Vec::new();
        }
        let last = good.get(leftover.iter().map(|(o, _)| o.key()));
        let mut dropped = FxHashMap::default();
        let mut patched = Vec::new();
        for (object, ports) in leftover {
            let before = self.dropped.get(object.key()).cloned().or_else(|| {
                let served = last.iter().find(|l| l.key() == object.key())?;
                node_ports(served).filter(|(needed, _)| *needed).map(|(_, ports)| ports)
            });
            if before.as_ref() == Some(&ports) {
                patched.extend(without_node_ports(object));
                dropped.insert(object.key().clone(), ports);
            }
        }
        self.dropped = dropped;
        patched
    }
}

/// The nodePorts of a Service whose type needs none, sorted; `None` for
/// anything else.
fn leftover(object: &Object) -> Option<Vec<i32>> {
    let (needed, ports) = node_ports(object)?;
    (!needed && !ports.is_empty()).then_some(ports)
}

/// Whether a Service's type needs nodePorts, and the nodePorts it lists,
/// sorted; `None` when `object` is not a Service.
fn node_ports(object: &Object) -> Option<(bool, Vec<i32>)> {
    let Resource::Service(service) = &object.resource else {
        return None;
    };
    let spec = service.spec.as_ref()?;
    let needed = matches!(spec.type_.as_deref(), Some("NodePort" | "LoadBalancer"));
    let ports = spec.ports.as_deref().unwrap_or_default();
    let mut listed: Vec<i32> =
        ports.iter().filter_map(|p| p.node_port).filter(|n| *n != 0).collect();
    listed.sort_unstable();
    Some((needed, listed))
}

fn without_node_ports(object: &Object) -> Option<Object> {
    let Resource::Service(service) = &object.resource else {
        return None;
    };
    let mut service = (**service).clone();
    let ports = service.spec.as_mut().and_then(|s| s.ports.as_mut());
    for port in ports.into_iter().flatten() {
        port.node_port = None;
    }
    let mut object = object.clone();
    object.resource = Resource::Service(Arc::new(service));
    Some(object)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use rustc_hash::FxHashSet;

    use super::*;
    use crate::manifest::Loaded;

    fn service(kind: &str, node_port: u16) -> Object {
        let text = format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: web}}\n\
             spec: {{type: {kind}, ports: [{{port: 80, nodePort: {node_port}}}]}}\n"
        );
        let mut loaded = Loaded::default();
        loaded.add_text(Path::new("web.yaml"), &text);
        loaded.objects.remove(0)
    }

    fn served(objects: Vec<Object>) -> Good {
        Good::new(vec![Arc::new(objects)], FxHashSet::default(), Vec::new())
    }

    fn node_ports_of(objects: &[Object]) -> Vec<Option<(bool, Vec<i32>)>> {
        objects.iter().map(node_ports).collect()
    }

    #[test]
    fn a_type_changed_alone_drops_the_node_ports_and_goes_on_dropping_them() {
        let mut updates = Updates::default();
        let edited = service("ClusterIP", 30080);
        let good = served(vec![service("NodePort", 30080)]);
        let patched = updates.apply([&edited].into_iter(), &good);
        assert_eq!(node_ports_of(&patched), [Some((false, vec![]))]);
        // The next build: the patched version is what was served.
        let good = Good::new(
            vec![Arc::new(vec![edited.clone()])],
            FxHashSet::from_iter([edited.key().clone()]),
            patched,
        );
        let again = updates.apply([&edited].into_iter(), &good);
        assert_eq!(node_ports_of(&again), [Some((false, vec![]))]);
    }

    #[test]
    fn a_node_port_changed_with_the_type_or_never_served_stays_an_error() {
        let mut updates = Updates::default();
        let good = served(vec![service("NodePort", 30080)]);
        assert!(updates.apply([&service("ClusterIP", 30081)].into_iter(), &good).is_empty());
        // As created: nothing to update.
        let fresh = Good::default();
        assert!(updates.apply([&service("ClusterIP", 30080)].into_iter(), &fresh).is_empty());
        // Once the file drops the leftover nodePort, nothing is remembered.
        let edited = service("ClusterIP", 30080);
        assert_eq!(updates.apply([&edited].into_iter(), &good).len(), 1);
        let plain = service("NodePort", 30080);
        assert!(updates.apply([&plain].into_iter(), &good).is_empty());
        assert!(updates.apply([&edited].into_iter(), &Good::default()).is_empty());
    }
}
