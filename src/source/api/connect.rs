//! Which API server, and with which credentials: kube-proxy's rules for
//! `--kubeconfig` and `--master` (client-go's `BuildConfigFromFlags`).

use std::path::{Path, PathBuf};

use kube::config::{KubeConfigOptions, Kubeconfig};

use super::Error;

/// Where the client configuration comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// A kubeconfig file; `master`, when given, replaces its server.
    Kubeconfig { path: PathBuf, master: Option<String> },
    /// `--master` alone: that URL, no credentials.
    Master(String),
    /// Inside a pod: the service account's token and CA, and the API
    /// server `KUBERNETES_SERVICE_HOST`/`_PORT` name.
    InCluster,
}

// === impl Endpoint ===

impl Endpoint {
    /// The API server to follow for these flags: `None` when the manifests
    /// are the only source (manifests given, neither `--kubeconfig` nor
    /// `--master`); the in-cluster configuration when no source is given.
    pub fn choose(
        kubeconfig: Option<&Path>,
        master: Option<&str>,
        manifests: bool,
    ) -> Option<Self> {
        let master = master.map(str::to_owned);
        match (kubeconfig, master) {
            (Some(path), master) => Some(Self::Kubeconfig { path: path.to_owned(), master }),
            (None, Some(master)) => Some(Self::Master(master)),
            (None, None) if manifests => None,
            (None, None) => Some(Self::InCluster),
        }
    }

    /// The client configuration for this API server. Reads the kubeconfig
    /// or the service account's files: a missing or broken one is a startup
    /// error.
    pub async fn config(&self) -> Result<kube::Config, Error> {
        let mut config = match self {
            Self::Kubeconfig { path, master } => {
                let file = Kubeconfig::read_from(path)
                    .map_err(|e| Error::Kubeconfig { path: path.clone(), detail: e.to_string() })?;
                let options = KubeConfigOptions::default();
                let mut config = kube::Config::from_custom_kubeconfig(file, &options)
                    .await
                    .map_err(|e| Error::Kubeconfig { path: path.clone(), detail: e.to_string() })?;
                if let Some(master) = master {
                    config.cluster_url = uri(master, "https")?;
                }
                config
            }
            Self::Master(master) => kube::Config::new(uri(master, "http")?),
            Self::InCluster => {
                kube::Config::incluster().map_err(|e| Error::InCluster(e.to_string()))?
            }
        };
        config.read_timeout = Some(READ_TIMEOUT);
        Ok(config)
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Kubeconfig { path, master: None } => write!(f, "kubeconfig {}", path.display()),
            Self::Kubeconfig { path, master: Some(m) } => {
                write!(f, "kubeconfig {} (server {m})", path.display())
            }
            Self::Master(master) => write!(f, "{master}"),
            Self::InCluster => f.write_str("in-cluster configuration"),
        }
    }
}

/// `--master` as a URL; without a scheme, `scheme` (client-go's rule: https
/// when the kubeconfig may hold TLS settings, http for a bare `--master`).
fn uri(master: &str, scheme: &str) -> Result<hyper::Uri, Error> {
    let url =
        if master.contains("://") { master.to_owned() } else { format!("{scheme}://{master}") };
    url.parse().map_err(|e: hyper::http::uri::InvalidUri| Error::Master {
        url: master.to_owned(),
        detail: e.to_string(),
    })
}

/// A bound on each read of a response: kube-rs sets none, and a LIST on a
/// connection that died half-open would hang for good (a watch has its
/// own idle timeout: 290 s, plus 5). Longer than that, so a quiet watch is
/// never cut by it.
const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kube_proxy_rules_choose_the_api_server() {
        let path = Path::new("/etc/kubeconfig");
        let file = |master: Option<&str>| Endpoint::Kubeconfig {
            path: path.to_owned(),
            master: master.map(str::to_owned),
        };
        // No source flag at all: the in-cluster configuration.
        assert_eq!(Endpoint::choose(None, None, false), Some(Endpoint::InCluster));
        // Manifests alone: no API server.
        assert_eq!(Endpoint::choose(None, None, true), None);
        // --master overrides the kubeconfig's server; either joins manifests.
        assert_eq!(Endpoint::choose(Some(path), None, true), Some(file(None)));
        let master = Some("https://127.0.0.1:6443");
        assert_eq!(Endpoint::choose(Some(path), master, false), Some(file(master)));
        assert_eq!(
            Endpoint::choose(None, master, true),
            Some(Endpoint::Master("https://127.0.0.1:6443".into()))
        );
    }

    #[test]
    fn a_master_without_a_scheme_gets_client_gos() {
        let plain = uri("127.0.0.1:8080", "http").expect("a URL");
        assert_eq!(plain.to_string(), "http://127.0.0.1:8080/");
        let kept = uri("https://127.0.0.1:6443", "http").expect("a URL");
        assert_eq!(kept.scheme_str(), Some("https"));
    }

    #[tokio::test]
    async fn a_master_that_is_no_url_is_a_startup_error() {
        let error = Endpoint::Master("http://[::1".into()).config().await.err();
        assert!(matches!(error, Some(Error::Master { .. })), "{error:?}");
    }
}
