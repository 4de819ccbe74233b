//! Paths on disk to manifest texts: files as given, directories walked.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use rustc_hash::FxHashSet;

use super::Error;

/// Largest manifest file read; a `kubectl get -o yaml` of 10,000 Services
/// with their EndpointSlices is about 12 MiB.
pub const MAX_FILE_BYTES: u64 = 16 << 20;

const EXTENSIONS: [&str; 3] = ["yaml", "yml", "json"];

/// Every manifest file under `paths`, in a stable order and once each (a
/// file under two of the paths given is read where it is first found):
/// each path as given, directories walked recursively (following symlinks,
/// as ConfigMap mounts need) for `*.yaml`, `*.yml` and `*.json`, sorted by
/// name. Hidden entries (`..data`, `.git`) are skipped so a ConfigMap mount
/// is read once.
pub fn discover(paths: &[PathBuf]) -> (Vec<PathBuf>, Vec<Error>) {
    let mut files = Vec::new();
    let mut seen = FxHashSet::default();
    let mut errors = Vec::new();
    let mut found = |file: PathBuf| {
        if seen.insert(file.clone()) {
            files.push(file);
        }
    };
    for path in paths {
        if path.is_file() {
            found(path.clone());
            continue;
        }
        if !path.exists() {
            errors.push(Error::Missing { file: path.clone() });
            continue;
        }
        let walk = walkdir::WalkDir::new(path)
            .follow_links(true)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|e| e.depth() == 0 || !is_hidden(e.path()));
        for entry in walk {
            match entry {
                Ok(e) if e.file_type().is_file() && is_manifest(e.path()) => found(e.into_path()),
                Ok(_) => {}
                Err(e) => errors.push(Error::Walk { file: path.clone(), detail: e.to_string() }),
            }
        }
    }
    (files, errors)
}

/// Reads one file, refusing files over [`MAX_FILE_BYTES`] before reading them.
pub fn read(path: &Path) -> Result<String, Error> {
    let io = |source| Error::Read { file: path.to_owned(), source };
    let file = File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    if size > MAX_FILE_BYTES {
        return Err(Error::TooLarge { file: path.to_owned(), size });
    }
    let mut text = String::new();
    // The file may grow between stat and read: never read past the cap.
    let read = file.take(MAX_FILE_BYTES + 1).read_to_string(&mut text).map_err(io)?;
    if read as u64 > MAX_FILE_BYTES {
        return Err(Error::TooLarge { file: path.to_owned(), size: read as u64 });
    }
    Ok(text)
}

fn is_manifest(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| EXTENSIONS.contains(&e))
}

fn is_hidden(path: &Path) -> bool {
    path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'))
}
