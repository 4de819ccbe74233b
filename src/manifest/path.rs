//! Field paths as the API server prints them: `spec.ports[1].port`.

use std::borrow::Cow;
use std::fmt;
use std::hash::Hasher as _;

use rustc_hash::FxHasher;

/// One step into a Kubernetes object.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Segment {
    /// A mapping key; the names svcproxy checks are static, so most paths
    /// are built without allocating their names.
    Field(Cow<'static, str>),
    /// A sequence index.
    Index(usize),
}

/// A path from the root of one object to one of its fields.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct FieldPath(Vec<Segment>);

// === impl FieldPath ===

impl FieldPath {
    /// The path of the object itself.
    pub fn root() -> Self {
        Self::default()
    }

    /// Parses a dotted literal such as `spec.sessionAffinityConfig` (no indices).
    pub fn of(dotted: &'static str) -> Self {
        Self(dotted.split('.').map(|f| Segment::Field(Cow::Borrowed(f))).collect())
    }

    /// This path extended by a field name.
    pub fn field(&self, name: impl Into<Cow<'static, str>>) -> Self {
        self.with(Segment::Field(name.into()))
    }

    /// This path extended by a sequence index.
    pub fn index(&self, index: usize) -> Self {
        self.with(Segment::Index(index))
    }

    /// This path extended by one segment.
    pub fn with(&self, segment: Segment) -> Self {
        let mut segments = self.0.clone();
        segments.push(segment);
        Self(segments)
    }

    /// The steps of this path, from the root.
    pub fn segments(&self) -> &[Segment] {
        &self.0
    }

    /// The enclosing path, `None` at the root.
    pub fn parent(&self) -> Option<Self> {
        let (_, rest) = self.0.split_last()?;
        Some(Self(rest.to_vec()))
    }

    /// The digest of this path and of each enclosing one, longest first
    /// (the root's last).
    pub(crate) fn digests(&self) -> Vec<u64> {
        let mut digests = Vec::with_capacity(self.0.len() + 1);
        let mut digest = ROOT_DIGEST;
        digests.push(digest);
        for segment in &self.0 {
            digest = match segment {
                Segment::Field(name) => field_digest(digest, name),
                Segment::Index(index) => index_digest(digest, *index),
            };
            digests.push(digest);
        }
        digests.reverse();
        digests
    }
}

/// The digest of the root path. A path's digest is built one segment at a
/// time from its parent's, so the lines of a whole document are recorded
/// without making a path per field (see `Lines`).
pub(crate) const ROOT_DIGEST: u64 = 0;

/// The digest of the path `parent.name`.
pub(crate) fn field_digest(parent: u64, name: &str) -> u64 {
    let mut hasher = FxHasher::default();
    hasher.write_u64(parent);
    hasher.write_u8(b'.');
    hasher.write(name.as_bytes());
    hasher.write_usize(name.len());
    hasher.finish()
}

/// The digest of the path `parent[index]`.
pub(crate) fn index_digest(parent: u64, index: usize) -> u64 {
    let mut hasher = FxHasher::default();
    hasher.write_u64(parent);
    hasher.write_u8(b'[');
    hasher.write_usize(index);
    hasher.finish()
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Field(name) if i == 0 => f.write_str(name)?,
                Segment::Field(name) => write!(f, ".{name}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

impl From<&serde_path_to_error::Path> for FieldPath {
    fn from(path: &serde_path_to_error::Path) -> Self {
        use serde_path_to_error::Segment as S;
        let segments = path.iter().filter_map(|segment| match segment {
            S::Seq { index } => Some(Segment::Index(*index)),
            S::Map { key } => Some(Segment::Field(Cow::Owned(key.clone()))),
            S::Enum { variant } => Some(Segment::Field(Cow::Owned(variant.clone()))),
            S::Unknown => None,
        });
        Self(segments.collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_like_the_api_server() {
        let path = FieldPath::of("spec.ports").index(1).field("port");
        assert_eq!(path.to_string(), "spec.ports[1].port");
        assert_eq!(path.parent().map(|p| p.to_string()).as_deref(), Some("spec.ports[1]"));
        assert_eq!(FieldPath::root().to_string(), "");
    }
}
