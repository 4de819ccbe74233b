//! The last valid version of every object in service, for keep-last-good:
//! an object the model rejects is served in the version the last build
//! served, whichever source it came from.
//!
//! Only a rebuild that rejects an object asks for it, so it is kept in the
//! cheapest form: the lists of objects each file had at the last build
//! (shared with the file cache, not copied) less the keys that build
//! rejected, plus the last valid versions it kept in service. A rebuild
//! that rejects something indexes it by key then.

use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::manifest::{Object, ObjectKey};

/// The objects the last build served. Cheap to clone: the lists are shared.
#[derive(Clone, Debug, Default)]
pub struct LastGood {
    /// Every file's objects at that build...
    lists: Vec<Arc<Vec<Object>>>,
    /// ...less those with these keys...
    rejected: FxHashSet<ObjectKey>,
    /// ...plus the last valid versions it served in their place.
    kept: Vec<Object>,
}

// === impl LastGood ===

impl LastGood {
    /// What a build served: the objects of `lists` whose key it did not
    /// reject, and `kept`.
    pub fn new(
        lists: Vec<Arc<Vec<Object>>>,
        rejected: FxHashSet<ObjectKey>,
        kept: Vec<Object>,
    ) -> Self {
        Self { lists, rejected, kept }
    }

    /// The last valid version of each of `keys` that has one.
    pub fn get<'k>(&self, keys: impl Iterator<Item = &'k ObjectKey>) -> Vec<Object> {
        // Later objects of one key win, as in a map filled in this order.
        let listed = self.lists.iter().flat_map(|l| l.iter());
        let served = listed.filter(|o| !self.rejected.contains(o.key())).chain(&self.kept);
        let index: FxHashMap<&ObjectKey, &Object> = served.map(|o| (o.key(), o)).collect();
        keys.filter_map(|k| index.get(k).map(|o| (*o).clone())).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::manifest::{Loaded, Resource};

    fn service(port: u16) -> Object {
        let text = format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: web}}\nspec: {{ports: [{{port: {port}}}]}}\n"
        );
        let mut loaded = Loaded::default();
        loaded.add_text(Path::new("web.yaml"), &text);
        loaded.objects.remove(0)
    }

    fn port(objects: &[Object]) -> Vec<i32> {
        let port = |o: &Object| match &o.resource {
            Resource::Service(s) => s.spec.as_ref().and_then(|s| s.ports.as_ref()).unwrap()[0].port,
            _ => 0,
        };
        objects.iter().map(port).collect()
    }

    #[test]
    fn serves_what_the_last_build_served() {
        let (v1, v2) = (service(80), service(81));
        let key = v1.key().clone();
        let listed = LastGood::new(vec![Arc::new(vec![v1.clone()])], FxHashSet::default(), vec![]);
        assert_eq!(port(&listed.get([&key].into_iter())), [80]);
        // Rejected in the file, served in its last valid version instead.
        let rejected = FxHashSet::from_iter([key.clone()]);
        let kept = LastGood::new(vec![Arc::new(vec![v2])], rejected.clone(), vec![v1]);
        assert_eq!(port(&kept.get([&key].into_iter())), [80]);
        let none = LastGood::new(vec![Arc::new(vec![service(82)])], rejected, vec![]);
        assert!(none.get([&key].into_iter()).is_empty());
    }
}
