//! A server that deploys: the real helm binary, a kubesim cluster, and a runner over the test
//! chart catalog.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rollcall::config::Config;
use rollcall::runner::{HelmConfig, RunnerOptions};

use super::charts;
// Re-exported: the runner tests reach the suite's helm through here too.
pub use super::helm::helm_bin;

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
