//! WATCH, as the API server's watch cache serves it: a chunked
//! `application/json` body of newline-delimited `{"type":..,"object":..}`
//! events. Without a resourceVersion (or with "0") it opens with an ADDED
//! per current object; with one it replays the log after it, or sends one
//! ERROR 410 when it is older than the last compaction. Then live events,
//! BOOKMARKs at the test's interval when `allowWatchBookmarks` asks, until
//! `timeoutSeconds` or `ApiServer::end_watches` (a clean end), the client
//! leaves, or a compaction ends it with an ERROR 410. A selector turns an object that stops matching into DELETED
//! and one that starts matching into ADDED. `sendInitialEvents=true`
//! (a streaming list) opens with the ADDEDs then a BOOKMARK annotated
//! `k8s.io/initial-events-end`.

use std::borrow::Cow;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::Response;
use hyper::body::{Body, Bytes, Frame};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, interval_at, sleep};

use super::Shared;
use super::list::too_old;
use super::query::{flag, param};
use super::selector::Filter;
use super::status::{Reply, Status};
use super::store::{Change, Event, Kind, Store, TooOld};

/// A chunk is sent once it holds this much (a replay of thousands of
/// events goes out in few writes).
const CHUNK: usize = 256 * 1024;

/// When `timeoutSeconds` is absent (the API server picks a random time
/// around 30 minutes).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

/// One open watch.
struct Watcher {
    shared: Arc<Shared>,
    kind: Kind,
    /// `namespace/`, or empty for all namespaces.
    prefix: String,
    filter: Filter,
    bookmarks: bool,
    /// The compaction epoch and log index read up to.
    epoch: u64,
    cursor: usize,
    /// Every change up to this resourceVersion has been sent (or filtered
    /// out): what a BOOKMARK may carry.
    seen: u64,
    tx: mpsc::Sender<Bytes>,
    _open: Open,
}

/// How a watch begins.
enum Begin {
    /// An ADDED per object, then (a streaming list) maybe the closing
    /// BOOKMARK.
    Initial {
        objects: Vec<Arc<Value>>,
        end_bookmark: bool,
    },
    Replay,
    Expired(Status),
}

/// What wakes a watch besides its client and its clock.
struct Wake {
    /// A change in the store.
    changed: watch::Receiver<()>,
    /// `ApiServer::end_watches`.
    ended: watch::Receiver<()>,
}

/// Counts an open watch in `Shared::watches` for as long as it lives.
struct Open(Arc<Shared>, Kind);

/// The response body: chunks from the watcher's task.
struct Chunks(mpsc::Receiver<Bytes>);

/// Starts a watch of `kind` in `namespace` (or all) and answers with its
/// stream; 400 or 422 for options the API server refuses.
pub(super) fn watch(
    shared: &Arc<Shared>,
    kind: Kind,
    namespace: Option<&str>,
    params: &[(String, String)],
) -> Reply {
    match start(shared, kind, namespace, params) {
        Ok(rx) => {
            let mut reply = Response::new(Chunks(rx).boxed());
            reply.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            reply
        }
        Err(status) => status.reply(),
    }
}

fn start(
    shared: &Arc<Shared>,
    kind: Kind,
    namespace: Option<&str>,
    params: &[(String, String)],
) -> Result<mpsc::Receiver<Bytes>, Status> {
    let filter = Filter::from_query(params)?;
    let timeout = timeout(params)?;
    let rv = param(params, "resourceVersion").filter(|v| !v.is_empty());
    let rv = rv
        .map(|v| v.parse::<u64>())
        .transpose()
        .map_err(|_| Status::bad_request("resourceVersion: Invalid value: must be a number"))?;
    let streaming = initial_events(params)?;
    let (tx, rx) = mpsc::channel(16);
    // Subscribed before reading the store: no change can fall between.
    let wake = Wake { changed: shared.changed.subscribe(), ended: shared.end_watches.subscribe() };
    let prefix = namespace.map(|ns| format!("{ns}/")).unwrap_or_default();
    let store = shared.store.lock();
    let mut watcher = Watcher {
        shared: Arc::clone(shared),
        kind,
        filter,
        bookmarks: flag(params, "allowWatchBookmarks"),
        epoch: store.epoch(),
        cursor: 0,
        seen: store.rv(),
        tx,
        _open: Open::new(shared, kind),
        prefix,
    };
    let begin = watcher.begin(&store, rv, streaming);
    drop(store);
    tokio::spawn(watcher.run(begin, wake, timeout));
    Ok(rx)
}

