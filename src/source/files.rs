//! The file source: manifest files and directories given with
//! `--manifests`, read again on every change (only changed files parsed
//! again), watched for changes.
//!
//! [`discover`] finds and reads the files, [`read`] keeps each file's
//! objects, [`watch`] says when they changed, and [`update`] reads an edit
//! as the API server reads an update.

use std::path::PathBuf;
use std::sync::Arc;

use crate::manifest::{self, Object, ObjectKey};

mod discover;
mod read;
pub mod update;
pub mod watch;

pub use discover::MAX_FILE_BYTES;
pub use update::UpdateRule;
pub use watch::Watch;

/// The manifest paths, and every file's objects as last read.
#[derive(Clone, Debug, Default)]
pub struct Files {
    paths: Vec<PathBuf>,
    read: read::Read,
}

/// A path, file or document that could not be turned into objects.
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
    /// A file's text, or a document of it, is not Kubernetes objects.
    #[error(transparent)]
    Manifest(#[from] manifest::Error),
}

// === impl Files ===

impl Files {
    /// The file source of `paths`, not read yet.
    pub fn new(paths: Vec<PathBuf>) -> Self {
        Self { paths, read: read::Read::default() }
    }

    /// Every file read again, as a new value (this one is left as it was,
    /// for a rebuild that is not committed), and one error per file or
    /// document that could not be read, a broken List's items each on its
    /// own. See [`read`] for what a file that cannot be read keeps.
    pub fn read(&self) -> (Self, Vec<Error>) {
        let (read, errors) = self.read.again(&self.paths);
        let errors = errors.into_iter().flat_map(Error::flatten).collect();
        (Self { paths: self.paths.clone(), read }, errors)
    }

    /// Every object of every file.
    pub fn objects(&self) -> impl Iterator<Item = &Object> + Clone {
        self.read.objects()
    }

    /// Every file's objects, in the order of [`Self::objects`].
    pub fn lists(&self) -> Vec<Arc<Vec<Object>>> {
        self.read.lists()
    }

    /// Watches the paths; dropping the watch stops watching.
    pub fn watch(&self) -> Result<Watch, watch::Error> {
        Watch::new(&self.paths)
    }
}

// === impl Error ===

impl Error {
    /// The object a decode error is about.
    pub fn key(&self) -> Option<&ObjectKey> {
        match self {
            Error::Manifest(e) => e.key(),
            _ => None,
        }
    }

    /// The path given that does not exist, when that is the error.
    pub fn missing(&self) -> Option<&std::path::Path> {
        match self {
            Error::Missing { file } => Some(file),
            _ => None,
        }
    }

    /// Every single error, a broken List's items each on its own.
    fn flatten(self) -> Vec<Error> {
        match self {
            Error::Manifest(e) => e.flatten().into_iter().map(Error::Manifest).collect(),
            e => vec![e],
        }
    }
}
