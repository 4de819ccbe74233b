//! Collecting field errors of one object, worded as the API server words them.

use std::fmt::Display;
use std::net::{IpAddr, Ipv4Addr};

use crate::manifest::{FieldPath, Kind, ObjectKey, Origin};

use super::Error;

/// The errors of one object, each pointing at the line of its field.
pub(crate) struct Fields<'a> {
    origin: &'a Origin,
    kind: Kind,
    namespace: &'a str,
    name: &'a str,
    pub(crate) errors: Vec<Error>,
}

// === impl Fields ===

impl<'a> Fields<'a> {
    pub(crate) fn new(origin: &'a Origin, kind: Kind, namespace: &'a str, name: &'a str) -> Self {
        Self { origin, kind, namespace, name, errors: Vec::new() }
    }

    /// True for an object of the API server: it was validated there,
    /// with that cluster's settings (its NodePort range, say).
    pub(crate) fn api_checked(&self) -> bool {
        matches!(self.origin, Origin::Api)
    }

    /// True when the manifest spelled out `path`.
    pub(crate) fn present(&self, path: &FieldPath) -> bool {
        self.origin.has(path)
    }

    pub(crate) fn push(&mut self, path: FieldPath, detail: String) {
        self.errors.push(Error::Field {
            at: self.origin.locate(&path),
            key: ObjectKey {
                kind: self.kind,
                namespace: self.namespace.into(),
                name: self.name.into(),
            },
            path,
            detail,
        });
    }

    pub(crate) fn required(&mut self, path: FieldPath) {
        self.push(path, "Required value".to_owned());
    }

    /// `Required value: why`, for a rule the field's absence alone does
    /// not explain.
    pub(crate) fn required_because(&mut self, path: FieldPath, why: &str) {
        self.push(path, format!("Required value: {why}"));
    }

    /// `Too many: 1001: must have at most 1000 items`: a list over the
    /// API server's bound.
    pub(crate) fn too_many(&mut self, path: FieldPath, count: usize, max: usize) {
        self.push(path, format!("Too many: {count}: must have at most {max} items"));
    }

    /// `Invalid value: 0: must be ...`; strings are quoted as Go's `%q` does.
    pub(crate) fn invalid(&mut self, path: FieldPath, value: impl Display, why: &str) {
        self.push(path, format!("Invalid value: {value}: {why}"));
    }

    pub(crate) fn invalid_str(&mut self, path: FieldPath, value: &str, why: &str) {
        self.invalid(path, format_args!("{value:?}"), why);
    }

    pub(crate) fn unsupported(&mut self, path: FieldPath, value: &str, supported: &[&str]) {
        let list: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
        let detail = format!("Unsupported value: {value:?}: supported values: {}", list.join(", "));
        self.push(path, detail);
    }

    pub(crate) fn duplicate(&mut self, path: FieldPath, value: impl Display) {
        self.push(path, format!("Duplicate value: {value}"));
    }

    pub(crate) fn forbidden(&mut self, path: FieldPath, why: &str) {
        self.push(path, format!("Forbidden: {why}"));
    }

    /// The collected errors, or `Ok(value)` when there are none.
    pub(crate) fn finish<T>(self, value: T) -> Result<T, Vec<Error>> {
        if self.errors.is_empty() { Ok(value) } else { Err(self.errors) }
    }
}

/// `text` as an IP address, exactly as `str::parse::<IpAddr>` reads it.
/// Dotted quads (every endpoint of an IPv4 cluster) take a direct path:
/// the standard parser costs several times more, once per address per
/// rebuild.
pub(crate) fn parse_ip(text: &str) -> Option<IpAddr> {
    dotted_quad(text.as_bytes()).map(IpAddr::V4).or_else(|| text.parse().ok())
}

