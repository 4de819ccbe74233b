//! YAML documents as trees that remember the line of every field.
//!
//! Kubernetes types (k8s-openapi) know nothing of source positions, so a
//! document is first read into a [`Node`] tree with line numbers; its
//! [`Lines`] (for error messages that point at `file:line`) are kept as
//! 16 bytes a field, and the tree itself is consumed as the typed object
//! is read from it (`typed.rs`).

use std::fmt;

use compact_str::CompactString;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

use super::path::{FieldPath, ROOT_DIGEST, field_digest, index_digest};

/// A YAML value with the line it starts on (1-based).
#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) line: u32,
    pub(crate) value: Value,
}

/// The shape of a YAML value; mapping keys keep their own line.
///
/// 24 bytes, a node 32 and an entry 64: the whole tree of a document
/// exists at once, and a list item such as `- ip: 10.0.0.1` is a node and
/// an entry with both strings inline (it was 152 bytes in four blocks).
#[derive(Debug)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(CompactString),
    Seq(Box<[Node]>),
    Map(Box<[Entry]>),
}

// The sizes the tree's cost was measured with (benches/input.rs).
const _: () = assert!(size_of::<Value>() == 24 && size_of::<Node>() == 32);
const _: () = assert!(size_of::<Entry>() == 64);

/// One mapping entry: the key, the line of the key, the value.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) key: CompactString,
    pub(crate) line: u32,
    pub(crate) node: Node,
}

/// Where each field of one object starts, by field path.
#[derive(Clone, Debug, Default)]
pub struct Lines {
    root: u32,
    /// (digest of a field's path, its line), sorted by digest: kept for as
    /// long as the object, so no path is stored, only its digest.
    fields: Box<[(u64, u32)]>,
    /// False for objects that did not come from YAML text (the API server,
    /// benches): presence is then unknown and every field counts as written.
    known: bool,
}

// === impl Node ===

impl Node {
    /// The value of `key` when this node is a mapping.
    pub(crate) fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|e| e.key == key).map(|e| &e.node),
            _ => None,
        }
    }

    /// The string value of `key` when this node is a mapping with that key.
    pub(crate) fn get_str(&self, key: &str) -> Option<&str> {
        match self.get(key).map(|n| &n.value) {
            Some(Value::Str(s)) => Some(s),
            _ => None,
        }
    }

    /// Sets `key` to the string `value` when this node is a mapping
    /// without it (the `kind` a typed list implies for its items).
    pub(crate) fn insert(&mut self, key: &str, value: &str) {
        let line = self.line;
        if let Value::Map(entries) = &mut self.value
            && !entries.iter().any(|e| e.key == key)
        {
            let node = Node { line, value: Value::Str(value.into()) };
            let mut all = std::mem::take(entries).into_vec();
            all.push(Entry { key: key.into(), line, node });
            *entries = all.into_boxed_slice();
        }
    }

    /// A word for the kind of value, for error messages: JSON's, as
    /// kubectl speaks of manifests.
    pub(crate) fn shape(&self) -> &'static str {
        match self.value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) | Value::UInt(_) | Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "an array",
            Value::Map(_) => "an object",
        }
    }

    /// The line of every field path of the tree.
    pub(crate) fn lines(&self) -> Lines {
        // Counted first: the object keeps this for its lifetime, and a
        // doubling vector would briefly hold twice as much.
        let mut fields = Vec::with_capacity(self.count());
        self.walk(ROOT_DIGEST, &mut fields);
        fields.sort_unstable_by_key(|&(digest, _)| digest);
        Lines { root: self.line, fields: fields.into_boxed_slice(), known: true }
    }

    /// How many fields and items the tree holds below this node.
    fn count(&self) -> usize {
        match &self.value {
            Value::Seq(items) => items.len() + items.iter().map(Node::count).sum::<usize>(),
            Value::Map(entries) => {
                entries.len() + entries.iter().map(|e| e.node.count()).sum::<usize>()
            }
            _ => 0,
        }
    }

    /// `at` is the digest of this node's path.
    fn walk(&self, at: u64, fields: &mut Vec<(u64, u32)>) {
        match &self.value {
            Value::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    let digest = index_digest(at, i);
                    fields.push((digest, item.line));
                    item.walk(digest, fields);
                }
            }
            Value::Map(entries) => {
                for e in entries {
                    let digest = field_digest(at, &e.key);
                    fields.push((digest, e.line));
                    e.node.walk(digest, fields);
                }
            }
            _ => {}
        }
    }

    /// The length of this node written as compact JSON, counted without
    /// writing it: an object too large to keep is rejected before it is
    /// built.
    pub(crate) fn json_len(&self) -> usize {
        match &self.value {
            Value::Null => 4,
            Value::Bool(b) => {
                if *b {
                    4
                } else {
                    5
                }
            }
            Value::Int(i) => i.to_string().len(),
            Value::UInt(u) => u.to_string().len(),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(4, |n| n.to_string().len()),
            Value::Str(s) => json_str_len(s),
            Value::Seq(items) => {
                2 + items.len().saturating_sub(1) + items.iter().map(Node::json_len).sum::<usize>()
            }
            Value::Map(entries) => {
                let each = entries.iter().map(|e| json_str_len(&e.key) + 1 + e.node.json_len());
                2 + entries.len().saturating_sub(1) + each.sum::<usize>()
            }
        }
    }
}

