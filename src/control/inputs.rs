//! What one build reads: the files' objects and the API server's, merged.
//! An object both hold (same kind, namespace and name) is the API
//! server's: the cluster's version of it is the one the cluster routes.

use std::sync::Arc;

use rustc_hash::FxHashSet;

use crate::manifest::{Object, ObjectKey};
use crate::source::Files;
use crate::source::api::Listed;

/// The objects of the sources, as one build sees them.
#[derive(Clone, Copy, Debug)]
pub(super) struct Inputs<'a> {
    pub files: &'a Files,
    /// `None` without an API source, and until it listed both kinds.
    pub api: Option<&'a Listed>,
}

// === impl Inputs ===

impl<'a> Inputs<'a> {
    /// The file objects the API server does not stand in for.
    pub fn files(self) -> impl Iterator<Item = &'a Object> + Clone {
        let api = self.api;
        self.files.objects().filter(move |o| api.is_none_or(|a| !a.keys.contains(o.key())))
    }

    /// Every object served: the files', then the API server's.
    pub fn objects(self) -> impl Iterator<Item = &'a Object> + Clone {
        self.files().chain(self.api.into_iter().flat_map(|a| a.objects.iter()))
    }

    /// Every list of objects, in the order of [`Self::objects`]: later
    /// objects of one key win (the API server's).
    pub fn lists(self) -> Vec<Arc<Vec<Object>>> {
        let mut lists = self.files.lists();
        lists.extend(self.api.map(|a| a.objects.clone()));
        lists
    }

    /// The keys both sources hold.
    pub fn conflicts(self) -> FxHashSet<ObjectKey> {
        let Some(api) = self.api else { return FxHashSet::default() };
        let both = self.files.objects().filter(|o| api.keys.contains(o.key()));
        both.map(|o| o.key().clone()).collect()
    }
}
