//! Kubernetes objects in files, read as `kubectl apply -f DIR` reads them:
//! every `*.yaml`, `*.yml` and `*.json` directly in DIR (not below it),
//! each YAML document one object, each object the k8s-openapi type its
//! `apiVersion` and `kind` name, holding no field that type does not know.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::{ClusterResourceScope, Metadata, NamespaceResourceScope, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{docker, read};

/// Where every namespaced object of `docker/` lives, as kube-proxy does.
pub(crate) const NAMESPACE: &str = "kube-system";

/// The extensions `kubectl apply -f DIR` reads.
const APPLIED: &[&str] = &["yaml", "yml", "json"];

/// One document of a file, untyped.
pub(crate) struct Document {
    /// `FILE document N (apiVersion kind)`, for messages.
    pub what: String,
    pub value: Value,
}

/// Whether a k8s-openapi scope is a namespaced one.
pub(crate) trait Scope {
    const NAMESPACED: bool;
}

impl Scope for NamespaceResourceScope {
    const NAMESPACED: bool = true;
}

impl Scope for ClusterResourceScope {
    const NAMESPACED: bool = false;
}

/// The files `kubectl apply -f dir` applies, in its (name) order.
pub(crate) fn applied_files(dir: &Path) -> Vec<PathBuf> {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.is_file())
        .filter(|p| p.extension().is_some_and(|e| APPLIED.iter().any(|a| e == *a)))
        .collect();
    files.sort();
    files
}

/// Every YAML (or JSON) document of `path`.
pub(crate) fn documents(path: &Path) -> Vec<Document> {
    let text = read(path);
    let values: Vec<Value> = serde_saphyr::from_str_multiple::<Value, Vec<_>>(&text)
        .unwrap_or_else(|e| panic!("{}: not YAML: {e}", path.display()));
    let documents = values.into_iter().enumerate().map(|(i, value)| {
        let (api_version, kind) = (value["apiVersion"].as_str(), value["kind"].as_str());
        let (api_version, kind) = (api_version.unwrap_or("?"), kind.unwrap_or("?"));
        let what = format!("{} document {} ({api_version} {kind})", path.display(), i + 1);
        Document { what, value }
    });
    documents.collect()
}

/// `document` as `T` when its `apiVersion` and `kind` are `T`'s; fails
/// when it does not parse as one, or holds a field `T` does not know (a
/// typo the API server would drop), or is in the wrong namespace.
pub(crate) fn typed<T>(document: &Document) -> Option<T>
where
    T: Resource + Metadata<Ty = ObjectMeta> + DeserializeOwned + Serialize,
    T::Scope: Scope,
{
    let value = &document.value;
    if value["apiVersion"] != T::API_VERSION || value["kind"] != T::KIND {
        return None;
    }
    let what = &document.what;
    let object: T = serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("{what}: {e}"));
    let read_back = serde_json::to_value(&object).expect("serialize");
    let mut unknown = Vec::new();
    dropped(value, &read_back, "", &mut unknown);
    assert!(unknown.is_empty(), "{what}: fields {} does not know: {unknown:?}", T::KIND);
    let namespace = object.metadata().namespace.as_deref();
    if <T::Scope as Scope>::NAMESPACED {
        assert_eq!(namespace, Some(NAMESPACE), "{what}: set the namespace, never the default");
    } else {
        assert_eq!(namespace, None, "{what}: cluster-scoped, without a namespace");
    }
    Some(object)
}

/// The one object of kind `T` in `path`, checked as [`typed`] does.
pub(crate) fn the<T>(path: &Path) -> T
where
    T: Resource + Metadata<Ty = ObjectMeta> + DeserializeOwned + Serialize,
    T::Scope: Scope,
{
    let mut found: Vec<T> = documents(path).iter().filter_map(typed::<T>).collect();
    assert_eq!(found.len(), 1, "{}: expected one {}", path.display(), T::KIND);
    found.remove(0)
}

/// The paths of `read` that `typed` lacks.
fn dropped(read: &Value, typed: &Value, path: &str, out: &mut Vec<String>) {
    match (read, typed) {
        (Value::Object(read), Value::Object(typed)) => {
            for (key, value) in read {
                let path = format!("{path}.{key}");
                match typed.get(key) {
                    Some(typed) => dropped(value, typed, &path, out),
                    None => out.push(path),
                }
            }
        }
        (Value::Array(read), Value::Array(typed)) => {
            for (i, (read, typed)) in read.iter().zip(typed).enumerate() {
                dropped(read, typed, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// `(kind, name)` when `document` is one of the kinds `docker/` ships, each
/// checked as [`typed`] does; fails on any other.
fn shipped_kind(document: &Document) -> (&'static str, String) {
    fn name<T: Metadata<Ty = ObjectMeta>>(object: Option<T>) -> Option<String> {
        object.map(|o| o.metadata().name.clone().unwrap_or_default())
    }
    let found = [
        (ServiceAccount::KIND, name(typed::<ServiceAccount>(document))),
        (ConfigMap::KIND, name(typed::<ConfigMap>(document))),
        (DaemonSet::KIND, name(typed::<DaemonSet>(document))),
        (ClusterRole::KIND, name(typed::<ClusterRole>(document))),
        (ClusterRoleBinding::KIND, name(typed::<ClusterRoleBinding>(document))),
    ];
    let found = found.into_iter().find_map(|(kind, name)| Some((kind, name?)));
    found.unwrap_or_else(|| panic!("{}: not a kind docker/ ships", document.what))
}

#[test]
fn kubectl_creates_the_service_account_before_the_daemonset_that_runs_as_it() {
    // `kubectl apply -f DIR` creates objects in file-name order, then in
    // document order. A DaemonSet created first fails its pods until the
    // account exists, and the controller's backoff delays the rollout.
    for dir in [docker(""), docker("manifests-mode")] {
        let mut accounts = BTreeSet::new();
        for document in applied_files(&dir).iter().flat_map(|f| documents(f)) {
            if let Some(account) = typed::<ServiceAccount>(&document) {
                accounts.insert(account.metadata.name.unwrap_or_default());
            }
            let Some(daemonset) = typed::<DaemonSet>(&document) else { continue };
            let pod = daemonset.spec.and_then(|s| s.template.spec).expect("a pod spec");
            let account = pod.service_account_name.expect("serviceAccountName");
            assert!(
                accounts.contains(&account),
                "{}: runs as {account}, which kubectl has not created yet",
                document.what
            );
        }
    }
}

#[test]
fn every_file_kubectl_applies_from_docker_holds_only_kubernetes_objects() {
    // `kubectl apply -f docker/` and the manifests-mode variant's directory.
    for dir in [docker(""), docker("manifests-mode")] {
        let files = applied_files(&dir);
        assert!(!files.is_empty(), "{}: nothing to apply", dir.display());
        let mut objects = BTreeSet::new();
        for file in &files {
            let documents = documents(file);
            assert!(!documents.is_empty(), "{}: no object", file.display());
            for document in &documents {
                let (kind, name) = shipped_kind(document);
                assert!(!name.is_empty(), "{}: no name", document.what);
                let new = objects.insert((kind, name.clone()));
                assert!(new, "{}: a second {kind} {name} in {}", document.what, dir.display());
            }
        }
    }
}
