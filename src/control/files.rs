//! The manifest files as last read: each file's objects, reused while the
//! file's text is unchanged.
//!
//! Parsing and decoding dominate a rebuild (about 1.2 s for 10,000
//! Services with their EndpointSlices), and a reload usually follows one
//! changed file among many: every file is still read, but only one whose
//! text differs from the last parse is parsed again. A file is recognised
//! by its length and a 64-bit hash of its text (FxHash's byte hash: every
//! file is hashed on every rebuild, 6 MiB at 10,000 Services, and the
//! texts are the operator's, not an adversary's), not by its mtime, which
//! a quick rewrite may leave unchanged.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustc_hash::FxHasher;

use crate::manifest::{self, Loaded, Object};

/// Every file's objects from its last parse.
#[derive(Debug, Default)]
pub(super) struct Files {
    files: HashMap<PathBuf, Parsed>,
}

/// One file's objects, and the text they were parsed from.
#[derive(Debug, Default)]
struct Parsed {
    /// Shared with the last-good record of the last build.
    objects: Arc<Vec<Object>>,
    /// `None` when parsing reported errors: such a file is parsed on every
    /// rebuild, so its errors are reported on every rebuild too.
    digest: Option<Digest>,
}

/// A text's length and hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Digest {
    len: usize,
    hash: u64,
}

// === impl Files ===

impl Files {
    /// Reads every file under `paths`; a file that cannot be read or parsed
    /// as a whole keeps the objects it had, and so do the files under a
    /// path given that vanished (a file, or a whole directory being
    /// replaced: `rm -r` then a copy) or that could not be walked to the
    /// end. A file deleted from a directory that is still there takes its
    /// objects with it. Returns the errors found.
    pub(super) fn read(&mut self, paths: &[PathBuf]) -> Vec<manifest::Error> {
        let (found, mut errors) = manifest::discover(paths);
        let mut fresh = HashMap::with_capacity(found.len());
        for file in found {
            let last = self.files.remove(&file);
            let parsed = match manifest::read(&file) {
                Ok(text) => parse(&file, &text, last, &mut errors),
                Err(e) => {
                    errors.push(e);
                    last.unwrap_or_default()
                }
            };
            fresh.insert(file, parsed);
        }
        for error in &errors {
            if let manifest::Error::Missing { file: root }
            | manifest::Error::Walk { file: root, .. } = error
            {
                // What is left of the last read under `root` was not found
                // this time.
                for (file, parsed) in self.files.extract_if(|f, _| f.starts_with(root)) {
                    fresh.entry(file).or_insert(parsed);
                }
            }
        }
        self.files = fresh;
        errors
    }

    /// Every object of every file.
    pub(super) fn objects(&self) -> impl Iterator<Item = &Object> + Clone {
        self.files.values().flat_map(|p| p.objects.iter())
    }

    /// Every file's objects, in the order of [`Self::objects`].
    pub(super) fn lists(&self) -> Vec<Arc<Vec<Object>>> {
        self.files.values().map(|p| p.objects.clone()).collect()
    }
}

/// The objects of `text`: those of `last` when it was parsed from the
/// same text without errors, or when `text` is not YAML at all.
fn parse(
    file: &Path,
    text: &str,
    last: Option<Parsed>,
    errors: &mut Vec<manifest::Error>,
) -> Parsed {
    let digest = Digest::of(text);
    let last = match last {
        Some(last) if last.digest == Some(digest) => return last,
        last => last,
    };
    let mut loaded = Loaded::default();
    if !loaded.add_text(file, text) {
        errors.append(&mut loaded.errors);
        return last.unwrap_or_default();
    }
    let clean = loaded.errors.is_empty();
    errors.append(&mut loaded.errors);
    Parsed { objects: Arc::new(loaded.objects), digest: clean.then_some(digest) }
}

// === impl Digest ===

impl Digest {
    fn of(text: &str) -> Self {
        let mut hasher = FxHasher::default();
        text.hash(&mut hasher);
        Self { len: text.len(), hash: hasher.finish() }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::manifest::Resource;

    const SERVICE: &str =
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 80}]}\n";

    /// The address of the decoded Service of the only object read.
    fn decoded(files: &Files) -> *const () {
        let objects: Vec<&Object> = files.objects().collect();
        match &objects[..] {
            [object] => match &object.resource {
                Resource::Service(s) => Arc::as_ptr(s).cast(),
                other => panic!("not a Service: {other:?}"),
            },
            other => panic!("{} objects", other.len()),
        }
    }

    #[test]
    fn an_unchanged_file_is_not_parsed_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.yaml");
        std::fs::write(&path, SERVICE).unwrap();
        let mut files = Files::default();
        let paths = [dir.path().to_owned()];
        assert!(files.read(&paths).is_empty());
        let first = decoded(&files);
        assert!(files.read(&paths).is_empty());
        assert_eq!(decoded(&files), first, "the same text yields the same objects");
        // Same length, other text: parsed again.
        std::fs::write(&path, SERVICE.replace("80", "81")).unwrap();
        assert!(files.read(&paths).is_empty());
        assert_ne!(decoded(&files), first);
    }

    #[test]
    fn a_directory_replaced_keeps_its_objects_until_it_is_back() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("manifests");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("web.yaml"), SERVICE).unwrap();
        let mut files = Files::default();
        let paths = [dir.clone()];
        assert!(files.read(&paths).is_empty());
        let first = decoded(&files);

        std::fs::remove_dir_all(&dir).unwrap();
        let errors = files.read(&paths);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(decoded(&files), first, "the vanished directory's objects are kept");

        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("api.yaml"), SERVICE.replace("web", "api")).unwrap();
        assert!(files.read(&paths).is_empty());
        let names: Vec<&str> = files.objects().map(|o| o.key().name.as_ref()).collect();
        assert_eq!(names, ["api"], "back: what it holds now, and only that");
    }

    #[test]
    fn a_file_deleted_from_a_directory_takes_its_objects() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("web.yaml"), SERVICE).unwrap();
        let mut files = Files::default();
        let paths = [dir.path().to_owned()];
        assert!(files.read(&paths).is_empty());
        std::fs::remove_file(dir.path().join("web.yaml")).unwrap();
        assert!(files.read(&paths).is_empty());
        assert_eq!(files.objects().count(), 0);
    }

    #[test]
    fn a_file_with_a_bad_document_reports_it_on_every_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("web.yaml"), format!("{SERVICE}---\n- not an object\n"))
            .unwrap();
        let mut files = Files::default();
        let paths = [dir.path().to_owned()];
        for _ in 0..2 {
            let errors = files.read(&paths);
            assert_eq!(errors.len(), 1, "{errors:?}");
            assert!(errors[0].to_string().contains("document 2"), "{}", errors[0]);
            assert_eq!(files.objects().count(), 1);
        }
    }
}
