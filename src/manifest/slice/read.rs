//! The kept EndpointSlice and Endpoints read item by item.
//!
//! Decoding k8s-openapi's whole object and slimming it after held every
//! item at its full size (352 bytes an endpoint, in a vector serde grows
//! by doubling) next to the document's tree: 90 MiB for one 1.35 MB
//! slice of 50,000 endpoints. Here each endpoint or address is still
//! decoded as k8s-openapi's type, so it is type-checked in full, and
//! slimmed at once. The structs around them are read exactly as
//! k8s-openapi's generated code reads them (the same struct name and
//! field list, each field asked for as an `Option` of its type, unknown
//! fields skipped as `IgnoredAny`), so unknown fields, error paths and Go
//! type names come out the same.

use std::fmt;

use k8s_openapi::Resource as _;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::discovery::v1 as discovery;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

use super::{Endpoint, EndpointAddress, EndpointSlice, EndpointSubset, Endpoints, Meta};

/// `impl Deserialize` for a kept struct: `$name` and `$fields` as
/// k8s-openapi's type declares them; each `"key" => field: Type` reads
/// an `Option<Type>` and stores it `into` the field; `resource: T` checks
/// `apiVersion` and `kind` as `T` does.
macro_rules! read_as {
    (
        $ty:ident, $name:expr, $fields:expr $(, resource: $resource:ty)?;
        $($key:literal => $field:ident: $read:ty),* $(,)?
    ) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct Read;

                impl<'de> Visitor<'de> for Read {
                    type Value = $ty;

                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($name)
                    }

                    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<$ty, A::Error> {
                        let mut out = $ty::default();
                        while let Some(key) = map.next_key_seed(Field($fields))? {
                            match key {
                                $(
                                    Some($key) => {
                                        if let Some(value) = map.next_value::<Option<$read>>()? {
                                            out.$field = value.into();
                                        }
                                    }
                                )*
                                $(
                                    Some("apiVersion") => {
                                        is::<A::Error>(map.next_value()?, <$resource>::API_VERSION)?
                                    }
                                    Some("kind") => is::<A::Error>(map.next_value()?, <$resource>::KIND)?,
                                )?
                                _ => {
                                    map.next_value::<IgnoredAny>()?;
                                }
                            }
                        }
                        Ok(out)
                    }
                }

                deserializer.deserialize_struct($name, $fields, Read)
            }
        }
    };
}

read_as! {
    EndpointSlice, discovery::EndpointSlice::KIND, &[
        "apiVersion", "kind", "addressType", "endpoints", "metadata", "ports",
    ], resource: discovery::EndpointSlice;
    "addressType" => address_type: String,
    "endpoints" => endpoints: Vec<Endpoint>,
    "metadata" => metadata: ObjectMeta,
    "ports" => ports: Vec<discovery::EndpointPort>,
}

read_as! {
    Endpoints, core::Endpoints::KIND, &["apiVersion", "kind", "metadata", "subsets"],
    resource: core::Endpoints;
    "metadata" => metadata: ObjectMeta,
    "subsets" => subsets: Vec<EndpointSubset>,
}

read_as! {
    EndpointSubset, "EndpointSubset", &["addresses", "notReadyAddresses", "ports"];
    "addresses" => addresses: Vec<EndpointAddress>,
    "notReadyAddresses" => not_ready_addresses: Vec<EndpointAddress>,
    "ports" => ports: Vec<core::EndpointPort>,
}

impl<'de> Deserialize<'de> for Endpoint {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        discovery::Endpoint::deserialize(deserializer).map(Endpoint::from)
    }
}

impl<'de> Deserialize<'de> for EndpointAddress {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        core::EndpointAddress::deserialize(deserializer).map(EndpointAddress::from)
    }
}

impl From<ObjectMeta> for Meta {
    fn from(meta: ObjectMeta) -> Self {
        Meta {
            name: meta.name,
            namespace: meta.namespace,
            labels: meta.labels,
            annotations: meta.annotations,
        }
    }
}

/// `apiVersion` or `kind` as k8s-openapi checks it.
fn is<E: de::Error>(value: String, want: &'static str) -> Result<(), E> {
    match value == want {
        true => Ok(()),
        false => Err(E::invalid_value(de::Unexpected::Str(&value), &want)),
    }
}

/// A field's name, as one of the struct's (`None`: another field).
struct Field(&'static [&'static str]);

impl<'de> DeserializeSeed<'de> for Field {
    type Value = Option<&'static str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_identifier(self)
    }
}

impl Visitor<'_> for Field {
    type Value = Option<&'static str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("field identifier")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.0.iter().find(|f| **f == v).copied())
    }
}

#[cfg(test)]
mod tests {
    use serde::de::DeserializeOwned;
    use serde_json::{Value as Json, json};

    use super::*;
    use crate::manifest::FieldPath;
    use crate::manifest::probe;

    /// What a user sees of decoding `value` as `T`: the error and its
    /// path, and the fields reported unknown.
    fn outcome<T: DeserializeOwned>(value: Json) -> (Option<String>, Vec<String>) {
        let mut unknown = Vec::new();
        let mut ignored = |path: serde_ignored::Path<'_>| unknown.push(path.to_string());
        let decoded = serde_path_to_error::deserialize::<_, T>(serde_ignored::Deserializer::new(
            value,
            &mut ignored,
        ));
        let error = decoded.err().map(|e| format!("{}: {}", e.path(), e.inner()));
        (error, unknown)
    }

