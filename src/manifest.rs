//! Stage 2, manifest: a file's text to Kubernetes objects.
//!
//! Input: the text of one manifest file. Output: every Service, Endpoints,
//! EndpointSlice, Pod and Node it holds, each with its [`Origin`] (the file and
//! the line of every field), plus one [`Error`] per document that could
//! not be read. A bad document never hides the good ones beside it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Service};
use rustc_hash::FxHashSet;

mod go;
mod kinds;
mod near;
mod node;
mod object;
mod path;
mod pod;
mod probe;
mod slice;
mod stream;
mod typed;
mod unknown;
mod yaml;

pub use node::Lines;
pub use path::{FieldPath, Segment};
pub use pod::{Pod, Status as PodStatus};
pub use slice::{
    Endpoint, EndpointAddress, EndpointSlice, EndpointSubset, Endpoints, Meta as SliceMeta,
};
pub use unknown::{Finding, Judged, KUBERNETES_VERSION, UnknownField};
pub use yaml::{MAX_DEPTH, MAX_DOCUMENTS};

/// The largest object the API server stores: etcd's default request limit
/// (`--max-request-bytes`, 1.5 MiB). An object is measured as compact
/// JSON, as etcd holds custom resources; built-in kinds are stored as
/// protobuf, which is somewhat smaller.
pub const MAX_OBJECT_BYTES: usize = 1536 * 1024;

/// A Kubernetes object read from a manifest. Cheap to clone: the decoded
/// object is shared, so the control loop keeps last good versions and
/// unchanged files' objects across rebuilds without copying them.
#[derive(Clone, Debug)]
pub struct Object {
    pub origin: Origin,
    pub resource: Resource,
    /// Read once from the metadata: every rebuild asks for it.
    key: ObjectKey,
    /// Fields of the manifest the object's type does not have (`None`:
    /// none, or an object of the API server, which checked them).
    unknown: Option<Arc<[UnknownField]>>,
}

/// The kinds svcproxy reads.
#[derive(Clone, Debug)]
pub enum Resource {
    Service(Arc<Service>),
    Endpoints(Arc<Endpoints>),
    EndpointSlice(Arc<EndpointSlice>),
    Pod(Arc<Pod>),
    /// Only the one named `--node-name` is used: its zone and whether it is
    /// being taken out of service.
    Node(Arc<Node>),
}

/// Which kind an object is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Service,
    Endpoints,
    EndpointSlice,
    Pod,
    Node,
}

/// An object's identity across reloads: kind, namespace and name. The
/// names are shared with the model's ids, which clone them for free.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub kind: Kind,
    pub namespace: Arc<str>,
    pub name: Arc<str>,
}

/// Where an object came from.
#[derive(Clone, Debug)]
pub enum Origin {
    /// A manifest file, and the line of each of the object's fields (shared:
    /// every model type built from the object points here).
    File { file: Arc<Path>, lines: Arc<Lines> },
    /// The API server, which keeps no lines.
    Api,
}

/// Where one field of an object was read, to point at it in a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A line of a manifest file.
    Line { file: Arc<Path>, line: u32 },
    /// An object of the API server.
    Api,
}

/// An object named at its [`Location`]: `file:line: namespace/name`, or
/// `namespace/name (from the API server)`.
#[derive(Debug)]
pub struct Named<'a> {
    at: &'a Location,
    namespace: &'a str,
    name: &'a str,
}

/// Everything read from manifest texts.
#[derive(Debug, Default)]
pub struct Loaded {
    pub objects: Vec<Object>,
    pub errors: Vec<Error>,
}

/// A file's text or a document that could not be turned into objects.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}:{}: {message}", file.display(), line.map_or(String::new(), |l| l.to_string()))]
    Yaml { file: PathBuf, line: Option<u32>, message: String },
    #[error("{}:{line}: document {document}: {detail}", file.display())]
    NotObject { file: PathBuf, line: u32, document: usize, detail: String },
    #[error("{}:{line}: {}/{}: {path}: {detail}", file.display(), key.namespace, key.name)]
    Decode { file: PathBuf, line: u32, key: Box<ObjectKey>, path: FieldPath, detail: String },
    /// An object the API server would not store (see [`MAX_OBJECT_BYTES`]).
    #[error(
        "{}:{line}: {}/{}: Too long: must have at most {MAX_OBJECT_BYTES} bytes, the most the \
         API server stores (this object is {size} bytes as JSON)",
        file.display(), key.namespace, key.name
    )]
    TooLarge { file: PathBuf, line: u32, key: Box<ObjectKey>, size: usize },
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Many(Vec<Error>),
}

// === impl Object ===

