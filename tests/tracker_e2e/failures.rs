//! Failing rollouts fail, for the right reason, with the evidence.

use std::time::Duration;

use chrono::Utc;
use kubesim::store::PODS;
use rollcall::domain::policy::TrackingOverrides;
use rollcall::tracker::watch::{Deadlines, TrackOptions};
use serde_json::{Value, json};

use crate::support::{NAMESPACE, SAFETY_TIMEOUT, Sim, annotated, job, workload};

#[tokio::test]
async fn image_pull_failure_fails_the_deployment() {
    let sim = Sim::start().await;
    let outcome = sim
        .deploy(&[workload("Deployment", "web", 1, "imagePull=fail")])
        .await;
    assert_eq!(outcome.result(), "failed", "{}", outcome.explain());
    assert!(
        ["ErrImagePull", "ImagePullBackOff"].contains(&outcome.reason().as_str()),
        "reason {}: {}",
        outcome.reason(),
        outcome.explain()
    );
    assert!(!outcome.of("resource.failure").is_empty());
    assert_eq!(
        outcome.of("resource.failed").len(),
        1,
        "{}",
        outcome.explain()
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn crash_loop_fails_after_allowance_with_previous_logs() {
    let sim = Sim::start().await;
    let outcome = sim
        .deploy(&[workload(
            "Deployment",
            "web",
            1,
            "crashAfter=500ms;log=starting web v1",
        )])
        .await;
    assert_eq!(outcome.result(), "failed", "{}", outcome.explain());
    let failures = outcome.of("resource.failure");
    assert!(
        failures.len() >= 2,
        "one incident is allowed: {}",
        outcome.explain()
    );
    assert_eq!(failures[0].data["allowance"], 1);
    let failure = outcome.report.resources[0]
        .failure
        .as_ref()
        .expect("the report holds the failure");
    assert_eq!(failure.evidence.container.as_deref(), Some("app"));
    assert!(
        failure
            .evidence
            .log_lines
            .iter()
            .any(|line| line.contains("starting web v1")),
        "the crashed container's last lines are in the report: {failure:?}"
    );
    sim.shutdown().await;
}

/// The pod of `app` once its container waits in CrashLoopBackOff with at least `restarts` restarts.
async fn crash_loop_back_off(sim: &Sim, app: &str, restarts: u64) -> Value {
    tokio::time::timeout(SAFETY_TIMEOUT, async {
        loop {
            let (pods, _) = sim.cluster.store().list(&PODS, Some(NAMESPACE));
            let backing_off = pods.into_iter().find(|pod| {
                let status = &pod["status"]["containerStatuses"][0];
                pod["metadata"]["labels"]["app"] == app
                    && status["state"]["waiting"]["reason"] == "CrashLoopBackOff"
                    && status["restartCount"].as_u64() >= Some(restarts)
            });
            if let Some(pod) = backing_off {
                return Value::clone(&pod);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the container reaches CrashLoopBackOff")
}

#[tokio::test]
async fn crash_loop_judged_during_back_off_reports_the_previous_instance_logs() {
    let sim = Sim::start().await;
    let since = Utc::now();
    let web = annotated(
        workload(
            "Deployment",
            "web",
            1,
            "crashAfter=500ms;log=starting web run {restartCount}",
        ),
        "rollcall.dev/failures-allowed-per-replica",
        "0",
    );
    let resources = sim.apply(&[web]).await.expect("applies");
    // Three restarts in, the back-off is 40s (4s at this time scale): tracking starts, and its
    // verdict lands, while the container waits to restart. restartCount numbers the crashed run.
    let pod = crash_loop_back_off(&sim, "web", 3).await;
    let crashed_run = pod["status"]["containerStatuses"][0]["restartCount"].clone();
    sim.cluster.reset_request_counts();
    let outcome = sim
        .track(
            resources,
            &TrackingOverrides::default(),
            TrackOptions {
                since: Some(since),
                ..TrackOptions::default()
            },
            |_| {},
        )
        .await;
    let counts = sim.cluster.request_counts();
    assert_eq!(outcome.result(), "failed", "{}", outcome.explain());
    assert_eq!(
        outcome.reason(),
        "CrashLoopBackOff",
        "{}",
        outcome.explain()
    );
    let failure = outcome.report.resources[0]
        .failure
        .as_ref()
        .expect("the report holds the failure");
    assert!(failure.evidence.previous_instance, "{failure:?}");
    let expected = format!("starting web run {crashed_run}");
    assert!(
        !failure.evidence.log_lines.is_empty()
            && failure
                .evidence
                .log_lines
                .iter()
                .all(|line| *line == expected),
        "only the crashed (previous) instance's lines, {expected:?}: {failure:?}"
    );
    assert!(
        counts.previous_logs >= 1,
        "the log was asked for the previous instance: {counts:?}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn progress_deadline_exceeded_fails_at_once() {
    let sim = Sim::start().await;
    let mut web = workload("Deployment", "web", 1, "neverReady=true");
    web["spec"]["progressDeadlineSeconds"] = json!(10);
    let outcome = sim.deploy(&[web]).await;
    assert_eq!(outcome.result(), "failed", "{}", outcome.explain());
    assert_eq!(
        outcome.reason(),
        "ProgressDeadlineExceeded",
        "{}",
        outcome.explain()
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn failed_job_fails_with_its_reason_and_logs() {
    let sim = Sim::start().await;
    let outcome = sim
        .deploy(&[job(
            "migrate",
            1,
            "exitAfter=200ms;exitCode=3;log=relation users does not exist",
        )])
        .await;
    assert_eq!(outcome.result(), "failed", "{}", outcome.explain());
    assert_eq!(
        outcome.reason(),
        "BackoffLimitExceeded",
        "{}",
        outcome.explain()
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn never_ready_fails_on_no_activity_timeout() {
    let sim = Sim::start().await;
    let web = annotated(
        workload("Deployment", "web", 1, "neverReady=true"),
        "rollcall.dev/no-activity-timeout",
        "2s",
    );
    let deadlines = Deadlines {
        tick: std::time::Duration::from_millis(200),
        ..Deadlines::default()
    };
    let outcome = sim
        .deploy_with(&[web], &TrackingOverrides::default(), deadlines, |_| {})
        .await;
    assert_eq!(outcome.result(), "failed", "{}", outcome.explain());
    assert_eq!(
        outcome.reason(),
        "NoActivityTimeout",
        "{}",
        outcome.explain()
    );
    let failure = outcome.report.resources[0]
        .failure
        .as_ref()
        .expect("failure");
    assert_eq!(
        failure.evidence.container.as_deref(),
        Some("app"),
        "{failure:?}"
    );
    sim.shutdown().await;
}
