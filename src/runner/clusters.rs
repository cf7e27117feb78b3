//! One watch hub per configured cluster (a kube context), created on first use and shared by every
//! deploy this process tracks there.

use std::collections::HashMap;
use std::ffi::OsStr;
#[cfg(test)]
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};
use tokio::sync::Mutex;

use crate::domain::names::ClusterName;
use crate::telemetry::WatchMetrics;
use crate::tracker::watch::{HubOptions, WatchHub};

/// How long a watch outlives its last deploy: deploys of a namespace come in bursts.
const WATCH_LINGER: Duration = Duration::from_secs(30);
/// The `User-Agent` of rollcall's watches, lists and log streams.
const USER_AGENT: &str = concat!("rollcall/", env!("CARGO_PKG_VERSION"));

#[derive(Debug, thiserror::Error)]
#[error("cannot connect to cluster {cluster}: {message}")]
pub struct ClusterError {
    pub cluster: String,
    pub message: String,
}

/// A kubeconfig path list (`KUBECONFIG` syntax) merged as kubectl (client-go) and so helm merge
/// it: empty entries and missing files are skipped, the first file to name a cluster, user or
/// context wins, and so does the first `current-context`.
/// <https://kubernetes.io/docs/concepts/configuration/organize-cluster-access-kubeconfig/#merging-kubeconfig-files>
pub fn load_kubeconfig(paths: &OsStr) -> Result<Kubeconfig, KubeconfigError> {
    let mut merged = Kubeconfig::default();
    for path in std::env::split_paths(paths).filter(|path| !path.as_os_str().is_empty()) {
        match Kubeconfig::read_from(&path) {
            Ok(next) => merged = merged.merge(next)?,
            Err(KubeconfigError::ReadConfig(error, _))
                if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
    }
    Ok(merged)
}

pub struct Clusters {
    kubeconfig: Option<PathBuf>,
    hubs: Mutex<HashMap<String, WatchHub>>,
    /// Every hub's watches are counted here.
    metrics: Arc<WatchMetrics>,
}

impl Clusters {
    pub fn new(kubeconfig: Option<PathBuf>, metrics: Arc<WatchMetrics>) -> Self {
        Clusters {
            kubeconfig,
            hubs: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    /// The hub of `cluster`: `default` is the kubeconfig's current context, another name the
    /// context of that name.
    pub async fn hub(&self, cluster: &str) -> Result<WatchHub, ClusterError> {
        let mut hubs = self.hubs.lock().await;
        if let Some(hub) = hubs.get(cluster) {
            return Ok(hub.clone());
        }
        let error = |message: String| ClusterError {
            cluster: cluster.to_owned(),
            message,
        };
        let options = KubeConfigOptions {
            context: (cluster != ClusterName::default_cluster().as_str())
                .then(|| cluster.to_owned()),
            ..KubeConfigOptions::default()
        };
        let mut config = match &self.kubeconfig {
            Some(paths) => {
                let kubeconfig =
                    load_kubeconfig(paths.as_os_str()).map_err(|e| error(e.to_string()))?;
                kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                    .await
                    .map_err(|e| error(e.to_string()))?
            }
            // In a pod without a kubeconfig, the default cluster is the one it runs in (its
            // service account), as helm sees it too.
            None if options.context.is_none() => kube::Config::infer()
                .await
                .map_err(|e| error(e.to_string()))?,
            None => kube::Config::from_kubeconfig(&options)
                .await
                .map_err(|e| error(e.to_string()))?,
        };
        // Names rollcall's own requests in the API server's audit log (helm's name themselves).
        config.headers.push((
            http::header::USER_AGENT,
            http::HeaderValue::from_static(USER_AGENT),
        ));
        let client = kube::Client::try_from(config).map_err(|e| error(e.to_string()))?;
        let hub = WatchHub::new(
            client,
            HubOptions {
                metrics: Arc::clone(&self.metrics),
                linger: WATCH_LINGER,
                ..HubOptions::default()
            },
        );
        hubs.insert(cluster.to_owned(), hub.clone());
        Ok(hub)
    }

    pub async fn shutdown(&self) {
        let hubs: Vec<WatchHub> = self.hubs.lock().await.drain().map(|(_, hub)| hub).collect();
        for hub in hubs {
            hub.shutdown().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kubeconfig(current: Option<&str>, entries: &[(&str, &str)]) -> String {
        let mut text = String::from("apiVersion: v1\nkind: Config\nclusters:\n");
        for (name, server) in entries {
            text += &format!("- name: {name}\n  cluster: {{server: \"{server}\"}}\n");
        }
        text += "contexts:\n";
        for (name, _) in entries {
            text += &format!("- name: {name}\n  context: {{cluster: {name}, user: u}}\n");
        }
        text += "users:\n- name: u\n  user: {}\n";
        if let Some(current) = current {
            text += &format!("current-context: {current}\n");
        }
        text
    }

    fn server_of(config: &Kubeconfig, context: &str) -> String {
        let cluster = config
            .contexts
            .iter()
            .find(|named| named.name == context)
            .and_then(|named| named.context.as_ref())
            .map(|context| context.cluster.clone())
            .unwrap_or_else(|| panic!("no context {context}"));
        config
            .clusters
            .iter()
            .find(|named| named.name == cluster)
            .and_then(|named| named.cluster.as_ref())
            .and_then(|cluster| cluster.server.clone())
            .unwrap_or_else(|| panic!("no cluster {cluster}"))
    }

    #[test]
    fn a_path_list_is_merged_first_file_wins() {
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("first");
        let second = dir.path().join("second");
        std::fs::write(
            &first,
            kubeconfig(None, &[("staging", "https://staging.first")]),
        )
        .unwrap();
        std::fs::write(
            &second,
            kubeconfig(
                Some("prod"),
                &[
                    ("staging", "https://staging.second"),
                    ("prod", "https://prod.second"),
                ],
            ),
        )
        .unwrap();
        let list =
            std::env::join_paths([first.as_path(), Path::new(""), second.as_path()]).unwrap();

        let merged = load_kubeconfig(&list).unwrap();
        assert_eq!(server_of(&merged, "staging"), "https://staging.first");
        assert_eq!(server_of(&merged, "prod"), "https://prod.second");
        // The first file sets no current context: the second one's counts.
        assert_eq!(merged.current_context.as_deref(), Some("prod"));

        let single = load_kubeconfig(second.as_os_str()).unwrap();
        assert_eq!(server_of(&single, "staging"), "https://staging.second");
    }

    #[test]
    fn missing_files_are_skipped_and_unreadable_ones_refused() {
        let dir = tempfile::tempdir().unwrap();
        let present = dir.path().join("present");
        std::fs::write(&present, kubeconfig(Some("a"), &[("a", "https://a")])).unwrap();
        let list = std::env::join_paths([dir.path().join("absent"), present.clone()]).unwrap();
        assert_eq!(
            server_of(&load_kubeconfig(&list).unwrap(), "a"),
            "https://a"
        );

        let garbage = dir.path().join("garbage");
        std::fs::write(&garbage, "clusters: [not, a, kubeconfig").unwrap();
        let list = std::env::join_paths([present, garbage]).unwrap();
        assert!(load_kubeconfig(&list).is_err());
    }
}
