//! Manifest changes as a debounced stream of "something changed" signals.
//!
//! Directories are watched, never single files: editors that save by
//! rename, and Kubernetes ConfigMap mounts (whose `..data` symlink is
//! swapped), replace the file a single-file watch would hold. Any change
//! re-reads every source; bursts are coalesced.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// A burst ends after this much quiet...
const QUIET: Duration = Duration::from_millis(25);
/// ...or this long after its first event, whichever comes first.
const MAX_DELAY: Duration = Duration::from_millis(150);

/// Watches the manifest paths; dropping it stops watching.
#[derive(Debug)]
pub struct Watch {
    _watcher: RecommendedWatcher,
    events: mpsc::UnboundedReceiver<()>,
}

/// The watcher could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot watch {}: {source}", path.display())]
pub struct Error {
    path: PathBuf,
    source: notify::Error,
}

// === impl Watch ===

impl Watch {
    /// Watches each directory recursively, and for each file its parent.
    pub fn new(paths: &[PathBuf]) -> Result<Self, Error> {
        let (tx, events) = mpsc::unbounded_channel();
        let files: Vec<OsString> = paths
            .iter()
            .filter(|p| !p.is_dir())
            .filter_map(|p| p.file_name().map(Into::into))
            .collect();
        let watches_dir = paths.iter().any(|p| p.is_dir());
        let mut watcher = notify::recommended_watcher(move |event: notify::Result<Event>| {
            // An error may mean lost events: re-reading is always safe.
            let relevant = match &event {
                Ok(e) => {
                    is_change(&e.kind) && (watches_dir || e.paths.iter().any(|p| names(p, &files)))
                }
                Err(_) => true,
            };
            if relevant {
                let _ = tx.send(());
            }
        })
        .map_err(|source| Error { path: PathBuf::new(), source })?;
        for path in paths {
            let (target, mode) = target(path);
            watcher
                .watch(&target, mode)
                .map_err(|source| Error { path: target.clone(), source })?;
        }
        Ok(Self { _watcher: watcher, events })
    }

    /// Waits for a change, then for the burst it starts to settle.
    pub async fn changed(&mut self) {
        if self.events.recv().await.is_none() {
            return std::future::pending().await;
        }
        let deadline = Instant::now() + MAX_DELAY;
        loop {
            let quiet = (Instant::now() + QUIET).min(deadline);
            tokio::select! {
                event = self.events.recv() => if event.is_none() { return },
                _ = tokio::time::sleep_until(quiet) => return,
            }
            if Instant::now() >= deadline {
                return;
            }
        }
    }
}

/// True when `path` is one of the watched files, or a ConfigMap mount's
/// `..data`-style entry: a file argument's parent directory may hold
/// unrelated files whose changes must not rebuild anything.
fn names(path: &Path, files: &[OsString]) -> bool {
    path.file_name().is_some_and(|name| {
        files.iter().any(|f| f == name) || name.to_string_lossy().starts_with("..")
    })
}

/// Reads (ours included) are not changes; a write completing is.
fn is_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

/// What to watch for `path`: a directory itself, recursively; a file (or a
/// path that does not exist yet) through its parent.
fn target(path: &Path) -> (PathBuf, RecursiveMode) {
    if path.is_dir() {
        return (path.to_owned(), RecursiveMode::Recursive);
    }
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    (parent.to_owned(), RecursiveMode::NonRecursive)
}
