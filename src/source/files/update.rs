//! A manifest edit read as the API server reads an update.
//!
//! A NodePort Service changed back to `type: ClusterIP` by its type alone
//! still lists its nodePorts; a LoadBalancer whose `externalTrafficPolicy`
//! went back to `Cluster` still lists its healthCheckNodePort. The API
//! server rejects such fields when a Service is created, but on an update
//! it drops the ones the new spec no longer needs if the edit left them as
//! they were (`dropTypeDependentFields`): `kubectl edit` and the e2e tests
//! change the type that way. An edited manifest is an update, so the same
//! edit here serves the Service without those fields, and goes on doing so
//! while the file keeps them. What this process has not seen served (a
//! restart, `check`) is a create, and is rejected: the rebuild warns about
//! it each time.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::manifest::{Object, ObjectKey, Resource};
use crate::source::LastGood;

/// The update rule's memory: the fields dropped from each Service, while
/// its file still lists them.
#[derive(Clone, Debug, Default)]
pub struct UpdateRule {
    dropped: FxHashMap<ObjectKey, Fields>,
}

/// A Service's type-dependent fields, as far as they are set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Fields {
    /// nodePorts, sorted.
    node_ports: Vec<i32>,
    health_check: Option<i32>,
}

/// What a Service's spec needs and lists.
struct Spec {
    /// Its type takes nodePorts (NodePort, LoadBalancer).
    needs_node_ports: bool,
    /// A LoadBalancer with `externalTrafficPolicy: Local`.
    needs_health_check: bool,
    listed: Fields,
}

// === impl UpdateRule ===

impl UpdateRule {
    /// The objects of `current` to build from in another version: each
    /// Service that lists fields its spec does not need, all of which its
    /// last served version had (and needed) or which were dropped already,
    /// without them. Also the rule's memory after this build (`self` is
    /// left as it was, for a build that is not committed).
    pub fn apply<'a>(
        &self,
        current: impl Iterator<Item = &'a Object>,
        last_good: &LastGood,
    ) -> (Vec<Object>, Self) {
        let leftover: Vec<(&Object, Spec)> = current
            .filter_map(|o| Some((o, spec(o)?)))
            .filter(|(_, s)| s.extra_node_ports() || s.extra_health_check())
            .collect();
        if leftover.is_empty() {
            return (Vec::new(), Self::default());
        }
        // Only a Service not seen dropping yet pays for the index of
        // everything served.
        let unseen =
            leftover.iter().map(|(o, _)| o.key()).filter(|k| !self.dropped.contains_key(*k));
        let last = last_good.get(unseen);
        let mut dropped = FxHashMap::default();
        let mut patched = Vec::new();
        for (object, now) in leftover {
            let before =
                self.dropped.get(object.key()).cloned().or_else(|| {
                    Some(spec(last.iter().find(|l| l.key() == object.key())?)?.needed())
                });
            let Some(before) = before else { continue };
            // sameNodePorts: every nodePort left is one the Service had.
            let node_ports = now.extra_node_ports()
                && now.listed.node_ports.iter().all(|p| before.node_ports.contains(p));
            let health_check =
                now.extra_health_check() && now.listed.health_check == before.health_check;
            if node_ports || health_check {
                patched.extend(without(object, node_ports, health_check));
                dropped.insert(object.key().clone(), before);
            }
        }
        (patched, Self { dropped })
    }
}

// === impl Spec ===

impl Spec {
    /// Lists nodePorts its type does not take.
    fn extra_node_ports(&self) -> bool {
        !self.needs_node_ports && !self.listed.node_ports.is_empty()
    }

    /// Lists a healthCheckNodePort it does not need.
    fn extra_health_check(&self) -> bool {
        !self.needs_health_check && self.listed.health_check.is_some()
    }

    /// The fields it lists that it needs: what an update may leave behind.
    fn needed(self) -> Fields {
        Fields {
            node_ports: if self.needs_node_ports { self.listed.node_ports } else { Vec::new() },
            health_check: self.listed.health_check.filter(|_| self.needs_health_check),
        }
    }
}

/// What `object` needs and lists; `None` when it is not a Service.
fn spec(object: &Object) -> Option<Spec> {
    let Resource::Service(service) = &object.resource else {
        return None;
    };
    let spec = service.spec.as_ref()?;
    let kind = spec.type_.as_deref();
    let ports = spec.ports.as_deref().unwrap_or_default();
    let mut node_ports: Vec<i32> =
        ports.iter().filter_map(|p| p.node_port).filter(|n| *n != 0).collect();
    node_ports.sort_unstable();
    Some(Spec {
        needs_node_ports: matches!(kind, Some("NodePort" | "LoadBalancer")),
        needs_health_check: kind == Some("LoadBalancer")
            && spec.external_traffic_policy.as_deref() == Some("Local"),
        listed: Fields {
            node_ports,
            health_check: spec.health_check_node_port.filter(|n| *n != 0),
        },
    })
}

