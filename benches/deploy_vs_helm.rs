//! rollcall deploy vs `helm upgrade --wait`, side by side on one kubesim and the same chart
//! (the demo `web` chart): wall time of a healthy release, and time to a verdict for a crash loop
//! (helm only gives up at its timeout). Run: `cargo bench --bench deploy_vs_helm`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use kubesim::Cluster;
use kubesim::options::ClusterOptions;
use rollcall::runner::{HelmConfig, RunnerOptions};
use serde_json::json;

const HELM_TIMEOUT: &str = "30s";
const ROUNDS: usize = 2;

fn helm_wait(
    kubeconfig: &std::path::Path,
    home: &std::path::Path,
    release: &str,
    behavior: &str,
) -> (Duration, bool) {
    let started = Instant::now();
    let status =
        std::process::Command::new(std::env::var("HELM_BIN").unwrap_or_else(|_| "helm".into()))
            .args(["upgrade", "--install", release])
            .arg(common::charts::catalog().join("web"))
            .args([
                "--namespace",
                "default",
                "--wait",
                "--timeout",
                HELM_TIMEOUT,
            ])
            .args(["--set-string", &format!("behavior={behavior}")])
            .args(["--set-string", &format!("name={release}")])
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .env("HOME", home)
            .env("HELM_CACHE_HOME", home.join("cache"))
            .env("HELM_CONFIG_HOME", home.join("config"))
            .env("HELM_DATA_HOME", home.join("data"))
            .output()
            .expect("helm runs");
    if !status.status.success() {
        eprintln!("helm: {}", String::from_utf8_lossy(&status.stderr).trim());
    }
    (started.elapsed(), status.status.success())
}

#[tokio::main]
async fn main() {
    let home = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(ClusterOptions::default())
        .await
        .expect("kubesim");
    let kubeconfig = home.path().join("kubeconfig");
    std::fs::write(&kubeconfig, cluster.kubeconfig_yaml()).unwrap();
    let app = common::app::spawn_app_with(|config| {
        config.chart_dir = Some(common::charts::catalog());
        config.helm = HelmConfig {
            home: home.path().join("rollcall-helm"),
            ..HelmConfig::new(
                std::env::var("HELM_BIN").unwrap_or_else(|_| "helm".into()),
                Some(kubeconfig.clone()),
            )
        };
        config.runner = Some(RunnerOptions {
            poll_interval: Duration::from_millis(20),
            ..RunnerOptions::default()
        });
    })
    .await;
    for (scenario, behavior) in [
        ("healthy", "readyAfter=2s"),
        ("crash-loop", "crashAfter=1s;exitCode=1"),
    ] {
        for round in 0..ROUNDS {
            let release = format!("{scenario}-rc-{round}");
            let started = Instant::now();
            let id = app
                .submit(
                    &json!({"release": release, "namespace": "default", "chart": {"path": "web"},
                                "values": {"behavior": behavior, "name": release}, "timeout": HELM_TIMEOUT}),
                )
                .await;
            let deploy = loop {
                let deploy = app.deploy(id).await;
                if matches!(
                    deploy["status"].as_str(),
                    Some("succeeded" | "failed" | "cancelled")
                ) {
                    break deploy;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            };
            let rollcall = started.elapsed();
            if deploy["status"] != "succeeded" {
                eprintln!("rollcall: {}", deploy["verdict"]);
            }
            let (helm, helm_ok) = helm_wait(
                &kubeconfig,
                home.path(),
                &format!("{scenario}-helm-{round}"),
                behavior,
            );
            println!(
                "{scenario:<10} round {round}: rollcall {:>7.2}s ({}) | helm --wait {:>7.2}s ({}) | ratio {:.2}",
                rollcall.as_secs_f64(),
                deploy["status"].as_str().unwrap_or("?"),
                helm.as_secs_f64(),
                if helm_ok { "succeeded" } else { "failed" },
                rollcall.as_secs_f64() / helm.as_secs_f64()
            );
        }
    }
    app.shutdown().await;
    cluster.shutdown().await;
}
