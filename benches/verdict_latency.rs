//! Verdict latency and API cost of tracking on kubesim (DESIGN §8).
//!
//! `cargo bench --bench verdict_latency` (`RUNS=100` for more samples). Latency runs from the
//! simulator's decisive change, as kubesim records it (its `RolloutComplete` transition; the pod status
//! write showing the second crash, one beyond the allowance of 1), to the `report` event of `track()`.
//! Tracking starts before the objects are applied, so its start-up is not counted.

#[allow(dead_code)] // shared with the end-to-end tests, of which the benchmark uses a part
#[path = "../tests/tracker_e2e/support.rs"]
mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, DeleteParams};
use kubesim::control_loop::TransitionKind;
use kubesim::store::PODS;
use rollcall::domain::policy::TrackingOverrides;
use rollcall::tracker::core::plan;
use rollcall::tracker::watch::{TrackOptions, track};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use support::{NAMESPACE, SAFETY_TIMEOUT, Sim, manifest_of, workload};

/// Time given to a new tracking to list and open its watches before the rollout begins.
const WATCHES_SETTLE: Duration = Duration::from_millis(300);

/// Which change decides the verdict.
#[derive(Clone, Copy)]
enum Decisive {
    RolloutComplete,
    /// The second crash of the pod (allowance 1 × 1 replica exceeded).
    SecondCrash,
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run());
}

async fn run() {
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|runs| runs.parse().ok())
        .unwrap_or(50);
    let sim = Sim::start().await;
    let success = latencies(
        &sim,
        runs,
        "ok",
        "readyAfter=500ms",
        Decisive::RolloutComplete,
    )
    .await;
    print_latencies("success (2 replicas ready)", &success);
    let crash = latencies(
        &sim,
        runs,
        "crash",
        "crashAfter=200ms",
        Decisive::SecondCrash,
    )
    .await;
    print_latencies("crash loop beyond the allowance", &crash);
    sim.shutdown().await;
    for resources in [1, 10, 100] {
        api_cost(resources).await;
    }
}

async fn latencies(
    sim: &Sim,
    runs: usize,
    prefix: &str,
    behavior: &str,
    decisive: Decisive,
) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(runs);
    for run in 0..runs {
        let name = format!("{prefix}-{run}");
        let replicas = match decisive {
            Decisive::RolloutComplete => 2,
            Decisive::SecondCrash => 1,
        };
        let decided = watch_decisive_change(sim, &name, decisive);
        let object = workload("Deployment", &name, replicas, behavior);
        let manifest = manifest_of(std::slice::from_ref(&object)).expect("valid manifest");
        let resources =
            plan(&manifest, NAMESPACE, &TrackingOverrides::default()).expect("valid policy");
        let mut tracking = track(
            &sim.hub,
            resources,
            TrackOptions::default(),
            CancellationToken::new(),
        );
        // Watches are up before the rollout starts: what is measured is reaction, not start-up.
        tokio::time::sleep(WATCHES_SETTLE).await;
        sim.apply(&[object]).await.expect("deployment applies");
        let verdict_at = tokio::time::timeout(SAFETY_TIMEOUT, async {
            let mut verdict_at = None;
            while let Some(event) = tracking.next_event().await {
                if event.kind.as_str() == "report" {
                    verdict_at = Some(Instant::now());
                }
            }
            tracking.finish().await.expect("tracking completes");
            verdict_at
        })
        .await
        .expect("tracking ends in time");
        // Finished rollouts (and crash loops) must not load the cluster for the next runs.
        Api::<Deployment>::namespaced(sim.client.clone(), NAMESPACE)
            .delete(&name, &DeleteParams::default())
            .await
            .expect("deployment deletes");
        let decisive_at = tokio::time::timeout(SAFETY_TIMEOUT, decided)
            .await
            .expect("kubesim records the decisive change in time")
            .expect("the decisive change was seen");
        let verdict_at = verdict_at.expect("a report event ends tracking");
        samples.push(verdict_at.saturating_duration_since(decisive_at));
    }
    samples
}

/// Resolves with the instant kubesim records the decisive change of deployment `name`: its
/// `RolloutComplete` transition, or the pod status showing its second crash (a terminated container
/// that has restarted before: one crash beyond the allowance of 1).
fn watch_decisive_change(sim: &Sim, name: &str, decisive: Decisive) -> oneshot::Receiver<Instant> {
    let (sender, receiver) = oneshot::channel();
    let name = name.to_owned();
    match decisive {
        Decisive::RolloutComplete => {
            let mut transitions = sim.control.subscribe();
            tokio::spawn(async move {
                while let Ok(transition) = transitions.recv().await {
                    if transition.name == name
                        && matches!(transition.kind, TransitionKind::RolloutComplete { .. })
                    {
                        let _receiver_gone = sender.send(transition.at);
                        return;
                    }
                }
            });
        }
        Decisive::SecondCrash => {
            let mut changes = sim.cluster.store().subscribe();
            tokio::spawn(async move {
                while let Ok(change) = changes.recv().await {
                    let pod = &change.object;
                    if change.resource == PODS
                        && pod["metadata"]["labels"]["app"].as_str() == Some(name.as_str())
                        && crashed_again(pod)
                    {
                        let _receiver_gone = sender.send(Instant::now());
                        return;
                    }
                }
            });
        }
    }
    receiver
}

fn crashed_again(pod: &Value) -> bool {
    pod["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|status| {
            status["state"]["terminated"].is_object()
                && status["restartCount"]
                    .as_i64()
                    .is_some_and(|restarts| restarts >= 1)
        })
}

fn print_latencies(label: &str, samples: &[Duration]) {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let percentile = |p: f64| {
        let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted[index]
    };
    println!(
        "verdict latency, {label}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms over {} runs",
        percentile(0.5).as_secs_f64() * 1000.0,
        percentile(0.99).as_secs_f64() * 1000.0,
        percentile(1.0).as_secs_f64() * 1000.0,
        sorted.len()
    );
}

/// Kubernetes requests made by tracking one deploy of `resources` Deployments, on a fresh cluster.
async fn api_cost(resources: usize) {
    let sim = Sim::start().await;
    let objects: Vec<Value> = (0..resources)
        .map(|index| workload("Deployment", &format!("app-{index}"), 1, "readyAfter=500ms"))
        .collect();
    let manifest = sim.apply(&objects).await.expect("deployments apply");
    let tracked = plan(&manifest, NAMESPACE, &TrackingOverrides::default()).expect("valid policy");
    sim.cluster.reset_request_counts();
    let tracking = track(
        &sim.hub,
        tracked,
        TrackOptions::default(),
        CancellationToken::new(),
    );
    let report = tracking.finish().await.expect("tracking completes");
    assert!(report.succeeded(), "{:?}", report.outcome);
    let counts = sim.cluster.request_counts();
    println!(
        "API cost, {resources} Deployment(s): {} requests ({:?})",
        counts.total, counts.by_verb
    );
    sim.shutdown().await;
}
