//! The kubeconfig of `ApiServer::kubeconfig`: one cluster, one user, one
//! context (namespace `default`), made current. Strings are written as
//! JSON strings, which YAML reads as double-quoted scalars.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::Auth;

/// Writes `dir/kubeconfig` and returns its path.
pub(super) fn write(dir: &Path, server: &str, ca_pem: Option<&str>, auth: &Auth) -> PathBuf {
    let mut text =
        String::from("apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n");
    let _ = writeln!(text, "    server: {}", quote(server));
    if let Some(ca) = ca_pem {
        let _ = writeln!(text, "    certificate-authority-data: {}", BASE64.encode(ca));
    }
    text.push_str("users:\n- name: fake\n  user:");
    match auth {
        Auth::None => text.push_str(" {}\n"),
        Auth::Token(token) => {
            let _ = writeln!(text, "\n    token: {}", quote(token));
        }
        Auth::TokenFile(path) => {
            let _ = writeln!(text, "\n    tokenFile: {}", quote(&path.to_string_lossy()));
        }
    }
    text.push_str(
        "contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: default\n",
    );
    text.push_str("current-context: fake\n");
    let path = dir.join("kubeconfig");
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    path
}

fn quote(text: &str) -> String {
    serde_json::to_string(text).expect("a string serialises")
}
