//! LIST and GET. A LIST reads one resourceVersion: the current one, or
//! with `resourceVersionMatch=Exact` the one asked for, or a continue
//! token's. Pages follow key order (`namespace/name`, as etcd's keys), and
//! a continue token holds the page's resourceVersion and last key, so the
//! next page shows the same state (rebuilt from the log) even when objects
//! changed in between, as etcd's snapshot reads do. The items carry no
//! `kind`/`apiVersion`, as in a real typed list.

use std::ops::Bound;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

use super::Shared;
use super::query::param;
use super::selector::Filter;
use super::status::{self, Reply, Status};
use super::store::{Kind, Store, TooOld};

/// What the API server says of a continue token older than a compaction.
const CONTINUE_EXPIRED: &str = "The provided continue parameter is too old to display a \
    consistent list result. You can start a new list without the continue parameter, or use \
    the continue token in this response to retrieve the remainder of the results. Continuing \
    with the provided token results in an inconsistent list - objects that were created, \
    modified, or deleted between the time the first chunk was returned and now may show up in \
    the list.";

/// A LIST of `kind`, in `namespace` or all; waits first while the test
/// holds LISTs of `kind`.
pub(super) async fn list(
    shared: &Shared,
    kind: Kind,
    namespace: Option<&str>,
    params: &[(String, String)],
) -> Reply {
    let mut held = shared.holds[kind.index()].subscribe();
    // The sender lives as long as `shared`: this cannot fail.
    let _ = held.wait_for(|held| !held).await;
    // Serialised after the lock is released.
    let page = page(&shared.store.lock(), kind, namespace, params);
    match page {
        Ok(body) => status::ok(&body),
        Err(status) => status.reply(),
    }
}

/// A GET of one object; 404 when there is none.
pub(super) fn get(shared: &Shared, kind: Kind, namespace: &str, name: &str) -> Reply {
    let store = shared.store.lock();
    match store.objects(kind).get(&format!("{namespace}/{name}")) {
        Some(object) => status::ok(object),
        None => Status::not_found(format!("{} \"{name}\" not found", kind.qualified())).reply(),
    }
}

fn page(
    store: &Store,
    kind: Kind,
    namespace: Option<&str>,
    params: &[(String, String)],
) -> Result<Value, Status> {
    let filter = Filter::from_query(params)?;
    let limit = limit(params)?;
    let (rv, after) = read_point(store, params)?;
    let prefix = namespace.map(|ns| format!("{ns}/")).unwrap_or_default();
    let from = match &after {
        Some(key) => Bound::Excluded(key.as_str()),
        None => Bound::Included(prefix.as_str()),
    };
    let objects = store.at(kind, rv, from).map_err(|e| too_old(&e))?;
    let mut matching =
        objects.take_while(|(key, _)| key.starts_with(&prefix)).filter(|(_, o)| filter.matches(o));
    let mut items = Vec::new();
    let mut last = None;
    for (key, object) in matching.by_ref() {
        items.push(item(object));
        last = Some(key);
        if items.len() == limit {
            break;
        }
    }
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if let Some(last) = last.filter(|_| items.len() == limit && matching.next().is_some()) {
        metadata["continue"] = json!(encode_continue(rv, last));
    }
    let list_kind = format!("{}List", kind.name());
    Ok(
        json!({"kind": list_kind, "apiVersion": kind.api_version(), "metadata": metadata, "items": items}),
    )
}

/// `limit`; no limit (or 0) is `usize::MAX`.
fn limit(params: &[(String, String)]) -> Result<usize, Status> {
    match param(params, "limit").filter(|l| !l.is_empty()) {
        None => Ok(usize::MAX),
        Some(text) => match text.parse::<usize>() {
            Ok(0) => Ok(usize::MAX),
            Ok(n) => Ok(n),
            Err(_) => Err(Status::bad_request(format!("invalid limit {text:?}"))),
        },
    }
}

/// The resourceVersion a LIST reads and the key it continues after.
fn read_point(store: &Store, params: &[(String, String)]) -> Result<(u64, Option<String>), Status> {
    let rv = param(params, "resourceVersion").filter(|v| !v.is_empty());
    let version_match = param(params, "resourceVersionMatch").filter(|m| !m.is_empty());
    if let Some(token) = param(params, "continue").filter(|c| !c.is_empty()) {
        if rv.is_some() {
            let message = "specifying resource version is not allowed when using continue";
            return Err(Status::bad_request(message));
        }
        let (rv, key) = decode_continue(token)?;
        store.check(rv).map_err(|_| Status::expired(CONTINUE_EXPIRED))?;
        return Ok((rv, Some(key)));
    }
    let Some(rv) = rv else {
        return match version_match {
            None => Ok((store.rv(), None)),
            Some(_) => Err(Status::invalid(
                "resourceVersionMatch is forbidden unless resourceVersion is provided",
            )),
        };
    };
    let number = rv.parse::<u64>().map_err(|_| {
        Status::bad_request(format!("resourceVersion: Invalid value: {rv:?}: must be a number"))
    })?;
    match version_match {
        // At least as new as `rv`: the current state is.
        None | Some("NotOlderThan") => Ok((store.rv(), None)),
        Some("Exact") if number == 0 => Err(Status::invalid(
            "resourceVersionMatch \"Exact\" is forbidden for resourceVersion \"0\"",
        )),
        Some("Exact") => {
            store.check(number).map_err(|e| too_old(&e))?;
            Ok((number, None))
        }
        Some(other) => {
            Err(Status::invalid(format!("resourceVersionMatch: Unsupported value: {other:?}")))
        }
    }
}

/// 410 for a resourceVersion older than the last compaction, worded as
/// etcd's watch cache words it.
pub(super) fn too_old(e: &TooOld) -> Status {
    Status::expired(format!("too old resource version: {} ({})", e.requested, e.oldest))
}

/// An object as a list item: without `kind` and `apiVersion`.
fn item(object: &Value) -> Value {
    let mut item = object.clone();
    if let Some(fields) = item.as_object_mut() {
        fields.remove("kind");
        fields.remove("apiVersion");
    }
    item
}

/// The API server's token shape: base64 of
/// `{"v":"meta.k8s.io/v1","rv":N,"start":"<key>\u0000"}` (the key after
/// the last one returned).
fn encode_continue(rv: u64, last: &str) -> String {
    let token = json!({"v": "meta.k8s.io/v1", "rv": rv, "start": format!("{last}\u{0}")});
    BASE64.encode(token.to_string())
}

fn decode_continue(token: &str) -> Result<(u64, String), Status> {
    let invalid = |why: &str| Status::bad_request(format!("continue key is not valid: {why}"));
    let bytes = BASE64.decode(token).map_err(|e| invalid(&e.to_string()))?;
    let token: Value = serde_json::from_slice(&bytes).map_err(|e| invalid(&e.to_string()))?;
    if token["v"] != "meta.k8s.io/v1" {
        return Err(invalid("incorrect encoded start resourceVersion (version meta.k8s.io/v1)"));
    }
    let rv = token["rv"].as_u64().ok_or_else(|| invalid("no resourceVersion"))?;
    let start = token["start"].as_str().ok_or_else(|| invalid("no start key"))?;
    Ok((rv, start.trim_end_matches('\u{0}').to_owned()))
}
