//! A document's tree read straight into a Kubernetes type.
//!
//! serde's `Deserializer` over a [`Node`], consuming it: each value's
//! strings move into the typed object and each mapping is freed once its
//! struct is built, so no second copy of the document is made on the way
//! (a JSON copy took 660 bytes for every one-field mapping, 33 of the 39
//! MB a 1 MB Endpoints object peaked at). It reads values as serde_json's
//! `Value` does, so a type error is worded the same whatever the source:
//! a non-negative integer is unsigned, a float that is not finite is null.

use std::fmt;
use std::vec;

use serde::de::value::StrDeserializer;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use super::node::{Entry, Node, Value};

/// Why a tree is not a value of the type asked for (serde's message).
#[derive(Debug)]
pub(crate) struct Error(String);

impl de::Error for Error {
    fn custom<T: fmt::Display>(message: T) -> Self {
        Error(message.to_string())
    }

    fn invalid_type(found: de::Unexpected<'_>, expected: &dyn de::Expected) -> Self {
        Error(format!("invalid type: {}, expected {expected}", AsJson(found)))
    }

    fn invalid_value(found: de::Unexpected<'_>, expected: &dyn de::Expected) -> Self {
        Error(format!("invalid value: {}, expected {expected}", AsJson(found)))
    }
}

/// What was found, as serde_json words it: null, not "unit value", and a
/// float as JSON writes it (`1e20`, not `100000000000000000000`).
struct AsJson<'a>(de::Unexpected<'a>);

impl fmt::Display for AsJson<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            de::Unexpected::Unit => f.write_str("null"),
            de::Unexpected::Float(v) => match serde_json::Number::from_f64(v) {
                Some(number) => write!(f, "floating point `{number}`"),
                None => write!(f, "floating point `{v}`"),
            },
            found => fmt::Display::fmt(&found, f),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// Deserializer methods that take only a visitor and refuse null.
macro_rules! not_null {
    ($($method:ident)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
                self.not_null(visitor)
            }
        )*
    };
}

impl<'de> de::Deserializer<'de> for Node {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(b),
            Value::Int(i) => match u64::try_from(i) {
                Ok(u) => visitor.visit_u64(u),
                Err(_) => visitor.visit_i64(i),
            },
            Value::UInt(u) => visitor.visit_u64(u),
            Value::Float(f) if f.is_finite() => visitor.visit_f64(f),
            Value::Float(_) => visitor.visit_unit(),
            Value::Str(s) => visitor.visit_string(s.into_string()),
            Value::Seq(items) => seq(items.into_vec(), visitor),
            Value::Map(entries) => {
                visitor.visit_map(Entries { rest: entries.into_vec().into_iter(), next: None })
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.is_null() { visitor.visit_none() } else { visitor.visit_some(self) }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        drop(self);
        visitor.visit_unit()
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.not_null(visitor)
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.not_null(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.not_null(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.not_null(visitor)
    }

    not_null! {
        deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
        deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64
        deserialize_u128 deserialize_f32 deserialize_f64 deserialize_char deserialize_str
        deserialize_string deserialize_bytes deserialize_byte_buf deserialize_seq
        deserialize_map deserialize_identifier
    }

    serde::forward_to_deserialize_any! { unit unit_struct }
}

impl Node {
    /// Any value but null, which serde_json's `Value` calls `null` (not
    /// serde's "unit value") when a type wants something else.
    fn not_null<'de, V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.is_null() {
            return Err(de::Error::invalid_type(de::Unexpected::Other("null"), &visitor));
        }
        de::Deserializer::deserialize_any(self, visitor)
    }

    /// Null, or a float JSON cannot hold (serde_json reads it as null).
    fn is_null(&self) -> bool {
        match self.value {
            Value::Null => true,
            Value::Float(f) => !f.is_finite(),
            _ => false,
        }
    }
}

/// A sequence's items, each consumed as it is read; items left unread
/// are an error, as serde_json says of them.
fn seq<'de, V: Visitor<'de>>(items: Vec<Node>, visitor: V) -> Result<V::Value, Error> {
    let len = items.len();
    let mut items = Items(items.into_iter());
    let value = visitor.visit_seq(&mut items)?;
    match items.0.len() {
        0 => Ok(value),
        _ => Err(de::Error::invalid_length(len, &"fewer elements in array")),
    }
}

struct Items(vec::IntoIter<Node>);

impl<'de> SeqAccess<'de> for Items {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        self.0.next().map(|node| seed.deserialize(node)).transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

/// A mapping's entries; `next` holds the value of the key just read.
struct Entries {
    rest: vec::IntoIter<Entry>,
    next: Option<Node>,
}

impl<'de> MapAccess<'de> for Entries {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some(entry) = self.rest.next() else { return Ok(None) };
        self.next = Some(entry.node);
        seed.deserialize(StrDeserializer::<Error>::new(&entry.key)).map(Some)
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, Error> {
        match self.next.take() {
            Some(node) => seed.deserialize(node),
            None => Err(de::Error::custom("value is missing")),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.rest.len())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::*;

    fn node(value: Value) -> Node {
        Node { line: 1, value }
    }

    fn entry(key: &str, value: Value) -> Entry {
        Entry { key: key.into(), line: 1, node: node(value) }
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Port {
        port: i32,
        name: Option<String>,
        #[serde(default)]
        labels: BTreeMap<String, String>,
    }

    #[test]
    fn reads_a_struct_from_a_tree() {
        let tree = node(Value::Map(Box::new([
            entry("port", Value::Int(80)),
            entry("name", Value::Null),
            entry("labels", Value::Map(Box::new([entry("a", Value::Str("b".into()))]))),
        ])));
        let port = Port::deserialize(tree).unwrap();
        assert_eq!(port, Port { port: 80, name: None, labels: [("a".into(), "b".into())].into() });
    }

    #[test]
    fn words_type_errors_as_serde_json_does() {
        let as_json = |json: &str| {
            let value: serde_json::Value = serde_json::from_str(json).unwrap();
            serde_json::from_value::<Port>(value).unwrap_err().to_string()
        };
        let cases = [
            (Value::Str("eighty".into()), r#"{"port":"eighty"}"#),
            (Value::Int(99_999_999_999), r#"{"port":99999999999}"#),
            (Value::Int(-99_999_999_999), r#"{"port":-99999999999}"#),
            (Value::Float(80.5), r#"{"port":80.5}"#),
            (Value::Float(1e20), r#"{"port":1e20}"#),
            (Value::Float(-0.5), r#"{"port":-0.5}"#),
            (Value::Null, r#"{"port":null}"#),
            (Value::Seq(Box::new([])), r#"{"port":[]}"#),
            (Value::Map(Box::new([])), r#"{"port":{}}"#),
            (Value::Bool(true), r#"{"port":true}"#),
            (Value::Float(f64::NAN), r#"{"port":null}"#),
        ];
        for (value, json) in cases {
            let tree = node(Value::Map(Box::new([entry("port", value)])));
            assert_eq!(Port::deserialize(tree).unwrap_err().to_string(), as_json(json));
        }
    }

    #[test]
    fn too_many_items_for_a_tuple_is_an_error() {
        let tree = node(Value::Seq(Box::new([node(Value::Int(1)), node(Value::Int(2))])));
        let err = <(i32,)>::deserialize(tree).unwrap_err().to_string();
        assert_eq!(err, "invalid length 2, expected fewer elements in array");
    }
}
