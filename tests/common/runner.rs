//! A server that deploys: the real helm binary, a kubesim cluster, and a runner over the test
//! chart catalog.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rollcall::config::Config;
use rollcall::runner::{HelmConfig, RunnerOptions};

use super::charts;

/// The helm binary under test: `HELM_BIN`, else `helm` on PATH; fails with how to install it.
pub fn helm_bin() -> PathBuf {
    let bin = std::env::var_os("HELM_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("helm"));
    let works = std::process::Command::new(&bin)
        .arg("version")
        .output()
        .is_ok_and(|output| output.status.success());
    assert!(
        works,
        "these tests need the real helm: install it (scripts/install-helm, or \
         https://helm.sh/docs/intro/install/) or point HELM_BIN at it"
    );
    bin
}

/// Configures helm, the chart catalog and a runner with short leases.
pub fn with_runner(config: &mut Config, kubeconfig: Option<PathBuf>, home: &Path) {
    config.chart_dir = Some(charts::catalog());
    config.helm = HelmConfig {
        home: home.join("helm"),
        kill_grace: Duration::from_secs(2),
        ..HelmConfig::new(helm_bin(), kubeconfig)
    };
    config.runner = Some(RunnerOptions {
        lease: Duration::from_secs(3),
        poll_interval: Duration::from_millis(50),
        ..RunnerOptions::default()
    });
}

/// A kubesim cluster (simulated durations times `time_scale`) and its kubeconfig in `dir`.
pub async fn start_kubesim(time_scale: f64, dir: &Path) -> (kubesim::ClusterHandle, PathBuf) {
    let cluster = kubesim::Cluster::start(kubesim::options::ClusterOptions {
        time_scale,
        ..kubesim::options::ClusterOptions::default()
    })
    .await
    .expect("kubesim starts");
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, cluster.kubeconfig_yaml()).expect("write kubeconfig");
    (cluster, kubeconfig)
}
