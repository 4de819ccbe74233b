//! Validated objects kept from one rebuild to the next.
//!
//! An object of a file that did not change is the very same shared value at
//! the next rebuild (the control loop keeps each file's objects while its
//! text is unchanged), and its validation depends on nothing else: it is
//! looked up by the object's address instead of being done again. At
//! 10,000 Services that skips reading every decoded object, which costs
//! more than everything done with the results.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::Error;
use super::endpoints::{self, EndpointSet, PodInfo, Slice};
use super::names::Names;
use super::node::{self, NodeInfo};
use super::service::{self, Service};
use crate::manifest::{Object, Resource};

/// Validation results kept across rebuilds, by object. Results of objects
/// that the last build did not see are dropped.
#[derive(Debug, Default)]
pub struct Memo {
    kept: FxHashMap<usize, Kept>,
    /// The results of a build that keeps nothing.
    transient: Vec<Entry>,
    /// Port, node and Service names shared by the kept results.
    names: Names,
    build: u64,
}

/// One object's validation; errors are rare, so boxed.
pub(crate) type Entry = Result<Validated, Box<[Error]>>;

/// A valid object, in the model's terms. Boxed: the Memo's map holds one
/// per object, and a small value keeps its table small.
#[derive(Debug)]
pub(crate) enum Validated {
    Service(Arc<Service>),
    /// `None`: a slice that belongs to no Service or lists FQDNs.
    Slice(Option<Box<Slice>>),
    Endpoints(Box<EndpointSet>),
    Pod(Box<PodInfo>),
    Node(Box<NodeInfo>),
}

#[derive(Debug)]
struct Kept {
    /// Held so that no other object can take this one's address while it
    /// is kept.
    _resource: Resource,
    entry: Entry,
    seen: u64,
}

// === impl Memo ===

impl Memo {
    /// The validation of each of `objects`, in order: kept ones looked up,
    /// the others done (and kept when `keep`).
    pub(crate) fn validate<'a>(
        &mut self,
        objects: impl Iterator<Item = &'a Object>,
        keep: bool,
    ) -> Vec<&Entry> {
        self.build += 1;
        self.transient.clear();
        if !keep {
            let names = &mut self.names;
            self.transient = objects.map(|object| validate(object, names)).collect();
            return self.transient.iter().collect();
        }
        let addresses: Vec<usize> = objects.map(|object| self.keep(object)).collect();
        let build = self.build;
        self.kept.retain(|_, kept| kept.seen == build);
        self.names.retain_shared();
        addresses.iter().filter_map(|a| self.kept.get(a)).map(|kept| &kept.entry).collect()
    }

    /// Keeps the validation of `object`; returns its address.
    fn keep(&mut self, object: &Object) -> usize {
        let address = address(object);
        match self.kept.get_mut(&address) {
            Some(kept) => kept.seen = self.build,
            None => {
                let entry = validate(object, &mut self.names);
                let kept = Kept { _resource: object.resource.clone(), entry, seen: self.build };
                self.kept.insert(address, kept);
            }
        }
        address
    }
}

/// Where the object's decoded resource lives: the same for every clone of
/// one object, different for any other object alive at the same time.
fn address(object: &Object) -> usize {
    let pointer = match &object.resource {
        Resource::Service(r) => Arc::as_ptr(r).cast::<()>(),
        Resource::Endpoints(r) => Arc::as_ptr(r).cast(),
        Resource::EndpointSlice(r) => Arc::as_ptr(r).cast(),
        Resource::Pod(r) => Arc::as_ptr(r).cast(),
        Resource::Node(r) => Arc::as_ptr(r).cast(),
    };
    pointer as usize
}

fn validate(object: &Object, names: &mut Names) -> Entry {
    let (origin, key) = (&object.origin, object.key());
    let result = match &object.resource {
        Resource::Service(raw) => {
            service::validate(raw, key, origin, names).map(|s| Validated::Service(Arc::new(s)))
        }
        Resource::EndpointSlice(raw) => {
            endpoints::slice(raw, key, origin, names).map(|s| Validated::Slice(s.map(Box::new)))
        }
        Resource::Endpoints(raw) => {
            endpoints::endpoints(raw, key, origin, names).map(|e| Validated::Endpoints(Box::new(e)))
        }
        Resource::Pod(raw) => {
            endpoints::pod(raw, key, origin, names).map(|p| Validated::Pod(Box::new(p)))
        }
        Resource::Node(raw) => Ok(Validated::Node(Box::new(node::node(raw, names)))),
    };
    result.map_err(Vec::into_boxed_slice)
}

#[cfg(test)]
mod tests;