/// `timeoutSeconds`, or the default.
fn timeout(params: &[(String, String)]) -> Result<Duration, Status> {
    match param(params, "timeoutSeconds").filter(|t| !t.is_empty()) {
        None => Ok(DEFAULT_TIMEOUT),
        Some(text) => text
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| Status::bad_request(format!("invalid timeoutSeconds {text:?}"))),
    }
}

/// Whether the watch is a streaming list; 422 for the option combinations
/// the API server's validation refuses.
fn initial_events(params: &[(String, String)]) -> Result<bool, Status> {
    let streaming = flag(params, "sendInitialEvents");
    let version_match = param(params, "resourceVersionMatch").filter(|m| !m.is_empty());
    if !streaming {
        return match version_match {
            None => Ok(false),
            Some(_) => Err(Status::invalid(
                "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
            )),
        };
    }
    if version_match != Some("NotOlderThan") {
        return Err(Status::invalid(
            "resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
        ));
    }
    if !flag(params, "allowWatchBookmarks") {
        return Err(Status::invalid(
            "allowWatchBookmarks: Forbidden: sendInitialEvents requires allowWatchBookmarks=true",
        ));
    }
    Ok(true)
}

// === impl Watcher ===

impl Watcher {
    /// Where the watch starts, read under the store's lock.
    fn begin(&mut self, store: &Store, rv: Option<u64>, streaming: bool) -> Begin {
        match rv.filter(|rv| *rv != 0 && !streaming) {
            None => {
                self.cursor = store.cursor_after(store.rv());
                let objects = store.objects(self.kind).range(self.prefix.clone()..);
                let objects = objects
                    .take_while(|(key, _)| key.starts_with(&self.prefix))
                    .filter(|(_, o)| self.filter.matches(o))
                    .map(|(_, o)| Arc::clone(o))
                    .collect();
                Begin::Initial { objects, end_bookmark: streaming }
            }
            Some(rv) => match store.check(rv) {
                Err(e) => Begin::Expired(too_old(&e)),
                Ok(()) => {
                    self.cursor = store.cursor_after(rv);
                    self.seen = rv;
                    Begin::Replay
                }
            },
        }
    }

    async fn run(mut self, begin: Begin, mut wake: Wake, timeout: Duration) {
        if !self.open(begin).await {
            return;
        }
        let deadline = sleep(timeout);
        tokio::pin!(deadline);
        let every = *self.shared.bookmark_every.lock();
        let mut ticks = interval_at(Instant::now() + every, every);
        while self.pull().await {
            tokio::select! {
                _ = self.tx.closed() => return,
                _ = &mut deadline => return,
                _ = wake.ended.changed() => return,
                changed = wake.changed.changed() => if changed.is_err() { return },
                _ = ticks.tick(), if self.bookmarks => {
                    if !self.send(self.bookmark(false)).await {
                        return;
                    }
                }
            }
        }
    }

    /// Sends what `begin` asked for; false when the watch is over.
    async fn open(&mut self, begin: Begin) -> bool {
        match begin {
            Begin::Expired(status) => {
                let _ = self.send(error_line(&status)).await;
                false
            }
            Begin::Replay => true,
            Begin::Initial { objects, end_bookmark } => {
                let mut chunk = Vec::new();
                for object in objects {
                    push_event(&mut chunk, "ADDED", &object);
                    if chunk.len() >= CHUNK && !self.send(std::mem::take(&mut chunk)).await {
                        return false;
                    }
                }
                if end_bookmark {
                    chunk.extend(self.bookmark(true));
                }
                chunk.is_empty() || self.send(chunk).await
            }
        }
    }