fn without(object: &Object, node_ports: bool, health_check: bool) -> Option<Object> {
    let Resource::Service(service) = &object.resource else {
        return None;
    };
    let mut service = (**service).clone();
    let spec = service.spec.as_mut()?;
    if node_ports {
        for port in spec.ports.iter_mut().flatten() {
            port.node_port = None;
        }
    }
    if health_check {
        spec.health_check_node_port = None;
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

    fn service(spec: &str) -> Object {
        let text =
            format!("apiVersion: v1\nkind: Service\nmetadata: {{name: web}}\nspec: {spec}\n");
        let mut loaded = crate::manifest::Loaded::default();
        loaded.add_text(Path::new("web.yaml"), &text);
        loaded.objects.remove(0)
    }

    fn node_port(kind: &str, node_ports: &[u16]) -> Object {
        let ports: Vec<String> = node_ports
            .iter()
            .enumerate()
            .map(|(i, n)| format!("{{name: p{i}, port: {}, nodePort: {n}}}", 80 + i))
            .collect();
        service(&format!("{{type: {kind}, ports: [{}]}}", ports.join(", ")))
    }

    fn served(objects: Vec<Object>) -> LastGood {
        LastGood::new(vec![Arc::new(objects)], FxHashSet::default(), Vec::new())
    }

    /// What `rule` patches of `current` after `good`; the rule moves on, as
    /// in a committed build.
    fn apply(rule: &mut UpdateRule, current: &Object, good: &LastGood) -> Vec<Object> {
        let (patched, next) = rule.apply([current].into_iter(), good);
        *rule = next;
        patched
    }

    /// What the patched objects still list.
    fn listed(objects: &[Object]) -> Vec<Fields> {
        objects.iter().map(|o| spec(o).expect("a Service").listed).collect()
    }

    #[test]
    fn a_type_changed_alone_drops_the_node_ports_and_goes_on_dropping_them() {
        let mut rule = UpdateRule::default();
        let edited = node_port("ClusterIP", &[30080]);
        let good = served(vec![node_port("NodePort", &[30080])]);
        let patched = apply(&mut rule, &edited, &good);
        assert_eq!(listed(&patched), [Fields::default()]);
        // The next build: the patched version is what was served.
        let key = FxHashSet::from_iter([edited.key().clone()]);
        let good = LastGood::new(vec![Arc::new(vec![edited.clone()])], key, patched);
        let again = apply(&mut rule, &edited, &good);
        assert_eq!(listed(&again), [Fields::default()]);
    }

    #[test]
    fn node_ports_left_are_dropped_when_each_was_the_services() {
        let mut rule = UpdateRule::default();
        let good = served(vec![node_port("NodePort", &[30080, 30081])]);
        // A port removed in the same edit: the rest is a subset.
        let fewer = node_port("ClusterIP", &[30081]);
        assert_eq!(listed(&apply(&mut rule, &fewer, &good)), [Fields::default()]);
        // A nodePort the Service never had is a new field: rejected.
        let other = node_port("ClusterIP", &[30081, 30099]);
        assert!(apply(&mut rule, &other, &good).is_empty());
    }

    #[test]
    fn a_policy_changed_alone_drops_the_health_check_node_port() {
        let mut rule = UpdateRule::default();
        let local = "{type: LoadBalancer, externalTrafficPolicy: Local, healthCheckNodePort: 30200, \
                     ports: [{port: 80, nodePort: 30080}]}";
        let good = served(vec![service(local)]);
        let cluster = service(&local.replace("Local", "Cluster"));
        let patched = apply(&mut rule, &cluster, &good);
        // The nodePorts stay: a LoadBalancer needs them.
        let expected = Fields { node_ports: vec![30080], health_check: None };
        assert_eq!(listed(&patched), [expected]);
        let moved = service(&local.replace("Local", "Cluster").replace("30200", "30201"));
        assert!(apply(&mut rule, &moved, &good).is_empty());
    }

    #[test]
    fn a_field_changed_with_the_type_or_never_served_stays_an_error() {
        let mut rule = UpdateRule::default();
        let good = served(vec![node_port("NodePort", &[30080])]);
        assert!(apply(&mut rule, &node_port("ClusterIP", &[30081]), &good).is_empty());
        // As created: nothing to update.
        let fresh = LastGood::default();
        assert!(apply(&mut rule, &node_port("ClusterIP", &[30080]), &fresh).is_empty());
        // Once the file no longer lists the field, nothing is remembered.
        let edited = node_port("ClusterIP", &[30080]);
        assert_eq!(apply(&mut rule, &edited, &good).len(), 1);
        let plain = node_port("NodePort", &[30080]);
        assert!(apply(&mut rule, &plain, &good).is_empty());
        assert!(apply(&mut rule, &edited, &LastGood::default()).is_empty());
    }
}
