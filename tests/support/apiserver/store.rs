//! The objects the fake serves and their history, as etcd and the watch
//! cache keep them: one global resourceVersion bumped by every change, the
//! objects keyed `namespace/name` (etcd's key order, so pages are stable),
//! and a log of every change since the last compaction (`expire()`), from
//! which watches replay and continued LISTs read the state at their
//! resourceVersion.

use std::collections::BTreeMap;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

/// The resource types served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Service,
    EndpointSlice,
    /// Cluster-scoped: keyed `/name`, no namespace.
    Node,
}

/// What a change did, as a watch event type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Change {
    Added,
    Modified,
    Deleted,
}

/// One change in the log.
#[derive(Debug)]
pub(super) struct Event {
    pub(super) rv: u64,
    pub(super) kind: Kind,
    /// `namespace/name`.
    pub(super) key: String,
    pub(super) change: Change,
    /// The object after the change; for a deletion, its last state stamped
    /// with the deletion's resourceVersion (as the API server sends it).
    pub(super) object: Arc<Value>,
    /// The object before the change (`None` when it was created): a watch
    /// with a selector needs it to tell "stopped matching" from "never did".
    pub(super) prev: Option<Arc<Value>>,
}

/// Every object and the log since the last compaction.
pub(super) struct Store {
    objects: [BTreeMap<String, Arc<Value>>; 3],
    log: Vec<Arc<Event>>,
    /// The global resourceVersion: the last change's.
    rv: u64,
    /// The resourceVersion of the last compaction: the log holds every
    /// change after it, so any state from it on can be rebuilt.
    compacted: u64,
    /// Bumped by each compaction: a watch reading the log by index notices
    /// that the log it read from is gone.
    epoch: u64,
    uids: u64,
}

/// A resourceVersion older than the last compaction.
#[derive(Debug)]
pub(super) struct TooOld {
    pub(super) requested: u64,
    pub(super) oldest: u64,
}

// === impl Kind ===

impl Kind {
    pub(super) const ALL: [Kind; 3] = [Kind::Service, Kind::EndpointSlice, Kind::Node];

    pub(super) fn name(self) -> &'static str {
        match self {
            Kind::Service => "Service",
            Kind::EndpointSlice => "EndpointSlice",
            Kind::Node => "Node",
        }
    }

    pub(super) fn api_version(self) -> &'static str {
        match self {
            Kind::Service | Kind::Node => "v1",
            Kind::EndpointSlice => "discovery.k8s.io/v1",
        }
    }

    /// The resource name in URLs.
    pub(super) fn plural(self) -> &'static str {
        match self {
            Kind::Service => "services",
            Kind::EndpointSlice => "endpointslices",
            Kind::Node => "nodes",
        }
    }

    /// `services`, `endpointslices.discovery.k8s.io`: how error messages
    /// name the resource.
    pub(super) fn qualified(self) -> &'static str {
        match self {
            Kind::Service => "services",
            Kind::EndpointSlice => "endpointslices.discovery.k8s.io",
            Kind::Node => "nodes",
        }
    }

    pub(super) fn index(self) -> usize {
        self as usize
    }

    /// A kind as the tests name it: `Service`, `services`, `svc`,
    /// `EndpointSlice`, `endpointslices`; panics on anything else.
    pub(super) fn named(name: &str) -> Kind {
        match name.to_ascii_lowercase().as_str() {
            "service" | "services" | "svc" => Kind::Service,
            "endpointslice" | "endpointslices" => Kind::EndpointSlice,
            "node" | "nodes" | "no" => Kind::Node,
            _ => panic!("the fake API server serves Service, EndpointSlice and Node, not {name:?}"),
        }
    }

    /// The kind of a manifest; panics unless it is a v1 Service or a
    /// discovery.k8s.io/v1 EndpointSlice.
    fn of(object: &Value) -> Kind {
        let api_version = object.get("apiVersion").and_then(Value::as_str);
        let kind = object.get("kind").and_then(Value::as_str);
        Kind::ALL
            .into_iter()
            .find(|k| Some(k.api_version()) == api_version && Some(k.name()) == kind)
            .unwrap_or_else(|| {
                panic!("not a v1 Service or Node or a discovery.k8s.io/v1 EndpointSlice: {object}")
            })
    }
}

// === impl Store ===

impl Store {
    pub(super) fn new() -> Store {
        // etcd's first revision is 1: a resourceVersion is never "0",
        // which clients read as "any".
        let objects = Default::default();
        Store { objects, log: Vec::new(), rv: 1, compacted: 1, epoch: 0, uids: 0 }
    }

    pub(super) fn rv(&self) -> u64 {
        self.rv
    }

    pub(super) fn compacted(&self) -> u64 {
        self.compacted
    }