    /// Sends the changes logged since the last pull; false when the watch
    /// is over (the client left, or a compaction ended it with 410).
    async fn pull(&mut self) -> bool {
        let read = {
            let store = self.shared.store.lock();
            match store.events_from(self.epoch, self.cursor) {
                Some(events) => Ok((events.to_vec(), store.rv())),
                None => Err(TooOld { requested: self.seen, oldest: store.compacted() }),
            }
        };
        let (events, rv) = match read {
            Ok(read) => read,
            Err(e) => {
                let _ = self.send(error_line(&too_old(&e))).await;
                return false;
            }
        };
        self.cursor += events.len();
        let mut chunk = Vec::new();
        for event in &events {
            if let Some((kind, object)) = self.convert(event) {
                push_event(&mut chunk, kind, &object);
            }
            if chunk.len() >= CHUNK && !self.send(std::mem::take(&mut chunk)).await {
                return false;
            }
        }
        self.seen = rv;
        chunk.is_empty() || self.send(chunk).await
    }

    /// What this watch sends for `event`, if anything (the watch cache's
    /// rules for a selector).
    fn convert<'e>(&self, event: &'e Event) -> Option<(&'static str, Cow<'e, Value>)> {
        if event.kind != self.kind || !event.key.starts_with(&self.prefix) {
            return None;
        }
        let now = event.change != Change::Deleted && self.filter.matches(&event.object);
        let before = event.prev.as_ref().is_some_and(|p| self.filter.matches(p));
        match (now, before) {
            (true, false) => Some(("ADDED", Cow::Borrowed(&*event.object))),
            (true, true) => Some(("MODIFIED", Cow::Borrowed(&*event.object))),
            (false, true) if event.change == Change::Deleted => {
                Some(("DELETED", Cow::Borrowed(&*event.object)))
            }
            // Stopped matching: its previous state, at this change's
            // resourceVersion.
            (false, true) => {
                let mut object = event.prev.as_deref().cloned().unwrap_or_default();
                object["metadata"]["resourceVersion"] = json!(event.rv.to_string());
                Some(("DELETED", Cow::Owned(object)))
            }
            (false, false) => None,
        }
    }

    /// A BOOKMARK line at the resourceVersion seen so far; `end` marks the
    /// end of a streaming list's initial events.
    fn bookmark(&self, end: bool) -> Vec<u8> {
        let mut metadata = json!({"resourceVersion": self.seen.to_string()});
        if end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let object = json!({"kind": self.kind.name(), "apiVersion": self.kind.api_version(), "metadata": metadata});
        let mut line = Vec::new();
        push_event(&mut line, "BOOKMARK", &object);
        line
    }

    /// False when the client is gone.
    async fn send(&self, chunk: Vec<u8>) -> bool {
        self.tx.send(Bytes::from(chunk)).await.is_ok()
    }
}

fn push_event(out: &mut Vec<u8>, kind: &str, object: &Value) {
    out.extend_from_slice(b"{\"type\":\"");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\",\"object\":");
    serde_json::to_writer(&mut *out, object).expect("a JSON value serialises");
    out.extend_from_slice(b"}\n");
}

fn error_line(status: &Status) -> Vec<u8> {
    let mut line = Vec::new();
    push_event(&mut line, "ERROR", &status.to_json());
    line
}

// === impl Open ===

impl Open {
    fn new(shared: &Arc<Shared>, kind: Kind) -> Open {
        shared.watches[kind.index()].fetch_add(1, Ordering::SeqCst);
        Open(Arc::clone(shared), kind)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.watches[self.1.index()].fetch_sub(1, Ordering::SeqCst);
    }
}

// === impl Chunks ===

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|chunk| chunk.map(|c| Ok(Frame::data(c))))
    }
}
