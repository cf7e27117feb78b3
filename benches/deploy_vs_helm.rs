//! rollcall deploy vs `helm upgrade --wait`, side by side on one kubesim and the same chart
//! (the demo `web` chart): wall time of a healthy release, and time to a verdict for a crash loop
//! (helm only gives up at its timeout). rollcall runs `HELM_BIN` (helm 4); `helm --wait` is timed
//! with helm 4 (which watches) and with helm 3 (`HELM3_BIN`, else `helm3` on `PATH`, which polls
//! every 2 s). Run: `cargo bench --bench deploy_vs_helm` (`ROUNDS=N`, default 3).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use kubesim::Cluster;
use kubesim::options::ClusterOptions;
use rollcall::runner::{HelmConfig, RunnerOptions};
use serde_json::json;

const HELM_TIMEOUT: &str = "30s";

fn helm_wait(
    helm: &std::path::Path,
    kubeconfig: &std::path::Path,
    home: &std::path::Path,
    release: &str,
    behavior: &str,
) -> (Duration, bool) {
    let started = Instant::now();
    let status = std::process::Command::new(helm)
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

/// Where a deploy's time went: each event's time since the deploy was queued.
async fn print_timeline(app: &common::app::TestApp, id: uuid::Uuid) {
    let events = common::app::all_events(&app.address, &app.admin_token, id).await;
    let at = |event: &serde_json::Value| {
        event["at"]
            .as_str()
            .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
    };
    let Some(queued) = events.first().and_then(at) else {
        return;
    };
    println!("  timeline of {id}:");
    for event in &events {
        if let Some(at) = at(event) {
            let message: String = event["message"]
                .as_str()
                .unwrap_or("")
                .chars()
                .take(70)
                .collect();
            println!(
                "    +{:>5} ms {:<16} {message}",
                (at - queued).num_milliseconds(),
                event["type"].as_str().unwrap_or("?"),
            );
        }
    }
}

#[tokio::main]
async fn main() {
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|rounds| rounds.parse().ok())
        .unwrap_or(3);
    let helm4 = common::helm::helm_bin();
    let helm3 = common::helm::helm3_bin();
    println!("load average at start: {}", common::figures::load_average());
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
            ..HelmConfig::new(helm4.clone(), Some(kubeconfig.clone()))
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
        let mut ratios = [Vec::new(), Vec::new()];
        for round in 0..rounds {
            let release = format!("{scenario}-rc-{round}");
            let started = Instant::now();
            let id = app
                .submit(
                    &json!({"release": release, "namespace": "default", "chart": {"path": "web"},
                                "values": {"behavior": behavior, "name": release}, "timeout": HELM_TIMEOUT}),
                )
                .await;
            // As a client learns of the end: the stream's `end` frame.
            let mut stream = common::sse::SseStream::connect(
                app.get(&format!("/v1/deploys/{id}/events"), &app.admin_token),
            )
            .await;
            while let Some(frame) = stream.next_frame(Duration::from_secs(60)).await {
                if frame.event.as_deref() == Some("end") {
                    break;
                }
            }
            let rollcall = started.elapsed();
            let deploy = app.deploy(id).await;
            if deploy["status"] != "succeeded" {
                eprintln!("rollcall: {}", deploy["verdict"]);
            }
            if round + 1 == rounds {
                print_timeline(&app, id).await;
            }
            let mut line = format!(
                "{scenario:<10} round {round}: rollcall {:>6.2}s ({})",
                rollcall.as_secs_f64(),
                deploy["status"].as_str().unwrap_or("?"),
            );
            for (index, (name, helm)) in [("helm 4", &helm4), ("helm 3", &helm3)]
                .into_iter()
                .enumerate()
            {
                let release = format!("{scenario}-h{}-{round}", 4 - index);
                let (took, helm_ok) = helm_wait(helm, &kubeconfig, home.path(), &release, behavior);
                let ratio = rollcall.as_secs_f64() / took.as_secs_f64();
                ratios[index].push(ratio);
                line.push_str(&format!(
                    " | {name} --wait {:>6.2}s ({}) ratio {ratio:.2}",
                    took.as_secs_f64(),
                    if helm_ok { "succeeded" } else { "failed" },
                ));
            }
            println!("{line}");
        }
        let mean = |ratios: &[f64]| ratios.iter().sum::<f64>() / ratios.len() as f64;
        println!(
            "{scenario}: rollcall / helm 4 --wait {:.2} (mean of {rounds}), rollcall / helm 3 --wait {:.2}",
            mean(&ratios[0]),
            mean(&ratios[1])
        );
        if scenario == "healthy" {
            common::figures::figure("deploy_vs_helm.ratio_helm4", mean(&ratios[0]), "x");
            common::figures::figure("deploy_vs_helm.ratio_helm3", mean(&ratios[1]), "x");
        }
    }
    println!("load average at end: {}", common::figures::load_average());
    app.shutdown().await;
    cluster.shutdown().await;
}
