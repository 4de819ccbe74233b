//! What a k8s-openapi type expects at a field path, in Go's words.
//!
//! k8s-openapi keeps no schema at run time, but each generated type names
//! itself and lists its fields when it asks a deserializer for a struct.
//! A [`Probe`] is a deserializer that walks one field path into a type
//! this way and stops where the path ends, recording what the type asked
//! for there. It runs only for a field that is in error (an unknown field,
//! a value of the wrong type), so its cost is one path's walk.

use std::cell::RefCell;
use std::fmt;

use serde::de::value::StrDeserializer;
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess,
    Visitor,
};

use super::path::{FieldPath, Segment};

/// What the type expects at one field path.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Expected {
    /// The struct whose field the path ends in (Go's `Go struct field
    /// ServicePort...`): the last struct the path walked through.
    pub(crate) owner: Option<&'static str>,
    /// The path as Go's encoding/json prints it: struct fields only,
    /// dotted, no indices or map keys (`spec.ports.port`).
    pub(crate) go_path: String,
    /// The Go type of the value at the path (`int32`, `[]v1.ServicePort`),
    /// when the type said.
    pub(crate) go_type: Option<String>,
    /// The fields of the struct at the path, when it is one.
    pub(crate) fields: &'static [&'static str],
}

/// Walks `path` into `T` and says what `T` expects there.
pub(crate) fn expected<T: DeserializeOwned>(path: &FieldPath) -> Expected {
    let record = RefCell::new(Expected::default());
    let probe = Probe { rest: path.segments(), prefix: String::new(), record: &record };
    // The probe always ends in an error: it carries no data.
    let _ = T::deserialize(probe);
    record.into_inner()
}

/// The deserializer that walks a path; `prefix` is the `[]` and
/// `map[string]` of the containers met past the path's end.
struct Probe<'p> {
    rest: &'p [Segment],
    prefix: String,
    record: &'p RefCell<Expected>,
}

/// Ends every probe: no value is ever produced.
#[derive(Debug)]
struct Stop;

// === impl Probe ===

impl<'p> Probe<'p> {
    fn deeper(&self, rest: &'p [Segment], prefix: &str) -> Self {
        Probe { rest, prefix: format!("{}{prefix}", self.prefix), record: self.record }
    }

    /// The path ends at a value of Go type `go_type`.
    fn leaf<T>(&self, go_type: &str) -> Result<T, Stop> {
        self.record.borrow_mut().go_type = Some(format!("{}{go_type}", self.prefix));
        Err(Stop)
    }
}

impl<'de> Deserializer<'de> for Probe<'_> {
    type Error = Stop;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        // IntOrString and Quantity read any value; the caller names them.
        Err(Stop)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        self.leaf("bool")
    }

    fn deserialize_i32<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        self.leaf("int32")
    }

    fn deserialize_i64<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        self.leaf("int64")
    }

    fn deserialize_f64<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        self.leaf("float64")
    }

    fn deserialize_str<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        self.leaf("string")
    }

    fn deserialize_string<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        self.leaf("string")
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        // Go names a pointer field by the type it points to.
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Stop> {
        if self.rest.is_empty() {
            return self.leaf(&go_name(name));
        }
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        match self.rest {
            [] => visitor.visit_seq(One(Some(self.deeper(&[], "[]")))),
            [Segment::Index(_), rest @ ..] => visitor.visit_seq(One(Some(self.deeper(rest, "")))),
            [Segment::Field(_), ..] => Err(Stop),
        }
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        match self.rest {
            [] => visitor.visit_map(Entry(Some(("", self.deeper(&[], "map[string]"))))),
            // A map key is no struct field: Go leaves it out of the path.
            [Segment::Field(key), rest @ ..] => {
                visitor.visit_map(Entry(Some((key, self.deeper(rest, "")))))
            }
            [Segment::Index(_), ..] => Err(Stop),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Stop> {
        match self.rest {
            [] => {
                if self.prefix.is_empty() {
                    self.record.borrow_mut().fields = fields;
                }
                self.leaf(&go_name(name))
            }
            [Segment::Field(key), rest @ ..] => {
                {
                    let mut record = self.record.borrow_mut();
                    record.owner = Some(name);
                    if !record.go_path.is_empty() {
                        record.go_path.push('.');
                    }
                    record.go_path.push_str(key);
                }
                visitor.visit_map(Entry(Some((key, self.deeper(rest, "")))))
            }
            [Segment::Index(_), ..] => Err(Stop),
        }
    }

    serde::forward_to_deserialize_any! {
        i8 i16 u8 u16 u32 u64 i128 u128 f32 char bytes byte_buf unit unit_struct tuple
        tuple_struct enum identifier ignored_any
    }
}

/// A Go type's name as encoding/json prints it, package and all.
fn go_name(name: &str) -> String {
    let package = match name {
        "IntOrString" => "intstr",
        "Quantity" => "resource",
        _ => "v1",
    };
    format!("{package}.{name}")
}

/// A sequence of one element: the probe.
struct One<'p>(Option<Probe<'p>>);

impl<'de> SeqAccess<'de> for One<'_> {
    type Error = Stop;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Stop> {
        match self.0.take() {
            Some(probe) => seed.deserialize(probe).map(Some),
            None => Ok(None),
        }
    }
}

/// A mapping of one entry: the path's next key, then the probe.
struct Entry<'p>(Option<(&'p str, Probe<'p>)>);

impl<'de> MapAccess<'de> for Entry<'_> {
    type Error = Stop;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Stop> {
        match &self.0 {
            Some((key, _)) => {
                let key: StrDeserializer<'_, Stop> = key.into_deserializer();
                seed.deserialize(key).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Stop> {
        match self.0.take() {
            Some((_, probe)) => seed.deserialize(probe),
            None => Err(Stop),
        }
    }
}

// === impl Stop ===

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("probe stopped")
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Stop
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{Pod, Service};

    use super::*;

    #[test]
    fn names_the_go_struct_field_and_type_at_a_path() {
        let path = FieldPath::of("spec.ports").index(0).field("port");
        let port = expected::<Service>(&path);
        assert_eq!(port.owner, Some("ServicePort"));
        assert_eq!(port.go_path, "spec.ports.port");
        assert_eq!(port.go_type.as_deref(), Some("int32"));

        let ports = expected::<Service>(&FieldPath::of("spec.ports"));
        assert_eq!(ports.go_type.as_deref(), Some("[]v1.ServicePort"));
        let labels = expected::<Service>(&FieldPath::of("metadata.labels"));
        assert_eq!(labels.go_type.as_deref(), Some("map[string]string"));
        let label = expected::<Service>(&FieldPath::of("metadata.labels").field("app"));
        assert_eq!((label.owner, &*label.go_path), (Some("ObjectMeta"), "metadata.labels"));
        let target = FieldPath::of("spec.ports").index(3).field("targetPort");
        assert_eq!(expected::<Service>(&target).go_type, None, "IntOrString reads any value");
    }

    #[test]
    fn lists_the_fields_of_the_struct_at_a_path() {
        let port = expected::<Service>(&FieldPath::of("spec.ports").index(0));
        assert!(port.fields.contains(&"targetPort"), "{:?}", port.fields);
        assert!(expected::<Service>(&FieldPath::root()).fields.contains(&"spec"));
        let container = FieldPath::of("spec.containers").index(0);
        assert!(expected::<Pod>(&container).fields.contains(&"ports"));
    }
}
