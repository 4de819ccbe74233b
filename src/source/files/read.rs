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

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustc_hash::FxHasher;

use super::Error;
use super::discover::{discover, read};
use crate::manifest::{Loaded, Object};

/// Every file's objects from its last parse, in the order the files were
/// found (so `run` and `check` see the objects in one order). Cheap to
/// clone: the objects are shared.
#[derive(Clone, Debug, Default)]
pub(super) struct Read {
    files: Vec<(PathBuf, Parsed)>,
}

/// One file's objects, and the text they were parsed from.
#[derive(Clone, Debug, Default)]
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

// === impl Read ===

impl Read {
    /// Reads every file under `paths` again, into a new value (this one is
    /// left as it was, for a rebuild that is not committed). A file that
    /// cannot be read or parsed as a whole keeps the objects it had, and so
    /// do the files under a path given that vanished (a file, or a whole
    /// directory being replaced: `rm -r` then a copy) or that could not be
    /// walked to the end. A file deleted from a directory that is still
    /// there takes its objects with it. Returns the errors found.
    pub(super) fn again(&self, paths: &[PathBuf]) -> (Self, Vec<Error>) {
        let (found, mut errors) = discover(paths);
        let last: HashMap<&Path, &Parsed> = self.files.iter().map(|(f, p)| (&**f, p)).collect();
        let mut fresh = Vec::with_capacity(found.len());
        for file in found {
            let last = last.get(&*file).copied();
            let parsed = match read(&file) {
                Ok(text) => parse(&file, &text, last, &mut errors),
                Err(e) => {
                    errors.push(e);
                    last.cloned().unwrap_or_default()
                }
            };
            fresh.push((file, parsed));
        }
        let roots = errors.iter().filter_map(|error| match error {
            Error::Missing { file: root } | Error::Walk { file: root, .. } => Some(root),
            _ => None,
        });
        let roots: Vec<&PathBuf> = roots.collect();
        if !roots.is_empty() {
            // What is left of the last read under those roots was not found
            // this time.
            let found: HashSet<&Path> = fresh.iter().map(|(f, _)| &**f).collect();
            let left = self.files.iter().filter(|(f, _)| {
                !found.contains(&**f) && roots.iter().any(|root| f.starts_with(root))
            });
            let left: Vec<(PathBuf, Parsed)> = left.cloned().collect();
            fresh.extend(left);
        }
        (Self { files: fresh }, errors)
    }

    /// Every object of every file.
    pub(super) fn objects(&self) -> impl Iterator<Item = &Object> + Clone {
        self.files.iter().flat_map(|(_, p)| p.objects.iter())
    }

    /// Every file's objects, in the order of [`Self::objects`].
    pub(super) fn lists(&self) -> Vec<Arc<Vec<Object>>> {
        self.files.iter().map(|(_, p)| p.objects.clone()).collect()
    }
}

/// The objects of `text`: those of `last` when it was parsed from the
/// same text without errors, or when `text` is not YAML at all.
fn parse(file: &Path, text: &str, last: Option<&Parsed>, errors: &mut Vec<Error>) -> Parsed {
    let digest = Digest::of(text);
    if let Some(last) = last.filter(|l| l.digest == Some(digest)) {
        return last.clone();
    }
    let mut loaded = Loaded::default();
    if !loaded.add_text(file, text) {
        errors.extend(loaded.errors.into_iter().map(Error::from));
        return last.cloned().unwrap_or_default();
    }
    let clean = loaded.errors.is_empty();
    errors.extend(loaded.errors.into_iter().map(Error::from));
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

    /// Reads `paths` again into `read`, as a committed rebuild does.
    fn reread(read: &mut Read, paths: &[PathBuf]) -> Vec<Error> {
        let (next, errors) = read.again(paths);
        *read = next;
        errors
    }

    const SERVICE: &str =
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 80}]}\n";

    /// The address of the decoded Service of the only object read.
    fn decoded(files: &Read) -> *const () {
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
        let mut files = Read::default();
        let paths = [dir.path().to_owned()];
        assert!(reread(&mut files, &paths).is_empty());
        let first = decoded(&files);
        assert!(reread(&mut files, &paths).is_empty());
        assert_eq!(decoded(&files), first, "the same text yields the same objects");
        // Same length, other text: parsed again.
        std::fs::write(&path, SERVICE.replace("80", "81")).unwrap();
        assert!(reread(&mut files, &paths).is_empty());
        assert_ne!(decoded(&files), first);
    }

    #[test]
    fn a_directory_replaced_keeps_its_objects_until_it_is_back() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("manifests");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("web.yaml"), SERVICE).unwrap();
        let mut files = Read::default();
        let paths = [dir.clone()];
        assert!(reread(&mut files, &paths).is_empty());
        let first = decoded(&files);

        std::fs::remove_dir_all(&dir).unwrap();
        let errors = reread(&mut files, &paths);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(decoded(&files), first, "the vanished directory's objects are kept");

        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("api.yaml"), SERVICE.replace("web", "api")).unwrap();
        assert!(reread(&mut files, &paths).is_empty());
        let names: Vec<&str> = files.objects().map(|o| o.key().name.as_ref()).collect();
        assert_eq!(names, ["api"], "back: what it holds now, and only that");
    }

    #[test]
    fn a_file_deleted_from_a_directory_takes_its_objects() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("web.yaml"), SERVICE).unwrap();
        let mut files = Read::default();
        let paths = [dir.path().to_owned()];
        assert!(reread(&mut files, &paths).is_empty());
        std::fs::remove_file(dir.path().join("web.yaml")).unwrap();
        assert!(reread(&mut files, &paths).is_empty());
        assert_eq!(files.objects().count(), 0);
    }

    #[test]
    fn a_file_with_a_bad_document_reports_it_on_every_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("web.yaml"), format!("{SERVICE}---\n- not an object\n"))
            .unwrap();
        let mut files = Read::default();
        let paths = [dir.path().to_owned()];
        for _ in 0..2 {
            let errors = reread(&mut files, &paths);
            assert_eq!(errors.len(), 1, "{errors:?}");
            assert!(errors[0].to_string().contains("document 2"), "{}", errors[0]);
            assert_eq!(files.objects().count(), 1);
        }
    }

    #[test]
    fn a_read_not_committed_leaves_the_last_one_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("web.yaml"), SERVICE).unwrap();
        let mut files = Read::default();
        let paths = [dir.path().to_owned()];
        assert!(reread(&mut files, &paths).is_empty());
        let first = decoded(&files);
        std::fs::write(dir.path().join("web.yaml"), SERVICE.replace("80", "81")).unwrap();
        let (next, _) = files.again(&paths);
        assert_ne!(decoded(&next), first);
        assert_eq!(decoded(&files), first, "dropped: the last read still holds");
    }

    #[test]
    fn a_file_under_two_paths_given_is_read_once() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("web.yaml");
        std::fs::write(&file, SERVICE).unwrap();
        let mut files = Read::default();
        assert!(reread(&mut files, &[dir.path().to_owned(), file]).is_empty());
        assert_eq!(files.objects().count(), 1);
    }
}
