//! Errors of rollcall's own API calls never become a verdict (DESIGN §5.3): the same rollout reaches
//! the same verdict with watches dropped, history compacted (410) and 5xx/429 bursts.

use std::time::Duration;

use axum::http::StatusCode;
use kubesim::{ClusterHandle, RequestCounts};
use rollcall::domain::policy::TrackingOverrides;
use rollcall::tracker::watch::Deadlines;

use crate::support::{Outcome, Sim, workload};

/// Deploys a two-replica Deployment, injecting faults once tracking has begun; also returns the
/// requests served from the injection on.
async fn deploy_with_faults(
    behavior: &str,
    inject: impl FnOnce(&ClusterHandle),
) -> (Outcome, RequestCounts) {
    let sim = Sim::start().await;
    let outcome = sim
        .deploy_with(
            &[workload("Deployment", "web", 2, behavior)],
            &TrackingOverrides::default(),
            Deadlines::default(),
            |cluster| {
                cluster.reset_request_counts();
                inject(cluster);
            },
        )
        .await;
    let counts = sim.cluster.request_counts();
    sim.shutdown().await;
    (outcome, counts)
}

#[tokio::test]
async fn dropped_watches_and_410_keep_a_healthy_verdict() {
    let (outcome, counts) = deploy_with_faults("readyAfter=3s", |cluster| {
        // Re-watches wait while the rollout moves on and history is compacted under them: they
        // resume from a resourceVersion that is gone (410) and must re-list.
        cluster.set_latency(Duration::from_millis(300));
        cluster.drop_watches();
        let (store, admin) = (cluster.store().clone(), cluster.admin().clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(150)).await;
            store.compact();
            tokio::time::sleep(Duration::from_millis(300)).await;
            admin.clear_faults();
        });
    })
    .await;
    assert_eq!(outcome.result(), "succeeded", "{}", outcome.explain());
    assert!(
        counts.by_verb.get("list").copied().unwrap_or(0) > 0,
        "a 410 made a watch re-list: {counts:?}"
    );
}

#[tokio::test]
async fn watch_requests_answered_410_relist_and_keep_a_healthy_verdict() {
    let (outcome, counts) = deploy_with_faults("readyAfter=3s", |cluster| {
        // Every watch ends and its re-watch is answered 410 Gone as the HTTP status (not an ERROR
        // event in the stream): retrying that resourceVersion can never succeed, only a re-list can.
        cluster.fail_next(4, StatusCode::GONE, Some("watch=true"));
        cluster.drop_watches();
    })
    .await;
    assert_eq!(outcome.result(), "succeeded", "{}", outcome.explain());
    assert!(outcome.report.api_errors > 0, "{}", outcome.explain());
    for resource in ["deployments.apps", "replicasets.apps", "pods", "events"] {
        assert!(
            counts.count("list", resource) > 0,
            "the {resource} watch re-listed after its 410: {counts:?}"
        );
    }
}

#[tokio::test]
async fn server_error_bursts_keep_a_healthy_verdict_and_are_counted() {
    let (outcome, _) = deploy_with_faults("readyAfter=3s", |cluster| {
        cluster.drop_watches();
        cluster.fail_next(6, StatusCode::INTERNAL_SERVER_ERROR, None);
    })
    .await;
    assert_eq!(outcome.result(), "succeeded", "{}", outcome.explain());
    assert!(outcome.report.api_errors > 0, "{}", outcome.explain());
    assert!(
        !outcome.of("tracker.warning").is_empty(),
        "{}",
        outcome.explain()
    );
}

#[tokio::test]
async fn throttling_keeps_a_crash_loop_verdict() {
    let (outcome, _) = deploy_with_faults("crashAfter=500ms", |cluster| {
        cluster.drop_watches();
        cluster.fail_next(4, StatusCode::TOO_MANY_REQUESTS, None);
    })
    .await;
    assert_eq!(outcome.result(), "failed", "{}", outcome.explain());
    assert!(
        !outcome.of("resource.failed").is_empty(),
        "{}",
        outcome.explain()
    );
}
