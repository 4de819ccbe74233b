//! YAML documents to typed Kubernetes objects.

use std::path::Path;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use k8s_openapi::api::core::v1 as k8s;

use super::node::{Lines, Node, Value, json_str_len};
use super::path::FieldPath;
use super::pod::Pod;
use super::unknown::{self, UnknownField};
use super::{
    DEFAULT_NAMESPACE, Error, Kind, MAX_OBJECT_BYTES, Object, ObjectKey, Origin, Resource,
};
use super::{go, kinds};

/// Where one document sits, to name it in errors.
pub(crate) struct Document<'a> {
    pub(crate) file: &'a Arc<Path>,
    /// 1-based position of the document in its file.
    pub(crate) index: usize,
}

/// Decodes one document: an object, a `List` of objects, or nothing (an
/// empty document or a kind svcproxy does not read). The document is
/// consumed: each object's part of it is freed once the object is built.
pub(crate) fn decode(doc: &Document<'_>, node: Node, out: &mut Vec<Object>) -> Result<(), Error> {
    decode_as(doc, node, None, out)
}

/// `implied` is the (apiVersion, kind) of items of a typed list such as
/// `ServiceList`, whose items the API server writes without them.
fn decode_as(
    doc: &Document<'_>,
    node: Node,
    implied: Option<(&str, &str)>,
    out: &mut Vec<Object>,
) -> Result<(), Error> {
    let not_object = |detail: String| Error::NotObject {
        file: doc.file.to_path_buf(),
        line: node.line,
        document: doc.index,
        detail,
    };
    let (api_version, kind) = type_of(&node, implied).map_err(not_object)?;
    let (api_version, kind) = (api_version.to_owned(), kind.to_owned());
    if let Some(item_kind) = kind.strip_suffix("List") {
        return decode_list(doc, node, (&api_version, item_kind), out);
    }
    let Some(read) = kind_read(&api_version, &kind) else {
        if let Some(message) = kinds::no_match(&api_version, &kind) {
            return Err(not_object(message));
        }
        tracing::debug!(file = %doc.file.display(), document = doc.index, %api_version, %kind, "skipping kind");
        return Ok(());
    };
    check_size(doc, &node, read, implied)?;
    let mut node = node;
    if let Some((api, kind)) = implied {
        node.insert("apiVersion", api);
        node.insert("kind", kind);
    }
    let lines = Arc::new(node.lines());
    let (resource, unknown) = resource(read, node, doc.file, &lines)?;
    let origin = Origin::File { file: doc.file.clone(), lines };
    out.push(Object::new(origin, resource).with_unknown(unknown::shared(unknown)));
    Ok(())
}

/// The kind svcproxy reads at this `apiVersion` and `kind`, if any.
fn kind_read(api_version: &str, kind: &str) -> Option<Kind> {
    match (api_version, kind) {
        ("v1", "Service") => Some(Kind::Service),
        ("v1", "Endpoints") => Some(Kind::Endpoints),
        ("v1", "Pod") => Some(Kind::Pod),
        ("v1", "Node") => Some(Kind::Node),
        ("discovery.k8s.io/v1", "EndpointSlice") => Some(Kind::EndpointSlice),
        _ => None,
    }
}

/// Rejects an object the API server would not store (over
/// [`MAX_OBJECT_BYTES`] as JSON), measured before anything is built of it.
fn check_size(
    doc: &Document<'_>,
    node: &Node,
    kind: Kind,
    implied: Option<(&str, &str)>,
) -> Result<(), Error> {
    let mut size = node.json_len();
    for (key, value) in implied.map(|(a, k)| [("apiVersion", a), ("kind", k)]).unwrap_or_default() {
        if node.get(key).is_none() {
            size += json_str_len(key) + 1 + json_str_len(value) + 1;
        }
    }
    if size <= MAX_OBJECT_BYTES {
        return Ok(());
    }
    let key = Box::new(object_key(node, kind));
    Err(Error::TooLarge { file: doc.file.to_path_buf(), line: node.line, key, size })
}

/// The `apiVersion` and `kind` of a mapping (`implied` for what it does
/// not name), or why it is not a Kubernetes object.
fn type_of<'n>(
    node: &'n Node,
    implied: Option<(&'n str, &'n str)>,
) -> Result<(&'n str, &'n str), String> {
    if !matches!(node.value, Value::Map(_)) {
        return Err(format!("not a Kubernetes object: {}, expected an object", node.shape()));
    }
    match (
        node.get_str("apiVersion").or(implied.map(|i| i.0)),
        node.get_str("kind").or(implied.map(|i| i.1)),
    ) {
        (Some(a), Some(k)) => Ok((a, k)),
        (a, k) => {
            let missing: Vec<&str> = [(a, "apiVersion not set"), (k, "kind not set")]
                .into_iter()
                .filter_map(|(v, msg)| v.is_none().then_some(msg))
                .collect();
            Err(format!("not a Kubernetes object: {}", missing.join(", ")))
        }
    }
}