/// `s` as a JSON string: quoted, with serde_json's escapes.
pub(crate) fn json_str_len(s: &str) -> usize {
    let escapes: usize = s
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 1,
            0..0x20 => 5,
            _ => 0,
        })
        .sum();
    2 + s.len() + escapes
}

// === impl Lines ===

impl Lines {
    /// The line of `path`, or of its nearest enclosing field that exists
    /// (a missing field is reported where its parent starts).
    pub fn of(&self, path: &FieldPath) -> u32 {
        path.digests().into_iter().find_map(|d| self.line(d)).unwrap_or(self.root)
    }

    fn line(&self, digest: u64) -> Option<u32> {
        let at = self.fields.binary_search_by_key(&digest, |&(d, _)| d).ok()?;
        Some(self.fields[at].1)
    }

    /// True when the manifest spelled out `path` (k8s-openapi defaults
    /// missing required fields to zero, so presence is read here).
    pub fn contains(&self, path: &FieldPath) -> bool {
        !self.known || path.digests().first().is_some_and(|d| self.line(*d).is_some())
    }

    /// The line the object starts on.
    pub fn root(&self) -> u32 {
        self.root
    }
}

// === impl Deserialize for Node ===

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<Value>::deserialize(deserializer)?;
        let line = u32::try_from(spanned.referenced.line()).unwrap_or(u32::MAX);
        Ok(Node { line, value: spanned.value })
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::UInt(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.into()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v.into()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        // Boxed to its length: a vector's first allocation holds 4, and a
        // one-item list (`addresses: [ip]`, one per endpoint) would keep 4
        // nodes' room until decoded.
        Ok(Value::Seq(items.into_boxed_slice()))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<Key>>()? {
            let line = u32::try_from(key.referenced.line()).unwrap_or(u32::MAX);
            let node = map.next_value::<Node>()?;
            entries.push(Entry { key: key.value.0, line, node });
        }
        // As for lists: a one-field mapping (`- ip: ...`) would hold 4
        // entries' room, 256 bytes.
        Ok(Value::Map(entries.into_boxed_slice()))
    }
}

/// A mapping key: Kubernetes keys are strings, but YAML allows `80: x` or
/// `true: x`; those are kept as their text.
struct Key(CompactString);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::Str(s) => Ok(Key(s)),
            Value::Int(i) => Ok(Key(i.to_string().into())),
            Value::UInt(u) => Ok(Key(u.to_string().into())),
            Value::Bool(b) => Ok(Key(b.to_string().into())),
            Value::Float(f) => Ok(Key(f.to_string().into())),
            Value::Null => Ok(Key("null".into())),
            Value::Seq(_) | Value::Map(_) => {
                Err(de::Error::custom("a mapping key must be a scalar"))
            }
        }
    }
}
