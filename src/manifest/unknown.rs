//! Fields a manifest holds that the Kubernetes types svcproxy knows do not.
//!
//! Our schema is Kubernetes 1.33's (k8s-openapi's `v1_33`): a field a newer
//! cluster added must not fail `check`, but a near miss of a field we know
//! (`targetPrt`) is a typo that would otherwise be ignored without a word.
//! The fields are found while decoding (serde reports each key the typed
//! object has no place for), so finding them costs no second walk; a
//! suggestion is looked up only for the few found.

use std::fmt;
use std::sync::Arc;

use rustc_hash::FxHashSet;
use serde::de::DeserializeOwned;

use super::near;
use super::path::{FieldPath, Segment};
use super::probe;
use super::{Lines, Location, Object, ObjectKey, Origin};

/// The Kubernetes version of the types svcproxy decodes (k8s-openapi's
/// feature in Cargo.toml).
pub const KUBERNETES_VERSION: &str = "1.33";

/// One field of an object that its type does not have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownField {
    pub path: FieldPath,
    pub line: u32,
    /// The field of the same place it most likely misspells.
    pub near: Option<&'static str>,
}

/// How `check` takes unknown fields: a near miss is an error, any other a
/// warning; with `strict` (kubectl's `--validate=strict`) every one is an
/// error.
#[derive(Debug, Default)]
pub struct Judged {
    /// One message per unknown field that is an error.
    pub errors: Vec<String>,
    /// One message per unknown field that is a warning.
    pub warnings: Vec<String>,
    /// The objects with an unknown field that is an error.
    rejected: FxHashSet<ObjectKey>,
}

/// An unknown field named with its object, as a message.
#[derive(Debug)]
pub struct Finding<'a> {
    object: &'a Object,
    field: &'a UnknownField,
    /// Worded as an error (`strict decoding error: ...`).
    error: bool,
}

/// Collects the paths serde ignored while decoding one object.
#[derive(Default)]
pub(crate) struct Collect(Vec<FieldPath>);

// === impl Collect ===

impl Collect {
    /// Records one field serde ignored.
    pub(crate) fn ignored(&mut self, path: serde_ignored::Path<'_>) {
        self.0.push(field_path(&path));
    }

    /// The fields found, each with its line and, for a near miss, the field
    /// of `T` it misses.
    pub(crate) fn finish<T: DeserializeOwned>(self, lines: &Lines) -> Vec<UnknownField> {
        self.0
            .into_iter()
            .map(|path| {
                let near = match (path.segments().last(), path.parent()) {
                    (Some(Segment::Field(name)), Some(parent)) => {
                        near::nearest(name, probe::expected::<T>(&parent).fields)
                    }
                    _ => None,
                };
                UnknownField { line: lines.of(&path), path, near }
            })
            .collect()
    }
}

/// serde_ignored's path as a field path (its `Some` and newtype steps are
/// no steps of the document).
fn field_path(path: &serde_ignored::Path<'_>) -> FieldPath {
    use serde_ignored::Path as P;
    match path {
        P::Root => FieldPath::root(),
        P::Seq { parent, index } => field_path(parent).index(*index),
        P::Map { parent, key } => field_path(parent).field(key.clone()),
        P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
            field_path(parent)
        }
    }
}

// === impl Judged ===

impl Judged {
    /// Sorts the unknown fields of `objects` into errors and warnings.
    pub fn of<'a>(objects: impl IntoIterator<Item = &'a Object>, strict: bool) -> Self {
        let mut judged = Self::default();
        for object in objects {
            for field in object.unknown_fields() {
                let error = strict || field.near.is_some();
                let message = Finding { object, field, error }.to_string();
                if error {
                    judged.errors.push(message);
                    judged.rejected.insert(object.key().clone());
                } else {
                    judged.warnings.push(message);
                }
            }
        }
        judged
    }

    /// False for an object with an unknown field that is an error: `check`
    /// leaves it out, as the API server would refuse it.
    pub fn accepts(&self, object: &Object) -> bool {
        !self.rejected.contains(object.key())
    }
}

// === impl Finding ===

impl<'a> Finding<'a> {
    /// Every unknown field of `object`, worded as warnings.
    pub fn warnings(object: &'a Object) -> impl Iterator<Item = Finding<'a>> {
        object.unknown_fields().iter().map(move |field| Finding { object, field, error: false })
    }

    /// The path of the field, to tell one finding from another.
    pub fn path(&self) -> &FieldPath {
        &self.field.path
    }
}

impl fmt::Display for Finding<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = self.object.key();
        let at = match &self.object.origin {
            Origin::File { file, .. } => {
                Location::Line { file: file.clone(), line: self.field.line }
            }
            Origin::Api => Location::Api,
        };
        write!(f, "{}: ", at.name(&key.namespace, &key.name))?;
        if self.error {
            f.write_str("strict decoding error: ")?;
        }
        write!(f, "unknown field \"{}\"", self.field.path)?;
        match self.field.near {
            Some(near) => write!(f, " (did you mean {near}?)"),
            None => write!(f, " (svcproxy knows Kubernetes {KUBERNETES_VERSION}'s {:?})", key.kind),
        }
    }
}

/// Shared by the objects of one decode: most have no unknown field and
/// keep `None`.
pub(crate) fn shared(fields: Vec<UnknownField>) -> Option<Arc<[UnknownField]>> {
    (!fields.is_empty()).then(|| fields.into())
}
