//! Tracking that starts when the resources already look complete: the verdict waits for the first
//! list of every watch they depend on, so what happened before (a crash) is judged too.

use std::time::Duration;

use chrono::Utc;
use kubesim::store::DEPLOYMENTS;
use rollcall::domain::policy::TrackingOverrides;
use rollcall::tracker::watch::{TrackOptions, api_resource};
use serde_json::Value;

use crate::support::{NAMESPACE, SAFETY_TIMEOUT, Sim, annotated, workload};

/// Waits until kubesim reports the Deployment `name` rolled out with `replicas` available.
async fn rolled_out(sim: &Sim, name: &str, replicas: u64) {
    tokio::time::timeout(SAFETY_TIMEOUT, async {
        loop {
            let (deployments, _) = sim.cluster.store().list(&DEPLOYMENTS, Some(NAMESPACE));
            let done = deployments.iter().any(|deployment| {
                let status = &deployment["status"];
                deployment["metadata"]["name"] == name
                    && status["observedGeneration"] == deployment["metadata"]["generation"]
                    && status["updatedReplicas"].as_u64() == Some(replicas)
                    && status["availableReplicas"].as_u64() == Some(replicas)
                    && status["replicas"].as_u64() == Some(replicas)
            });
            if done {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the Deployment rolls out");
}

/// Applies `web`, waits for its rollout to complete, then tracks it with the Deployment watch already
/// listed (another deploy in the namespace shares it), so that the Deployment is read before its pods.
async fn track_after_rollout(sim: &Sim, web: Value) -> crate::support::Outcome {
    let since = Utc::now();
    let resources = sim.apply(&[web]).await.expect("applies");
    rolled_out(sim, "web", 1).await;
    let mut deployments = sim
        .hub
        .subscribe(
            Some(NAMESPACE),
            &api_resource::<k8s_openapi::api::apps::v1::Deployment>(),
        )
        .into_stream();
    while !matches!(
        futures::StreamExt::next(&mut deployments).await,
        Some(rollcall::tracker::watch::Observation::Listed)
    ) {}
    let options = TrackOptions {
        since: Some(since),
        ..TrackOptions::default()
    };
    let outcome = sim
        .track(resources, &TrackingOverrides::default(), options, |_| {})
        .await;
    drop(deployments);
    outcome
}

#[tokio::test]
async fn a_crash_before_tracking_fails_a_deployment_that_looks_complete() {
    let sim = Sim::start().await;
    let web = annotated(
        workload("Deployment", "web", 1, "failFirstStarts=1"),
        "rollcall.dev/failures-allowed-per-replica",
        "0",
    );
    let outcome = track_after_rollout(&sim, web).await;
    assert_eq!(outcome.result(), "failed", "{}", outcome.explain());
    assert!(
        outcome.of("resource.ready").is_empty(),
        "{}",
        outcome.explain()
    );
    let failure = outcome.report.resources[0]
        .failure
        .as_ref()
        .expect("the report holds the failure");
    assert!(
        failure
            .evidence
            .pod
            .as_deref()
            .is_some_and(|pod| pod.starts_with("web-")),
        "the crashed pod is the evidence: {failure:?}"
    );
    assert_eq!(failure.evidence.container.as_deref(), Some("app"));
    sim.shutdown().await;
}

#[tokio::test]
async fn a_healthy_deployment_that_looks_complete_succeeds() {
    let sim = Sim::start().await;
    let outcome =
        track_after_rollout(&sim, workload("Deployment", "web", 1, "readyAfter=1s")).await;
    assert_eq!(outcome.result(), "succeeded", "{}", outcome.explain());
    assert_eq!(
        outcome.of("resource.ready").len(),
        1,
        "{}",
        outcome.explain()
    );
    assert!(
        !outcome.of("pod.status").is_empty(),
        "its pods were read before the verdict: {}",
        outcome.explain()
    );
    sim.shutdown().await;
}
