//! A cluster per test, with its own kubeconfig, helm and kubectl homes and caches.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use kubesim::options::ClusterOptions;
use kubesim::{Cluster, ClusterHandle};
use tempfile::TempDir;

pub struct TestCluster {
    pub cluster: ClusterHandle,
    pub dir: TempDir,
    pub kubeconfig: PathBuf,
}

/// Commands get a generous safety timeout; none of them should come close.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

pub fn chart(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/charts")
        .join(name)
}

fn binary(variable: &str, default: &str, install_hint: &str) -> String {
    let program = std::env::var(variable).unwrap_or_else(|_| default.to_owned());
    let found = std::process::Command::new(&program)
        .arg("version")
        .output()
        .is_ok();
    assert!(
        found,
        "{program} not found (set {variable} or put it on PATH): {install_hint}"
    );
    program
}

pub fn helm_binary() -> String {
    binary("HELM_BIN", "helm", "run scripts/install-helm")
}

pub fn helm3_binary() -> String {
    binary("HELM3_BIN", "helm3", "run scripts/install-helm --v3")
}

pub fn kubectl_binary() -> String {
    binary(
        "KUBECTL_BIN",
        "kubectl",
        "install kubectl (Debian package kubernetes-client)",
    )
}

impl TestCluster {
    pub async fn start() -> Self {
        Self::start_with(ClusterOptions::default()).await
    }

    pub async fn start_with(options: ClusterOptions) -> Self {
        let cluster = Cluster::start(options).await.expect("cluster starts");
        let dir = tempfile::tempdir().expect("temp dir");
        let kubeconfig = dir.path().join("kubeconfig");
        cluster
            .write_kubeconfig(&kubeconfig)
            .expect("kubeconfig written");
        Self {
            cluster,
            dir,
            kubeconfig,
        }
    }

    pub async fn client(&self) -> kube::Client {
        let kubeconfig =
            kube::config::Kubeconfig::read_from(&self.kubeconfig).expect("kubeconfig reads");
        let config = kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .expect("kubeconfig loads");
        kube::Client::try_from(config).expect("client builds")
    }

    /// A command with this cluster's kubeconfig and private HOME, caches and helm directories.
    pub fn command(&self, program: &str) -> tokio::process::Command {
        let home = self.dir.path().join("home");
        let mut command = tokio::process::Command::new(program);
        command
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", &home)
            .env("KUBECACHEDIR", home.join("kube-cache"))
            .env("HELM_CACHE_HOME", home.join("helm-cache"))
            .env("HELM_CONFIG_HOME", home.join("helm-config"))
            .env("HELM_DATA_HOME", home.join("helm-data"))
            .kill_on_drop(true);
        command
    }

    pub async fn run(&self, program: &str, args: &[&str]) -> Output {
        tokio::time::timeout(COMMAND_TIMEOUT, self.command(program).args(args).output())
            .await
            .unwrap_or_else(|_| panic!("{program} {args:?} timed out"))
            .unwrap_or_else(|error| panic!("{program} {args:?} did not run: {error}"))
    }

    /// Runs the command and requires exit 0; returns stdout.
    pub async fn ok(&self, program: &str, args: &[&str]) -> String {
        let output = self.run(program, args).await;
        assert!(
            output.status.success(),
            "{program} {args:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    pub fn http(&self) -> reqwest::Client {
        reqwest::Client::new()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.cluster.url())
    }
}

/// Waits (bounded) until `condition` holds.
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
