//! What the API server holds, as this node last listed and watched it.
//!
//! One [`Cache`] per kind. A list (the first, or a relist after a watch
//! ended with 410 Gone) fills a buffer that replaces the kind's objects
//! only once it is complete: an object that still exists never disappears
//! for a moment, and one deleted while the watch was down is gone after it.
//! The control loop reads everything listed at once ([`Listed`]), and only
//! once every kind was listed: a Service without its EndpointSlices would
//! reset its clients.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use kube::runtime::watcher::Event;
use rustc_hash::FxHashSet;

use crate::manifest::{Kind, Object, ObjectKey, Resource};

/// The kinds watched, in the order [`Listed`] holds them.
pub const KINDS: [Kind; 3] = [Kind::Service, Kind::EndpointSlice, Kind::Node];

/// The kinds the first Snapshot waits for. Not the Node: without it every
/// endpoint serves (topology hints ignored) and `/healthz` cannot tell that
/// the Node is leaving, which is safe; and a role that may not read Nodes
/// must not keep the Services from being served.
pub const REQUIRED: [Kind; 2] = [Kind::Service, Kind::EndpointSlice];

/// kube-proxy's annotation: when the EndpointSlice controller saw the
/// change this version of the slice carries.
const TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";

/// Trigger times kept between two builds at most: a burst of changes while
/// nothing is built cannot grow the list without bound.
const MAX_TRIGGERS: usize = 10_000;

/// Every watched object, per kind.
#[derive(Debug)]
pub struct Store {
    caches: [Cache; KINDS.len()],
    /// What the last [`Store::listed`] returned, until the next change.
    listed: Option<Arc<Listed>>,
    /// Trigger times of EndpointSlice changes not built yet.
    triggers: Vec<SystemTime>,
    /// Trigger times before this are not this process's to measure (the
    /// initial list carries changes made before it started).
    started: SystemTime,
}

/// One kind's objects.
#[derive(Debug, Default)]
struct Cache {
    objects: BTreeMap<ObjectKey, Object>,
    /// A list in progress: replaces `objects` when complete...
    relist: Option<BTreeMap<ObjectKey, Object>>,
    /// ...and the trigger times of the changes it brings.
    relist_triggers: Vec<SystemTime>,
    /// How many lists completed.
    lists: u64,
}

/// Everything listed, at one moment.
#[derive(Debug, Default)]
pub struct Listed {
    /// Services, then EndpointSlices, then the Node, each in key order.
    pub objects: Arc<Vec<Object>>,
    /// Their keys, to find the file objects they stand in for.
    pub keys: FxHashSet<ObjectKey>,
}

/// What one watcher event did, for the metrics and the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// A watch event (its Kubernetes type).
    Added,
    Modified,
    Deleted,
    /// A list started.
    Listing,
    /// A list is in progress.
    Buffered,
    /// A watch event that changed nothing the proxy reads.
    Unchanged,
    /// A list completed, with this many objects; `relist` when it is not
    /// the first.
    Listed {
        objects: usize,
        relist: bool,
    },
}

// === impl Store ===

impl Store {
    pub fn new(started: SystemTime) -> Self {
        Self { caches: Default::default(), listed: None, triggers: Vec::new(), started }
    }