impl Object {
    /// An object of `resource`, read from `origin`.
    pub fn new(origin: Origin, resource: Resource) -> Self {
        let (kind, namespace, name) = match &resource {
            Resource::Service(o) => (Kind::Service, &o.metadata.namespace, &o.metadata.name),
            Resource::Endpoints(o) => (Kind::Endpoints, &o.metadata.namespace, &o.metadata.name),
            Resource::EndpointSlice(o) => {
                (Kind::EndpointSlice, &o.metadata.namespace, &o.metadata.name)
            }
            Resource::Pod(o) => (Kind::Pod, &o.namespace, &o.name),
            Resource::Node(o) => (Kind::Node, &o.metadata.namespace, &o.metadata.name),
        };
        let namespace = namespace.as_deref().filter(|s| !s.is_empty());
        // A Node belongs to no namespace.
        let namespace =
            if kind == Kind::Node { "" } else { namespace.unwrap_or(DEFAULT_NAMESPACE) };
        let key = ObjectKey {
            kind,
            namespace: namespace.into(),
            name: name.as_deref().unwrap_or_default().into(),
        };
        Self { origin, resource, key, unknown: None }
    }

    /// This object, with the fields of its manifest its type does not have.
    pub(crate) fn with_unknown(mut self, unknown: Option<Arc<[UnknownField]>>) -> Self {
        self.unknown = unknown;
        self
    }

    /// The fields of its manifest the object's type does not have.
    pub fn unknown_fields(&self) -> &[UnknownField] {
        self.unknown.as_deref().unwrap_or_default()
    }

    /// The object's kind, namespace (defaulted) and name.
    pub fn key(&self) -> &ObjectKey {
        &self.key
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// The namespace of an object that names none.
pub const DEFAULT_NAMESPACE: &str = "default";

/// `metadata.namespace`, defaulted as the API server defaults it.
pub fn namespace_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> &str {
    meta.namespace.as_deref().filter(|s| !s.is_empty()).unwrap_or(DEFAULT_NAMESPACE)
}

// === impl Origin ===

impl Origin {
    /// Where the field at `path` was read (the object's own line when the
    /// field was not written).
    pub fn locate(&self, path: &FieldPath) -> Location {
        match self {
            Origin::File { file, lines } => {
                Location::Line { file: file.clone(), line: lines.of(path) }
            }
            Origin::Api => Location::Api,
        }
    }

    /// True when the object spelled out `path`; objects without lines (the
    /// API server's) count every field as written.
    pub fn has(&self, path: &FieldPath) -> bool {
        match self {
            Origin::File { lines, .. } => lines.contains(path),
            Origin::Api => true,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { file, .. } => write!(f, "{}", file.display()),
            Origin::Api => f.write_str("the API server"),
        }
    }
}

// === impl Location ===

impl Location {
    /// The object `namespace/name`, named at this location.
    pub fn name<'a>(&'a self, namespace: &'a str, name: &'a str) -> Named<'a> {
        Named { at: self, namespace, name }
    }
}

impl fmt::Display for Named<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (namespace, name) = (self.namespace, self.name);
        match self.at {
            Location::Line { file, line } => {
                write!(f, "{}:{line}: {namespace}/{name}", file.display())
            }
            Location::Api => write!(f, "{namespace}/{name} (from the API server)"),
        }
    }
}

// === impl Loaded ===

impl Loaded {
    /// Adds the objects of one file's text (already read). False when the
    /// file as a whole is not YAML (no object of it could be read).
    pub fn add_text(&mut self, file: &Path, text: &str) -> bool {
        let (first, errors) = (self.objects.len(), self.errors.len());
        if let Err(e) = stream::decode(file, text, &mut self.objects, &mut self.errors) {
            // Nothing of a file that is not YAML: not even its first documents.
            self.errors.truncate(errors);
            let message = hint(&e.message);
            self.errors.push(Error::Yaml { file: file.to_owned(), line: e.line, message });
            return false;
        }
        share_namespaces(&mut self.objects[first..]);
        true
    }
}

/// One copy of each namespace for all of `objects`: a file's objects are
/// kept for as long as it is unchanged, most of them in one namespace.
fn share_namespaces(objects: &mut [Object]) {
    let mut seen: FxHashSet<Arc<str>> = FxHashSet::default();
    for object in objects {
        let namespace = &mut object.key.namespace;
        match seen.get(&**namespace) {
            Some(shared) => *namespace = shared.clone(),
            None => {
                seen.insert(namespace.clone());
            }
        }
    }
}

/// A duplicate key most often means several objects written one after the
/// other without a `---` line between them: say so.
fn hint(message: &str) -> String {
    match message.strip_prefix("duplicate mapping key: ") {
        Some(rest) => {
            let key = rest.split(',').next().unwrap_or(rest);
            format!(
                "duplicate key \"{key}\": several objects in one document? \
                 separate them with a `---` line"
            )
        }
        None => message.to_owned(),
    }
}

// === impl Error ===

impl Error {
    /// The object a decode error is about.
    pub fn key(&self) -> Option<&ObjectKey> {
        match self {
            Error::Decode { key, .. } | Error::TooLarge { key, .. } => Some(&**key),
            _ => None,
        }
    }

    /// Every single error, with `Many` flattened.
    pub fn flatten(self) -> Vec<Error> {
        match self {
            Error::Many(errors) => errors.into_iter().flat_map(Error::flatten).collect(),
            e => vec![e],
        }
    }
}
