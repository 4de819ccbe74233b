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
use super::endpoints::{self, EndpointSet, PodInfo};
use super::names::Names;
use super::service::{self, Service};
use crate::manifest::{Object, Resource};

/// Validation results kept across rebuilds, by object. Results of objects
/// that the last build did not see are dropped.
#[derive(Debug, Default)]
pub struct Memo {
    kept: FxHashMap<usize, Kept>,
    /// Port, node and Service names shared by the kept results.
    names: Names,
    build: u64,
}

/// One object's validation.
pub(crate) type Entry = Result<Validated, Vec<Error>>;

/// A valid object, in the model's terms.
#[derive(Debug)]
pub(crate) enum Validated {
    Service(Arc<Service>),
    /// `None`: a slice that belongs to no Service or lists FQDNs.
    Slice(Option<EndpointSet>),
    Endpoints(EndpointSet),
    Pod(PodInfo),
}

#[derive(Debug)]
struct Kept {
    /// Held so that no other object can take this one's address while it
    /// is kept.
    _object: Object,
    entry: Arc<Entry>,
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
    ) -> Vec<Arc<Entry>> {
        self.build += 1;
        let entries = objects.map(|object| self.entry(object, keep)).collect();
        if keep {
            let build = self.build;
            self.kept.retain(|_, kept| kept.seen == build);
            self.names.retain_shared();
        }
        entries
    }

    fn entry(&mut self, object: &Object, keep: bool) -> Arc<Entry> {
        let address = address(object);
        if let Some(kept) = self.kept.get_mut(&address) {
            kept.seen = self.build;
            return kept.entry.clone();
        }
        let entry = Arc::new(validate(object, &mut self.names));
        if keep {
            let kept = Kept { _object: object.clone(), entry: entry.clone(), seen: self.build };
            self.kept.insert(address, kept);
        }
        entry
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
    };
    pointer as usize
}

fn validate(object: &Object, names: &mut Names) -> Entry {
    let (origin, key) = (&object.origin, object.key());
    match &object.resource {
        Resource::Service(raw) => {
            service::validate(raw, key, origin, names).map(|s| Validated::Service(Arc::new(s)))
        }
        Resource::EndpointSlice(raw) => {
            endpoints::slice(raw, key, origin, names).map(Validated::Slice)
        }
        Resource::Endpoints(raw) => {
            endpoints::endpoints(raw, key, origin, names).map(Validated::Endpoints)
        }
        Resource::Pod(raw) => endpoints::pod(raw, key, origin, names).map(Validated::Pod),
    }
}

#[cfg(test)]
mod tests;
