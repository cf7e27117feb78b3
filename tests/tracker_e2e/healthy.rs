//! Healthy rollouts end ready, including the churn that must never count (DESIGN §5.3).

use kubesim::control_loop::TransitionKind;
use kubesim::options::KubeVersion;
use serde_json::json;

use crate::support::{Sim, job, workload};

#[tokio::test]
async fn healthy_deployment_becomes_ready() {
    let sim = Sim::start().await;
    let mut transitions = sim.control.subscribe();
    let outcome = sim
        .deploy(&[workload("Deployment", "web", 3, "readyAfter=1s")])
        .await;
    assert_eq!(outcome.result(), "succeeded", "{}", outcome.explain());
    let completed = std::iter::from_fn(|| transitions.try_recv().ok()).any(|transition| {
        transition.name == "web"
            && matches!(transition.kind, TransitionKind::RolloutComplete { .. })
    });
    assert!(
        completed,
        "the verdict follows kubesim's own rollout completion"
    );
    let ready = outcome.of("resource.ready");
    assert_eq!(ready.len(), 1, "{}", outcome.explain());
    assert_eq!(
        ready[0].resource.as_ref().map(|r| r.name.as_str()),
        Some("web")
    );
    assert!(
        !outcome.of("pod.status").is_empty(),
        "{}",
        outcome.explain()
    );
    assert!(
        outcome.of("resource.failure").is_empty(),
        "{}",
        outcome.explain()
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn healthy_statefulset_becomes_ready() {
    let sim = Sim::start().await;
    let outcome = sim
        .deploy(&[workload("StatefulSet", "db", 2, "readyAfter=1s")])
        .await;
    assert_eq!(outcome.result(), "succeeded", "{}", outcome.explain());
    assert_eq!(
        outcome.report.resources[0].status.ready.as_deref(),
        Some("2/2")
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn healthy_daemonset_becomes_ready_on_every_node() {
    let sim = Sim::start().await;
    let outcome = sim
        .deploy(&[workload("DaemonSet", "agent", 0, "readyAfter=1s")])
        .await;
    assert_eq!(outcome.result(), "succeeded", "{}", outcome.explain());
    let nodes = sim.cluster.options().nodes;
    assert_eq!(
        outcome.report.resources[0].status.ready.as_deref(),
        Some(format!("{nodes}/{nodes}").as_str())
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn completed_job_is_ready() {
    let sim = Sim::start().await;
    let outcome = sim
        .deploy(&[job("migrate", 2, "exitAfter=3s;log=migrated 3 tables")])
        .await;
    assert_eq!(outcome.result(), "succeeded", "{}", outcome.explain());
    assert!(
        outcome
            .of("container.log")
            .iter()
            .any(|event| event.message.contains("migrated 3 tables")),
        "the job's log is streamed: {}",
        outcome.explain()
    );
    sim.shutdown().await;
}

/// Rolls `name` from version 1 to version 2 (a new image), both healthy.
async fn rolling_update(sim: &Sim, kind: &str, behavior: &str) -> crate::support::Outcome {
    let first = sim.deploy(&[workload(kind, "web", 3, behavior)]).await;
    assert_eq!(
        first.result(),
        "succeeded",
        "first release: {}",
        first.explain()
    );
    let mut second = workload(kind, "web", 3, behavior);
    second["spec"]["template"]["spec"]["containers"][0]["image"] = json!("example.com/web:2");
    sim.deploy(&[second]).await
}

#[tokio::test]
async fn statefulset_update_succeeds_through_recreated_failed_pods_on_1_29() {
    let sim = Sim::start_version("1.29".parse::<KubeVersion>().expect("valid version")).await;
    let outcome = rolling_update(&sim, "StatefulSet", "readyAfter=1s").await;
    assert_eq!(outcome.result(), "succeeded", "{}", outcome.explain());
    let reasons: Vec<String> = outcome
        .of("k8s.event")
        .iter()
        .filter_map(|event| event.data["reason"].as_str().map(str::to_owned))
        .collect();
    for expected in ["RecreatingFailedPod", "FailedDelete"] {
        assert!(
            reasons.iter().any(|reason| reason == expected),
            "kubesim 1.29 recreates the failed terminating pod ({expected}): {}",
            outcome.explain()
        );
    }
    assert!(
        outcome.of("resource.failure").is_empty(),
        "{}",
        outcome.explain()
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn statefulset_update_succeeds_on_the_default_version() {
    let sim = Sim::start().await;
    let outcome = rolling_update(&sim, "StatefulSet", "readyAfter=1s").await;
    assert_eq!(outcome.result(), "succeeded", "{}", outcome.explain());
    assert!(
        outcome.of("resource.failure").is_empty(),
        "{}",
        outcome.explain()
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn readiness_failing_while_old_pods_terminate_does_not_count() {
    let sim = Sim::start().await;
    let outcome = rolling_update(
        &sim,
        "Deployment",
        "readyAfter=1s;failReadinessWhileTerminating=true;terminationDelay=3s",
    )
    .await;
    assert_eq!(outcome.result(), "succeeded", "{}", outcome.explain());
    assert!(
        outcome.of("resource.failure").is_empty(),
        "{}",
        outcome.explain()
    );
    sim.shutdown().await;
}