    /// Applies one watcher event of `kind`.
    pub fn apply(&mut self, kind: Kind, event: Event<Object>) -> Change {
        if self.unchanged_node(kind, &event) {
            return Change::Unchanged;
        }
        let started = self.started;
        let cache = &mut self.caches[index(kind)];
        let change = match event {
            Event::Init => {
                cache.relist = Some(BTreeMap::new());
                cache.relist_triggers.clear();
                return Change::Listing;
            }
            Event::InitApply(object) => {
                let buffer = cache.relist.get_or_insert_with(BTreeMap::new);
                let previous = buffer.insert(object.key().clone(), object.clone());
                let previous = previous.or_else(|| cache.objects.get(object.key()).cloned());
                // Kept with the list: it is served only once complete.
                let trigger = new_trigger(started, previous.as_ref(), &object);
                cache.relist_triggers.extend(trigger);
                return Change::Buffered;
            }
            Event::InitDone => {
                cache.objects = cache.relist.take().unwrap_or_default();
                let relist = cache.lists > 0;
                cache.lists += 1;
                let triggers = std::mem::take(&mut cache.relist_triggers);
                let room = MAX_TRIGGERS.saturating_sub(self.triggers.len());
                self.triggers.extend(triggers.into_iter().take(room));
                Change::Listed { objects: cache.objects.len(), relist }
            }
            Event::Apply(object) => {
                let previous = cache.objects.insert(object.key().clone(), object.clone());
                let change = if previous.is_some() { Change::Modified } else { Change::Added };
                let trigger = new_trigger(started, previous.as_ref(), &object);
                if self.triggers.len() < MAX_TRIGGERS {
                    self.triggers.extend(trigger);
                }
                change
            }
            Event::Delete(object) => {
                cache.objects.remove(object.key());
                Change::Deleted
            }
        };
        self.listed = None;
        change
    }

    /// True for a Node event that changes nothing the proxy reads of it:
    /// kubelet's status reports rewrite the Node every few seconds.
    fn unchanged_node(&self, kind: Kind, event: &Event<Object>) -> bool {
        let Event::Apply(object) = event else { return false };
        let known = || self.caches[index(kind)].objects.get(object.key());
        kind == Kind::Node && known().is_some_and(|o| same_node(o, object))
    }

    /// True once every kind the first Snapshot needs was listed in full.
    pub fn synced(&self) -> bool {
        REQUIRED.iter().all(|k| self.caches[index(*k)].lists > 0)
    }

    /// Everything listed now; `None` until every kind was listed.
    pub fn listed(&mut self) -> Option<Arc<Listed>> {
        if !self.synced() {
            return None;
        }
        let caches = &self.caches;
        let listed = self.listed.get_or_insert_with(|| {
            let objects: Vec<Object> =
                caches.iter().flat_map(|c| c.objects.values().cloned()).collect();
            let keys = objects.iter().map(|o| o.key().clone()).collect();
            Arc::new(Listed { objects: Arc::new(objects), keys })
        });
        Some(listed.clone())
    }

    /// The trigger times of the changes seen since the last call.
    pub fn take_triggers(&mut self) -> Vec<SystemTime> {
        std::mem::take(&mut self.triggers)
    }
}

/// True when two versions of a Node are the same to the proxy: its labels
/// (the zone), its deletion and its taints.
fn same_node(a: &Object, b: &Object) -> bool {
    match (&a.resource, &b.resource) {
        (Resource::Node(a), Resource::Node(b)) => {
            a.metadata.labels == b.metadata.labels
                && a.metadata.deletion_timestamp == b.metadata.deletion_timestamp
                && a.spec.as_ref().map(|s| &s.taints) == b.spec.as_ref().map(|s| &s.taints)
        }
        _ => false,
    }
}

fn index(kind: Kind) -> usize {
    KINDS.iter().position(|k| *k == kind).unwrap_or(0)
}

/// The trigger time `object` carries when it is new: a change made since
/// `started` (this process's start), not in `previous`.
fn new_trigger(
    started: SystemTime,
    previous: Option<&Object>,
    object: &Object,
) -> Option<SystemTime> {
    let time = trigger_time(object)?;
    let new = previous.and_then(trigger_time) != Some(time) && time > started;
    new.then_some(time)
}

