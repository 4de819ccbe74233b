//! Stage 1, manifests: files on disk to Kubernetes objects.
//!
//! Input: paths (files or directories). Output: every Service, Endpoints,
//! EndpointSlice and Pod found, each with its [`Origin`] (file and the line
//! of every field), plus one [`Error`] per file or document that could not
//! be read. A bad document never hides the good ones beside it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

mod file;
mod node;
mod object;
mod path;
mod yaml;

pub use file::{MAX_FILE_BYTES, discover, read};
pub use node::Lines;
pub use path::{FieldPath, Segment};
pub use yaml::{MAX_DEPTH, MAX_DOCUMENTS};

/// A Kubernetes object read from a manifest.
#[derive(Clone, Debug)]
pub struct Object {
    pub origin: Origin,
    pub resource: Resource,
}

/// The kinds svcproxy reads.
#[derive(Clone, Debug)]
pub enum Resource {
    Service(Box<Service>),
    Endpoints(Box<Endpoints>),
    EndpointSlice(Box<EndpointSlice>),
    Pod(Box<Pod>),
}

/// Where an object came from: its file and the line of each of its fields.
#[derive(Clone, Debug)]
pub struct Origin {
    pub file: Arc<Path>,
    /// Shared: every model type built from the object points here.
    pub lines: Arc<Lines>,
}

/// Everything read from a set of paths.
#[derive(Debug, Default)]
pub struct Loaded {
    pub objects: Vec<Object>,
    pub errors: Vec<Error>,
}

/// A file or document that could not be turned into objects.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: no such file or directory", file.display())]
    Missing { file: PathBuf },
    #[error("{}: {detail}", file.display())]
    Walk { file: PathBuf, detail: String },
    #[error("{}: {source}", file.display())]
    Read { file: PathBuf, source: std::io::Error },
    #[error("{}: file is {size} bytes, over the limit of {MAX_FILE_BYTES} bytes", file.display())]
    TooLarge { file: PathBuf, size: u64 },
    #[error("{}:{}: {message}", file.display(), line.map_or(String::new(), |l| l.to_string()))]
    Yaml { file: PathBuf, line: Option<u32>, message: String },
    #[error("{}:{line}: document {document}: {detail}", file.display())]
    NotObject { file: PathBuf, line: u32, document: usize, detail: String },
    #[error("{}:{line}: {object}: {path}: {detail}", file.display())]
    Decode { file: PathBuf, line: u32, object: String, path: FieldPath, detail: String },
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Many(Vec<Error>),
}

// === impl Loaded ===

/// Reads every manifest under `paths`.
pub fn load(paths: &[PathBuf]) -> Loaded {
    let (files, errors) = discover(paths);
    let mut loaded = Loaded { objects: Vec::new(), errors };
    for file in files {
        match read(&file) {
            Ok(text) => loaded.add_text(&file, &text),
            Err(e) => loaded.errors.push(e),
        }
    }
    loaded
}

impl Loaded {
    /// Adds the objects of one file's text (already read).
    pub fn add_text(&mut self, file: &Path, text: &str) {
        let documents = match yaml::documents(text) {
            Ok(documents) => documents,
            Err(e) => {
                let message = hint(&e.message);
                self.errors.push(Error::Yaml { file: file.to_owned(), line: e.line, message });
                return;
            }
        };
        let file: Arc<Path> = Arc::from(file);
        for (i, node) in documents.iter().enumerate() {
            let doc = object::Document { file: &file, index: i + 1 };
            if let Err(e) = object::decode(&doc, node, &mut self.objects) {
                self.errors.push(e);
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
    /// Every single error, with `Many` flattened.
    pub fn flatten(self) -> Vec<Error> {
        match self {
            Error::Many(errors) => errors.into_iter().flat_map(Error::flatten).collect(),
            e => vec![e],
        }
    }
}
