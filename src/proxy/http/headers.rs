//! What a proxy changes in a message it forwards (RFC 9110 §7.6): the
//! hop-by-hop fields go, the client is named in `X-Forwarded-For`.

use std::net::IpAddr;

use hyper::header::{self, HeaderName, HeaderValue};
use hyper::http::request::Parts;
use hyper::http::uri::{Authority, Scheme};
use hyper::{HeaderMap, Uri, Version};

use crate::table::Upstream;

/// Fields that describe one connection, never forwarded (RFC 9110 §7.6.1;
/// `Proxy-Connection` and `Keep-Alive` as every proxy drops them).
const HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHENTICATE,
];

/// Removes the hop-by-hop fields of `headers`, and the fields `Connection`
/// names; `TE` is kept only as `trailers` (gRPC needs it). With `upgrade`,
/// `Upgrade` and `Connection: upgrade` stay: the upgrade is forwarded.
pub fn strip(headers: &mut HeaderMap, upgrade: bool) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    let upgrade_value = upgrade.then(|| headers.get(header::UPGRADE).cloned()).flatten();
    for name in named.iter().chain(&HOP_BY_HOP) {
        headers.remove(name);
    }
    let trailers = headers.get_all(header::TE).iter().any(|v| {
        v.to_str().is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("trailers")))
    });
    headers.remove(header::TE);
    if trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    if let Some(value) = upgrade_value {
        headers.insert(header::UPGRADE, value);
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// Makes the request line fit the endpoint's protocol, whichever the
/// client spoke, the authority kept: HTTP/1.1 gets the origin form and a
/// `Host` (from h2's `:authority` when the client spoke h2c); HTTP/2 gets
/// the absolute form, whose authority becomes `:authority` (from `Host`
/// when the client spoke HTTP/1.1).
pub fn forward_to(parts: &mut Parts, upstream: Upstream) {
    let authority = parts.uri.authority().cloned().or_else(|| {
        let host = parts.headers.get(header::HOST)?.to_str().ok()?;
        host.parse::<Authority>().ok()
    });
    let path = parts.uri.path_and_query().cloned();
    match upstream {
        Upstream::Http1 => {
            parts.version = Version::HTTP_11;
            if let Some(path) = path {
                parts.uri = Uri::from(path);
            }
            let missing = !parts.headers.contains_key(header::HOST);
            let host = authority.filter(|_| missing).map(|a| HeaderValue::from_str(a.as_str()));
            if let Some(Ok(host)) = host {
                parts.headers.insert(header::HOST, host);
            }
        }
        Upstream::H2c => {
            parts.version = Version::HTTP_2;
            let mut uri = Uri::builder().scheme(Scheme::HTTP);
            if let Some(authority) = authority {
                uri = uri.authority(authority);
                parts.headers.remove(header::HOST);
            }
            let path = path.map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
            if let Ok(uri) = uri.path_and_query(path).build() {
                parts.uri = uri;
            }
        }
    }
}

/// Appends `client` to `X-Forwarded-For` and says the client spoke plain
/// HTTP (`X-Forwarded-Proto: http`).
pub fn forwarded(headers: &mut HeaderMap, client: IpAddr) {
    const XFF: HeaderName = HeaderName::from_static("x-forwarded-for");
    const XFP: HeaderName = HeaderName::from_static("x-forwarded-proto");
    let client = client.to_string();
    let value = match headers.get(&XFF).and_then(|v| v.to_str().ok()) {
        Some(before) => format!("{before}, {client}"),
        None => client,
    };
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert(XFF, value);
    }
    headers.insert(XFP, HeaderValue::from_static("http"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(fields: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (k, v) in fields {
            headers.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        headers
    }

    #[test]
    fn hop_by_hop_fields_and_those_connection_names_are_removed() {
        let mut headers = map(&[
            ("connection", "keep-alive, x-secret"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("proxy-connection", "keep-alive"),
            ("te", "gzip, trailers"),
            ("upgrade", "websocket"),
            ("host", "web"),
            ("x-kept", "yes"),
        ]);
        strip(&mut headers, false);
        let mut names: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["host", "te", "x-kept"]);
        assert_eq!(headers[header::TE], "trailers");
    }

    #[test]
    fn an_upgrade_keeps_upgrade_and_connection_upgrade() {
        let mut headers = map(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        strip(&mut headers, true);
        assert_eq!(headers[header::UPGRADE], "websocket");
        assert_eq!(headers[header::CONNECTION], "upgrade");
    }

    #[test]
    fn the_client_is_appended_to_x_forwarded_for() {
        let mut headers = map(&[("x-forwarded-for", "203.0.113.7")]);
        forwarded(&mut headers, "127.0.0.9".parse().unwrap());
        assert_eq!(headers["x-forwarded-for"], "203.0.113.7, 127.0.0.9");
        assert_eq!(headers["x-forwarded-proto"], "http");
    }
}