/// Four decimal octets, each 0–255 in at most three digits without a
/// leading zero; `None` for anything else (the caller asks the standard
/// parser, which rejects or reads it).
fn dotted_quad(bytes: &[u8]) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut at = 0;
    for (i, octet) in octets.iter_mut().enumerate() {
        if i > 0 {
            if bytes.get(at) != Some(&b'.') {
                return None;
            }
            at += 1;
        }
        let start = at;
        let mut value: u32 = 0;
        while let Some(digit) = bytes.get(at).filter(|b| b.is_ascii_digit()) {
            // Saturating: a run of digits of any length is read to its end
            // (then rejected by its length), never overflowing.
            value = value.saturating_mul(10).saturating_add(u32::from(digit - b'0'));
            at += 1;
        }
        let len = at - start;
        if len == 0 || len > 3 || (len > 1 && bytes[start] == b'0') {
            return None;
        }
        *octet = u8::try_from(value).ok()?;
    }
    (at == bytes.len()).then(|| Ipv4Addr::from(octets))
}

/// A DNS-1123 label (port names, namespaces): `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, ≤ 63.
pub(crate) fn is_dns1123_label(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

/// A DNS-1035 label (Service names): a DNS-1123 label starting with a letter.
pub(crate) fn is_dns1035_label(s: &str) -> bool {
    is_dns1123_label(s) && s.as_bytes()[0].is_ascii_lowercase()
}

/// An IANA_SVC_NAME (named ports): 1–15 of `[a-z0-9-]`, at least one letter,
/// no hyphen at either end and no two hyphens in a row.
pub(crate) fn is_port_name(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 15
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.iter().any(u8::is_ascii_lowercase)
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
}

pub(crate) const DNS1123_LABEL: &str = "a lowercase RFC 1123 label must consist of lower case \
    alphanumeric characters or '-', and must start and end with an alphanumeric character";
pub(crate) const DNS1035_LABEL: &str = "a DNS-1035 label must consist of lower case \
    alphanumeric characters or '-', start with an alphabetic character, and end with an \
    alphanumeric character";
pub(crate) const PORT_NAME: &str = "must be no more than 15 characters, contain only lowercase \
    alphanumeric characters or '-', contain at least one letter, and not begin or end with '-' \
    or contain '--'";
pub(crate) const PORT_RANGE: &str = "must be between 1 and 65535, inclusive";
pub(crate) const IP_ADDRESS: &str = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_names_follow_iana_svc_name() {
        for ok in ["http", "grpc-web", "h2c", "a1", "metrics-9090"] {
            assert!(is_port_name(ok), "{ok}");
        }
        for bad in ["", "8080", "-http", "http-", "a--b", "Http", "under_score", "abcdefghijklmnop"]
        {
            assert!(!is_port_name(bad), "{bad}");
        }
    }

    #[test]
    fn ip_addresses_read_as_the_standard_parser_reads_them() {
        let octets = [
            "0",
            "00",
            "01",
            "1",
            "9",
            "10",
            "99",
            "100",
            "255",
            "256",
            "999",
            "0255",
            "",
            "a",
            "+1",
            "1 ",
            "99999999999",
            "4294967296",
        ];
        for a in octets {
            for b in ["0", "01", "255", "256", ""] {
                for text in [
                    format!("{a}.{b}.3.4"),
                    format!("1.2.{b}.{a}"),
                    format!("{a}.{b}.3"),
                    format!("{a}.{b}.3.4.5"),
                    format!("{a}.{b}.3.4."),
                    format!(".{a}.{b}.3.4"),
                ] {
                    assert_eq!(parse_ip(&text), text.parse().ok(), "{text:?}");
                }
            }
        }
        for text in
            ["::1", "fd00::1", "::ffff:1.2.3.4", "1.2.3.4/32", " 1.2.3.4", "1..2.3", "１.2.3.4"]
        {
            assert_eq!(parse_ip(text), text.parse().ok(), "{text:?}");
        }
    }

    #[test]
    fn service_names_are_dns1035_labels() {
        assert!(is_dns1035_label("hello-svc"));
        assert!(!is_dns1035_label("1hello"));
        assert!(is_dns1123_label("1hello"));
        assert!(!is_dns1123_label("Hello"));
        assert!(!is_dns1123_label(&"a".repeat(64)));
    }
}
