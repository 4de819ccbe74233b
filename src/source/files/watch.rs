//! Manifest changes as a debounced stream of "something changed" signals.
//!
//! Directories are watched, never single files: editors that save by
//! rename, and Kubernetes ConfigMap mounts (whose `..data` symlink is
//! swapped), replace the file a single-file watch would hold. A directory
//! given is also watched through its parent, so that one removed and made
//! again (`rm -r` then a copy) is watched again. Any change re-reads every
//! source; bursts are coalesced.

use std::ffi::OsString;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::warn;

/// A burst ends after this much quiet...
const QUIET: Duration = Duration::from_millis(25);
/// ...or this long after its first event, whichever comes first.
const MAX_DELAY: Duration = Duration::from_millis(150);

/// Watches the manifest paths; dropping it stops watching.
#[derive(Debug)]
pub struct Watch {
    watcher: RecommendedWatcher,
    events: mpsc::UnboundedReceiver<()>,
    /// Each directory given (absolute), and the identity of the directory
    /// its watch was put on: when that changes, it is watched again.
    dirs: Vec<(PathBuf, Option<Identity>)>,
    /// A change was signalled and its burst not settled yet.
    pending: bool,
}

/// A directory's device and inode.
type Identity = (u64, u64);

/// The watcher could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot watch {}: {source}", path.display())]
pub struct Error {
    path: PathBuf,
    source: notify::Error,
}

// === impl Watch ===

impl Watch {
    /// Watches each directory recursively and through its parent, and for
    /// each file its parent.
    pub fn new(paths: &[PathBuf]) -> Result<Self, Error> {
        let (tx, events) = mpsc::unbounded_channel();
        // Absolute, so that an event's path (the watch's path joined with
        // a name) compares with the paths given whichever watch saw it.
        let paths: Vec<PathBuf> =
            paths.iter().map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone())).collect();
        let files: Vec<OsString> = paths
            .iter()
            .filter(|p| !p.is_dir())
            .filter_map(|p| p.file_name().map(Into::into))
            .collect();
        let dirs: Vec<PathBuf> = paths.iter().filter(|p| p.is_dir()).cloned().collect();
        let mut watcher = notify::recommended_watcher(notifier(tx, dirs.clone(), files))
            .map_err(|source| Error { path: PathBuf::new(), source })?;
        for path in &paths {
            let (point, mode) = watch_point(path);
            watcher.watch(&point, mode).map_err(|source| Error { path: point.clone(), source })?;
        }
        watch_parents(&mut watcher, &dirs);
        let dirs = dirs
            .into_iter()
            .map(|d| {
                let id = identity(&d);
                (d, id)
            })
            .collect();
        Ok(Self { watcher, events, dirs, pending: false })
    }

    /// Waits for a change. [`Self::settle`] then waits for its burst to end.
    pub async fn changed(&mut self) {
        if self.events.recv().await.is_none() {
            return std::future::pending().await;
        }
        self.pending = true;
    }

    /// Waits for the burst of changes seen so far (a signalled change, and
    /// any event queued since) to end: 25 ms without an event, at most
    /// 150 ms, so an editor's write is read whole; at once when there is
    /// none (SIGHUP alone). Then watches again each directory made anew.
    pub async fn settle(&mut self) {
        let mut pending = std::mem::take(&mut self.pending);
        while self.events.try_recv().is_ok() {
            pending = true;
        }
        if pending {
            let deadline = Instant::now() + MAX_DELAY;
            loop {
                let quiet = (Instant::now() + QUIET).min(deadline);
                tokio::select! {
                    event = self.events.recv() => if event.is_none() { break },
                    _ = tokio::time::sleep_until(quiet) => break,
                }
                if Instant::now() >= deadline {
                    break;
                }
            }
        }
        self.rewatch();
    }

    /// A watch follows the directory it was put on, and ends when that is
    /// removed: a directory at the same path again needs a watch of its own.
    /// The rebuild that follows reads whatever it already holds.
    fn rewatch(&mut self) {
        for (dir, watched) in &mut self.dirs {
            let now = identity(dir);
            if now == *watched {
                continue;
            }
            if now.is_some()
                && let Err(e) = self.watcher.watch(dir, RecursiveMode::Recursive)
            {
                // Tried again after the next change.
                warn!(dir = %dir.display(), error = %e, "cannot watch again");
                continue;
            }
            *watched = now;
        }
    }
}

/// The watcher's callback: one signal on `tx` per relevant event, an event
/// being relevant when it changes something under one of `roots` or one of
/// the watched `files`.
fn notifier(
    tx: mpsc::UnboundedSender<()>,
    roots: Vec<PathBuf>,
    files: Vec<OsString>,
) -> impl FnMut(notify::Result<Event>) + Send + 'static {
    move |event: notify::Result<Event>| {
        // An error may mean lost events: re-reading is always safe.
        let relevant = match &event {
            Ok(e) => {
                is_change(&e.kind)
                    && e.paths
                        .iter()
                        .any(|p| roots.iter().any(|d| p.starts_with(d)) || names(p, &files))
            }
            Err(_) => true,
        };
        if relevant {
            let _ = tx.send(());
        }
    }
}

/// Watches the parent of each of `dirs`, so that a directory removed and
/// made again is seen. Best effort: without it, a directory made again is
/// only read again on SIGHUP. A parent already watched recursively (one
/// path given inside another) must keep that watch.
fn watch_parents(watcher: &mut RecommendedWatcher, dirs: &[PathBuf]) {
    for dir in dirs {
        let Some(parent) = dir.parent().filter(|p| !dirs.iter().any(|d| p.starts_with(d))) else {
            continue;
        };
        if let Err(e) = watcher.watch(parent, RecursiveMode::NonRecursive) {
            warn!(dir = %dir.display(), error = %e, "cannot watch the parent directory");
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

fn identity(dir: &Path) -> Option<Identity> {
    std::fs::metadata(dir).ok().filter(|m| m.is_dir()).map(|m| (m.dev(), m.ino()))
}

/// What to watch for `path`: a directory itself, recursively; a file (or a
/// path that does not exist yet) through its parent.
fn watch_point(path: &Path) -> (PathBuf, RecursiveMode) {
    if path.is_dir() {
        return (path.to_owned(), RecursiveMode::Recursive);
    }
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    (parent.to_owned(), RecursiveMode::NonRecursive)
}