/// The `last-change-trigger-time` an EndpointSlice carries.
fn trigger_time(object: &Object) -> Option<SystemTime> {
    let Resource::EndpointSlice(slice) = &object.resource else { return None };
    let value = slice.metadata.annotations.as_ref()?.get(TRIGGER_TIME)?;
    humantime::parse_rfc3339_weak(value).ok()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::manifest::{EndpointSlice, SliceMeta};
    use k8s_openapi::api::core::v1::Service;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;
    use crate::manifest::Origin;

    fn service(name: &str) -> Object {
        let meta = ObjectMeta { name: Some(name.into()), ..Default::default() };
        Object::new(
            Origin::Api,
            Resource::Service(Arc::new(Service { metadata: meta, ..Default::default() })),
        )
    }

    fn slice(name: &str, trigger: &str) -> Object {
        let annotations = [(TRIGGER_TIME.to_owned(), trigger.to_owned())].into();
        let meta = SliceMeta {
            name: Some(name.into()),
            annotations: Some(annotations),
            ..Default::default()
        };
        let slice = EndpointSlice { metadata: meta, ..Default::default() };
        Object::new(Origin::Api, Resource::EndpointSlice(Arc::new(slice)))
    }

    fn names(store: &mut Store) -> Vec<String> {
        let listed = store.listed().expect("synced");
        listed.objects.iter().map(|o| o.key().name.to_string()).collect()
    }

    fn list(store: &mut Store, kind: Kind, objects: Vec<Object>) {
        store.apply(kind, Event::Init);
        for object in objects {
            store.apply(kind, Event::InitApply(object));
        }
        store.apply(kind, Event::InitDone);
    }

    #[test]
    fn nothing_is_listed_before_every_kind_was() {
        let mut store = Store::new(SystemTime::UNIX_EPOCH);
        list(&mut store, Kind::Service, vec![service("web")]);
        assert!(store.listed().is_none());
        list(&mut store, Kind::EndpointSlice, vec![]);
        assert_eq!(names(&mut store), ["web"]);
    }

    #[test]
    fn a_relist_replaces_the_objects_only_when_complete() {
        let mut store = Store::new(SystemTime::UNIX_EPOCH);
        list(&mut store, Kind::EndpointSlice, vec![]);
        list(&mut store, Kind::Service, vec![service("a"), service("b")]);
        assert_eq!(store.apply(Kind::Service, Event::Init), Change::Listing);
        store.apply(Kind::Service, Event::InitApply(service("b")));
        // Mid-relist: both still served.
        assert_eq!(names(&mut store), ["a", "b"]);
        let done = store.apply(Kind::Service, Event::InitDone);
        assert_eq!(done, Change::Listed { objects: 1, relist: true });
        // `a` was deleted while the watch was down.
        assert_eq!(names(&mut store), ["b"]);
    }

    #[test]
    fn watch_events_add_modify_and_delete() {
        let mut store = Store::new(SystemTime::UNIX_EPOCH);
        list(&mut store, Kind::EndpointSlice, vec![]);
        list(&mut store, Kind::Service, vec![]);
        assert_eq!(store.apply(Kind::Service, Event::Apply(service("a"))), Change::Added);
        assert_eq!(store.apply(Kind::Service, Event::Apply(service("a"))), Change::Modified);
        assert_eq!(names(&mut store), ["a"]);
        assert_eq!(store.apply(Kind::Service, Event::Delete(service("a"))), Change::Deleted);
        assert!(names(&mut store).is_empty());
    }

    #[test]
    fn a_trigger_time_is_taken_once_and_only_when_after_the_start() {
        let started = humantime::parse_rfc3339("2026-01-01T00:00:00Z").expect("time");
        let mut store = Store::new(started);
        let (before, after) = ("2025-12-31T23:59:59Z", "2026-01-01T00:00:01Z");
        list(&mut store, Kind::EndpointSlice, vec![slice("s", before)]);
        assert!(store.take_triggers().is_empty());
        // A relist's change counts once the relist is complete.
        store.apply(Kind::EndpointSlice, Event::Init);
        store.apply(Kind::EndpointSlice, Event::InitApply(slice("s", after)));
        assert!(store.take_triggers().is_empty(), "not served yet");
        store.apply(Kind::EndpointSlice, Event::InitDone);
        assert_eq!(store.take_triggers(), [started + Duration::from_secs(1)]);
        // The same trigger again is no new change.
        store.apply(Kind::EndpointSlice, Event::Apply(slice("s", after)));
        assert!(store.take_triggers().is_empty());
        let later = "2026-01-01T00:00:02Z";
        store.apply(Kind::EndpointSlice, Event::Apply(slice("s", later)));
        assert_eq!(store.take_triggers(), [started + Duration::from_secs(2)]);
    }
}