    #[test]
    fn reads_what_k8s_openapi_reads_and_words_faults_alike() {
        let slices = [
            json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": "a", "labels": {"x": "y"}, "uid": "u"}, "addressType": "IPv4",
                "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": true},
                    "targetRef": {"name": "p"}, "zone": "z", "hints": {"forZones": [{"name": "z"}]},
                    "bogus": 1}],
                "ports": [{"name": "http", "port": 80, "portt": 1}], "extra": {"a": 1}}),
            json!({"apiVersion": "v1", "kind": "EndpointSlice"}),
            json!({"kind": "Service"}),
            json!({"endpoints": [{"addresses": "127.0.0.1"}]}),
            json!({"endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": "yes"}}]}),
            json!({"ports": [{"port": "eighty"}]}),
            json!({"endpoints": null, "ports": null, "addressType": null}),
            json!({"metadata": []}),
            json!([]),
        ];
        let (_, unknown) = outcome::<EndpointSlice>(slices[0].clone());
        assert_eq!(unknown, ["endpoints.?.0.bogus", "extra", "ports.?.0.portt"]);
        for slice in slices {
            let ours = outcome::<EndpointSlice>(slice.clone());
            assert_eq!(ours, outcome::<discovery::EndpointSlice>(slice.clone()), "{slice}");
        }
        let endpoints = [
            json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "a"},
                "subsets": [{"addresses": [{"ip": "127.0.0.1", "hostname": "h", "nodeName": "n",
                    "targetRef": {"kind": "Pod"}, "ipp": 1}],
                    "notReadyAddresses": [{"ip": "127.0.0.2"}],
                    "ports": [{"port": 80, "nam": "x"}], "other": true}]}),
            json!({"apiVersion": "v2"}),
            json!({"subsets": [{"addresses": [{"ip": 1}]}]}),
            json!({"subsets": [{"notReadyAddresses": {"ip": "127.0.0.1"}}]}),
            json!({"subsets": [{"ports": [{"port": 70000}]}]}),
            json!({"subsets": "x"}),
        ];
        for object in endpoints {
            let ours = outcome::<Endpoints>(object.clone());
            assert_eq!(ours, outcome::<core::Endpoints>(object.clone()), "{object}");
        }
    }

    #[test]
    fn keeps_what_svcproxy_reads() {
        let slice = json!({"metadata": {"name": "a", "managedFields": [{"manager": "m"}]},
            "addressType": "IPv6", "endpoints": [{"addresses": ["::1"], "nodeName": "n",
                "conditions": {"serving": false}, "hints": {"forNodes": [{"name": "n"}]}}],
            "ports": [{"port": 80}]});
        let slice = EndpointSlice::deserialize(slice).unwrap();
        assert_eq!(slice.metadata.name.as_deref(), Some("a"));
        assert_eq!(slice.address_type, "IPv6");
        assert_eq!(slice.ports.as_ref().map(Vec::len), Some(1));
        let endpoint = &slice.endpoints[0];
        assert_eq!(endpoint.addresses, ["::1"]);
        assert_eq!(endpoint.node_name.as_deref(), Some("n"));
        assert_eq!(endpoint.conditions.as_ref().and_then(|c| c.serving), Some(false));
        assert!(endpoint.hints.as_ref().is_some_and(|h| h.for_nodes.is_some()));
        let endpoints = json!({"subsets": [{"addresses": [{"ip": "127.0.0.1", "nodeName": "n"}],
            "notReadyAddresses": [{"ip": "127.0.0.2"}]}]});
        let endpoints = Endpoints::deserialize(endpoints).unwrap();
        let subset = &endpoints.subsets.as_ref().unwrap()[0];
        let ready = &subset.addresses.as_ref().unwrap()[0];
        assert_eq!((ready.ip.as_str(), ready.node_name.as_deref()), ("127.0.0.1", Some("n")));
        assert_eq!(subset.not_ready_addresses.as_ref().unwrap()[0].ip, "127.0.0.2");
    }

    #[test]
    fn names_go_types_as_k8s_openapi_does() {
        let slice_paths = [
            FieldPath::of("endpoints"),
            FieldPath::of("endpoints").index(0).field("addresses"),
            FieldPath::of("endpoints").index(0).field("conditions").field("ready"),
            FieldPath::of("ports").index(0).field("port"),
            FieldPath::of("addressType"),
            FieldPath::of("metadata").field("labels"),
            FieldPath::of("kind"),
        ];
        for path in &slice_paths {
            let ours = probe::expected::<EndpointSlice>(path);
            assert_eq!(ours, probe::expected::<discovery::EndpointSlice>(path), "{path}");
        }
        let endpoints_paths = [
            FieldPath::of("subsets"),
            FieldPath::of("subsets").index(0).field("addresses").index(0).field("ip"),
            FieldPath::of("subsets").index(0).field("notReadyAddresses"),
            FieldPath::of("subsets").index(0).field("ports").index(0).field("port"),
        ];
        for path in &endpoints_paths {
            let ours = probe::expected::<Endpoints>(path);
            assert_eq!(ours, probe::expected::<core::Endpoints>(path), "{path}");
        }
    }
}