/// The typed object of a kind svcproxy reads, and the fields of `json`
/// its type does not have.
fn resource(
    kind: Kind,
    node: Node,
    file: &Path,
    lines: &Lines,
) -> Result<(Resource, Vec<UnknownField>), Error> {
    let at = (file, lines);
    Ok(match kind {
        Kind::Service => typed(node, at, kind).map(|(o, u)| (Resource::Service(Arc::new(o)), u))?,
        Kind::Endpoints => {
            typed(node, at, kind).map(|(o, u)| (Resource::Endpoints(Arc::new(o)), u))?
        }
        Kind::Pod => typed::<k8s::Pod>(node, at, kind)
            .map(|(o, u)| (Resource::Pod(Arc::new(Pod::from(o))), u))?,
        Kind::EndpointSlice => {
            typed(node, at, kind).map(|(o, u)| (Resource::EndpointSlice(Arc::new(o)), u))?
        }
        Kind::Node => typed(node, at, kind).map(|(o, u)| (Resource::Node(Arc::new(o)), u))?,
    })
}

/// `kind: List` (and `ServiceList`, `PodList`, ...) as `kubectl get -o yaml`
/// writes them: each item is an object of its own, decoded and freed in
/// turn.
fn decode_list(
    doc: &Document<'_>,
    node: Node,
    (api_version, item_kind): (&str, &str),
    out: &mut Vec<Object>,
) -> Result<(), Error> {
    // `kind: List` items name their own kind; a typed list implies it.
    let implied = (!item_kind.is_empty()).then_some((api_version, item_kind));
    let line = node.line;
    let items = match node.value {
        Value::Map(entries) => entries.into_iter().find(|e| e.key == "items").map(|e| e.node.value),
        _ => None,
    };
    let items = match items {
        Some(Value::Seq(items)) => items,
        Some(Value::Null) | None => return Ok(()),
        Some(_) => {
            return Err(Error::NotObject {
                file: doc.file.to_path_buf(),
                line,
                document: doc.index,
                detail: "items: must be an array of objects".to_owned(),
            });
        }
    };
    let mut errors = Vec::new();
    for item in items {
        // One broken item must not hide the others.
        if let Err(e) = decode_as(doc, item, implied, out) {
            errors.push(e);
        }
    }
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => Err(Error::Many(errors)),
    }
}

/// `node` as a `T`, and the fields of `node` that `T` does not have.
fn typed<T: DeserializeOwned>(
    node: Node,
    (file, lines): (&Path, &Lines),
    kind: Kind,
) -> Result<(T, Vec<UnknownField>), Error> {
    let key = Box::new(object_key(&node, kind));
    let mut unknown = unknown::Collect::default();
    let mut ignored = |path: serde_ignored::Path<'_>| unknown.ignored(path);
    let decoded = serde_path_to_error::deserialize::<_, T>(serde_ignored::Deserializer::new(
        node,
        &mut ignored,
    ));
    let decoded = decoded.map_err(|e| {
        let mut path = FieldPath::from(e.path());
        let message = e.inner().to_string();
        let detail = match missing_field(&message) {
            Some(field) => {
                path = path.field(field.to_owned());
                "Required value".to_owned()
            }
            None => go::reword::<T>(&path, &message),
        };
        Error::Decode { file: file.to_path_buf(), line: lines.of(&path), key, path, detail }
    })?;
    Ok((decoded, unknown.finish::<T>(lines)))
}

/// The key read from the tree's metadata, for errors before typed decoding.
fn object_key(node: &Node, kind: Kind) -> ObjectKey {
    let meta = node.get("metadata");
    let field = |name| meta.and_then(|m| m.get_str(name)).filter(|s| !s.is_empty());
    let namespace = match kind {
        Kind::Node => "",
        _ => field("namespace").unwrap_or(DEFAULT_NAMESPACE),
    };
    ObjectKey { kind, namespace: namespace.into(), name: field("name").unwrap_or_default().into() }
}

fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.split('`').next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_missing_field_name_from_serde() {
        assert_eq!(missing_field("missing field `port`"), Some("port"));
        assert_eq!(missing_field("invalid type: string"), None);
    }
}