    pub(super) fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Creates or replaces `object` (a v1 Service or Node, or a
    /// discovery.k8s.io/v1 EndpointSlice), stamping its metadata as the API
    /// server does: the namespace defaults to `default` (a Node has none); uid and creationTimestamp are kept
    /// across a replace; resourceVersion is the new global one.
    pub(super) fn apply(&mut self, mut object: Value) {
        let kind = Kind::of(&object);
        let meta = metadata_mut(&mut object);
        let name = meta.get("name").and_then(Value::as_str).filter(|n| !n.is_empty());
        let name =
            name.unwrap_or_else(|| panic!("{} without metadata.name", kind.name())).to_owned();
        let namespace = match meta.get("namespace").and_then(Value::as_str) {
            _ if kind == Kind::Node => String::new(),
            Some(ns) if !ns.is_empty() => ns.to_owned(),
            _ => "default".to_owned(),
        };
        if kind != Kind::Node {
            meta.insert("namespace".into(), json!(namespace));
        }
        let key = format!("{namespace}/{name}");
        let prev = self.objects[kind.index()].get(&key).cloned();
        let (uid, created) = match &prev {
            Some(prev) => {
                (prev["metadata"]["uid"].clone(), prev["metadata"]["creationTimestamp"].clone())
            }
            None => (json!(self.next_uid()), json!(now_rfc3339())),
        };
        self.rv += 1;
        meta.insert("uid".into(), uid);
        meta.insert("creationTimestamp".into(), created);
        meta.insert("resourceVersion".into(), json!(self.rv.to_string()));
        let object = Arc::new(object);
        self.objects[kind.index()].insert(key.clone(), Arc::clone(&object));
        let change = if prev.is_some() { Change::Modified } else { Change::Added };
        self.record(Event { rv: self.rv, kind, key, change, object, prev });
    }

    /// Deletes `namespace/name`; panics when there is no such object (a
    /// test that deletes what it never applied has a bug).
    pub(super) fn delete(&mut self, kind: Kind, namespace: &str, name: &str) {
        let key = format!("{namespace}/{name}");
        let prev = self.objects[kind.index()]
            .remove(&key)
            .unwrap_or_else(|| panic!("delete: no {} {key} on the fake API server", kind.name()));
        self.rv += 1;
        let mut object = (*prev).clone();
        metadata_mut(&mut object).insert("resourceVersion".into(), json!(self.rv.to_string()));
        let object = Arc::new(object);
        self.record(Event {
            rv: self.rv,
            kind,
            key,
            change: Change::Deleted,
            object,
            prev: Some(prev),
        });
    }

    /// Compaction: forgets the log, so every resourceVersion before now is
    /// too old.
    pub(super) fn expire(&mut self) {
        self.compacted = self.rv;
        self.log.clear();
        self.epoch += 1;
    }

    /// Fails when `rv` is older than the last compaction.
    pub(super) fn check(&self, rv: u64) -> Result<(), TooOld> {
        if rv < self.compacted {
            return Err(TooOld { requested: rv, oldest: self.compacted });
        }
        Ok(())
    }

    /// The log from index `cursor` on, if no compaction happened since
    /// `epoch`.
    pub(super) fn events_from(&self, epoch: u64, cursor: usize) -> Option<&[Arc<Event>]> {
        (epoch == self.epoch).then(|| &self.log[cursor.min(self.log.len())..])
    }

    /// The log index of the first change after `rv`.
    pub(super) fn cursor_after(&self, rv: u64) -> usize {
        self.log.partition_point(|e| e.rv <= rv)
    }

    /// The current objects of `kind`, in key order.
    pub(super) fn objects(&self, kind: Kind) -> &BTreeMap<String, Arc<Value>> {
        &self.objects[kind.index()]
    }

    /// The objects of `kind` as they were at `rv`, keys from `from` on, in
    /// key order: the current objects with the changes made after `rv`
    /// undone (each key takes the state before its first later change).
    pub(super) fn at<'a>(
        &'a self,
        kind: Kind,
        rv: u64,
        from: Bound<&'a str>,
    ) -> Result<impl Iterator<Item = (&'a str, &'a Arc<Value>)> + 'a, TooOld> {
        self.check(rv)?;
        let mut undone: BTreeMap<&str, Option<&Arc<Value>>> = BTreeMap::new();
        for event in self.log[self.cursor_after(rv)..].iter().filter(|e| e.kind == kind) {
            undone.entry(event.key.as_str()).or_insert(event.prev.as_ref());
        }
        let range = (from, Bound::Unbounded);
        let mut current = self.objects[kind.index()].range::<str, _>(range).peekable();
        let mut undone = undone
            .into_iter()
            .filter(move |(k, _)| RangeBounds::<str>::contains(&range, *k))
            .peekable();
        Ok(std::iter::from_fn(move || {
            loop {
                let next_current = current.peek().map(|(k, _)| k.as_str());
                let next_undone = undone.peek().map(|(k, _)| *k);
                match (next_current, next_undone) {
                    (None, None) => return None,
                    (Some(c), Some(u)) if u <= c => {
                        if u == c {
                            current.next();
                        }
                        if let Some((key, Some(object))) = undone.next() {
                            return Some((key, object));
                        }
                    }
                    (Some(_), _) => return current.next().map(|(k, o)| (k.as_str(), o)),
                    (None, Some(_)) => {
                        if let Some((key, Some(object))) = undone.next() {
                            return Some((key, object));
                        }
                    }
                }
            }
        }))
    }

    fn record(&mut self, event: Event) {
        self.log.push(Arc::new(event));
    }

    fn next_uid(&mut self) -> String {
        self.uids += 1;
        format!("00000000-0000-4000-8000-{:012x}", self.uids)
    }
}

fn metadata_mut(object: &mut Value) -> &mut serde_json::Map<String, Value> {
    let object = object.as_object_mut().expect("a Kubernetes object is a mapping");
    let meta = object.entry("metadata").or_insert_with(|| json!({}));
    meta.as_object_mut().expect("metadata is a mapping")
}

/// Now as RFC 3339 in UTC, to the second (as creationTimestamp is).
fn now_rfc3339() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(i64::try_from(days).unwrap_or(0));
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem / 60 % 60, rem % 60)
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}
