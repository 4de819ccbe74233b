//! serde's decoding errors in the words kubectl prints for them: the API
//! server decodes with Go's encoding/json, so a value of the wrong type
//! reads `json: cannot unmarshal string into Go struct field
//! ServicePort.spec.ports.port of type int32`, never a Rust type name.

use serde::de::DeserializeOwned;

use super::path::FieldPath;
use super::probe;

/// serde's `message` about the field at `path` of a `T`, reworded.
pub(crate) fn reword<T: DeserializeOwned>(path: &FieldPath, message: &str) -> String {
    let Some((unexpected, expected)) = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "))
        .and_then(|rest| rest.rsplit_once(", expected "))
    else {
        return message.to_owned();
    };
    let Some(value) = json_value(unexpected) else {
        // Go leaves a field set to null at its zero value: for a field
        // that must hold one, that is a missing value.
        return "Required value".to_owned();
    };
    let at = probe::expected::<T>(path);
    let go_type = at.go_type.or_else(|| named(expected));
    let mut out = format!("json: cannot unmarshal {value} into Go ");
    match at.owner {
        Some(owner) => out.push_str(&format!("struct field {owner}.{}", at.go_path)),
        None => out.push_str("value"),
    }
    if let Some(go_type) = go_type {
        out.push_str(&format!(" of type {go_type}"));
    }
    out
}

/// serde's description of a value as encoding/json names it (`number
/// 70000`, `string`, `array`); `None` for null.
fn json_value(unexpected: &str) -> Option<String> {
    let literal = |prefix: &str| {
        let rest = unexpected.strip_prefix(prefix)?;
        Some(rest.trim_matches('`').to_owned())
    };
    if let Some(number) = literal("integer ").or_else(|| literal("floating point ")) {
        return Some(format!("number {number}"));
    }
    let word = match unexpected.split(' ').next().unwrap_or_default() {
        "unit" | "null" => return None,
        "string" => "string",
        "boolean" => "bool",
        "sequence" => "array",
        "map" => "object",
        _ => "value",
    };
    Some(word.to_owned())
}

/// The Go type a k8s-openapi type that reads any value (IntOrString,
/// Quantity) names itself as.
fn named(expected: &str) -> Option<String> {
    let package = match expected {
        "IntOrString" => "intstr",
        "Quantity" => "resource",
        _ => return None,
    };
    Some(format!("{package}.{expected}"))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Service;

    use super::*;

    fn port(field: &'static str) -> FieldPath {
        FieldPath::of("spec.ports").index(0).field(field)
    }

    #[test]
    fn a_value_of_the_wrong_type_reads_as_kubectl_prints_it() {
        assert_eq!(
            reword::<Service>(&port("port"), "invalid type: string \"eighty\", expected i32"),
            "json: cannot unmarshal string into Go struct field ServicePort.spec.ports.port \
             of type int32"
        );
        assert_eq!(
            reword::<Service>(&port("port"), "invalid value: integer `99999999999`, expected i32"),
            "json: cannot unmarshal number 99999999999 into Go struct field \
             ServicePort.spec.ports.port of type int32"
        );
        assert_eq!(
            reword::<Service>(&port("targetPort"), "invalid type: sequence, expected IntOrString"),
            "json: cannot unmarshal array into Go struct field ServicePort.spec.ports.targetPort \
             of type intstr.IntOrString"
        );
        assert_eq!(
            reword::<Service>(
                &FieldPath::of("spec.ports"),
                "invalid type: map, expected a sequence"
            ),
            "json: cannot unmarshal object into Go struct field ServiceSpec.spec.ports of type \
             []v1.ServicePort"
        );
    }

    #[test]
    fn null_where_a_value_is_needed_is_a_missing_value() {
        let message = "invalid type: unit value, expected i32";
        assert_eq!(reword::<Service>(&port("port"), message), "Required value");
    }

    #[test]
    fn other_messages_pass_unchanged() {
        assert_eq!(reword::<Service>(&port("port"), "something else"), "something else");
    }
}
