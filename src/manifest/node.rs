//! YAML documents as trees that remember the line of every field.
//!
//! Kubernetes types (k8s-openapi) know nothing of source positions, so a
//! document is first read into a [`Node`] tree with line numbers, then split
//! into plain JSON (for typed decoding) and a [`Lines`] map (for error
//! messages that point at `file:line`).

use std::collections::HashMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value as Json;
use serde_saphyr::Spanned;

use super::path::FieldPath;

/// A YAML value with the line it starts on (1-based).
#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) line: u32,
    pub(crate) value: Value,
}

/// The shape of a YAML value; mapping keys keep their own line.
#[derive(Debug)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<Entry>),
}

/// One mapping entry: the key, the line of the key, the value.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) key: String,
    pub(crate) line: u32,
    pub(crate) node: Node,
}

/// Where each field of one object starts, by field path.
#[derive(Clone, Debug, Default)]
pub struct Lines {
    root: u32,
    fields: HashMap<FieldPath, u32>,
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

    /// A word for the kind of value, for error messages.
    pub(crate) fn shape(&self) -> &'static str {
        match self.value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) | Value::UInt(_) | Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a sequence",
            Value::Map(_) => "a mapping",
        }
    }

    /// Splits the tree into JSON and the line of every field path.
    pub(crate) fn to_json(&self) -> (Json, Lines) {
        let mut lines = Lines { root: self.line, fields: HashMap::new(), known: true };
        let json = self.walk(&FieldPath::root(), &mut lines);
        (json, lines)
    }

    fn walk(&self, path: &FieldPath, lines: &mut Lines) -> Json {
        match &self.value {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(*b),
            Value::Int(i) => Json::from(*i),
            Value::UInt(u) => Json::from(*u),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
            Value::Str(s) => Json::String(s.clone()),
            Value::Seq(items) => Json::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| {
                        let at = path.index(i);
                        lines.fields.insert(at.clone(), item.line);
                        item.walk(&at, lines)
                    })
                    .collect(),
            ),
            Value::Map(entries) => Json::Object(
                entries
                    .iter()
                    .map(|e| {
                        let at = path.field(e.key.clone());
                        lines.fields.insert(at.clone(), e.line);
                        let value = e.node.walk(&at, lines);
                        (e.key.clone(), value)
                    })
                    .collect(),
            ),
        }
    }
}

// === impl Lines ===

impl Lines {
    /// The line of `path`, or of its nearest enclosing field that exists
    /// (a missing field is reported where its parent starts).
    pub fn of(&self, path: &FieldPath) -> u32 {
        let mut at = Some(path.clone());
        while let Some(p) = at {
            if let Some(line) = self.fields.get(&p) {
                return *line;
            }
            at = p.parent();
        }
        self.root
    }

    /// True when the manifest spelled out `path` (k8s-openapi defaults
    /// missing required fields to zero, so presence is read here).
    pub fn contains(&self, path: &FieldPath) -> bool {
        !self.known || self.fields.contains_key(path)
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
        Ok(Value::Str(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Value::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<Key>>()? {
            let line = u32::try_from(key.referenced.line()).unwrap_or(u32::MAX);
            let node = map.next_value::<Node>()?;
            entries.push(Entry { key: key.value.0, line, node });
        }
        Ok(Value::Map(entries))
    }
}

/// A mapping key: Kubernetes keys are strings, but YAML allows `80: x` or
/// `true: x`; those are kept as their text.
struct Key(String);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::Str(s) => Ok(Key(s)),
            Value::Int(i) => Ok(Key(i.to_string())),
            Value::UInt(u) => Ok(Key(u.to_string())),
            Value::Bool(b) => Ok(Key(b.to_string())),
            Value::Float(f) => Ok(Key(f.to_string())),
            Value::Null => Ok(Key("null".to_owned())),
            Value::Seq(_) | Value::Map(_) => {
                Err(de::Error::custom("a mapping key must be a scalar"))
            }
        }
    }
}
