//! One watch hub per configured cluster (a kube context), created on first use and shared by every
//! deploy this process tracks there.

use std::collections::HashMap;
use std::path::PathBuf;

use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::sync::Mutex;

use crate::domain::names::ClusterName;
use crate::tracker::watch::{HubOptions, WatchHub};

#[derive(Debug, thiserror::Error)]
#[error("cannot connect to cluster {cluster}: {message}")]
pub struct ClusterError {
    pub cluster: String,
    pub message: String,
}

pub struct Clusters {
    kubeconfig: Option<PathBuf>,
    hubs: Mutex<HashMap<String, WatchHub>>,
}

impl Clusters {
    pub fn new(kubeconfig: Option<PathBuf>) -> Self {
        Clusters {
            kubeconfig,
            hubs: Mutex::new(HashMap::new()),
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
        let config = match &self.kubeconfig {
            Some(path) => {
                let kubeconfig = Kubeconfig::read_from(path).map_err(|e| error(e.to_string()))?;
                kube::Config::from_custom_kubeconfig(kubeconfig, &options).await
            }
            None => kube::Config::from_kubeconfig(&options).await,
        }
        .map_err(|e| error(e.to_string()))?;
        let client = kube::Client::try_from(config).map_err(|e| error(e.to_string()))?;
        let hub = WatchHub::new(client, HubOptions::default());
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
