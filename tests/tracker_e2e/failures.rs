//! Failing rollouts fail, for the right reason, with the evidence.

use rollcall::domain::policy::TrackingOverrides;
use rollcall::tracker::watch::Deadlines;
use serde_json::json;

use crate::support::{Sim, annotated, job, workload};

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
