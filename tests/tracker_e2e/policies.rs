//! Allowance arithmetic, fail modes and track-termination modes (DESIGN §5.4) on a live cluster.

use crate::support::{Sim, annotated, workload};

#[tokio::test]
async fn one_failed_start_within_the_allowance_succeeds() {
    let sim = Sim::start().await;
    let outcome = sim
        .deploy(&[workload(
            "Deployment",
            "web",
            1,
            "failFirstStarts=1;readyAfter=1s",
        )])
        .await;
    assert_eq!(outcome.result(), "succeeded", "{}", outcome.explain());
    let failures = outcome.of("resource.failure");
    assert_eq!(failures.len(), 1, "{}", outcome.explain());
    assert_eq!(failures[0].data["count"], 1);
    assert_eq!(failures[0].data["allowance"], 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn one_failed_start_without_allowance_fails() {
    let sim = Sim::start().await;
    let web = annotated(
        workload("Deployment", "web", 1, "failFirstStarts=1;readyAfter=1s"),
        "rollcall.dev/failures-allowed-per-replica",
        "0",
    );
    let outcome = sim.deploy(&[web]).await;
    assert_eq!(outcome.result(), "failed", "{}", outcome.explain());
    assert_eq!(outcome.of("resource.failure")[0].data["allowance"], 0);
    sim.shutdown().await;
}

#[tokio::test]
async fn hope_until_end_recovers_while_others_roll_out() {
    let sim = Sim::start().await;
    let flaky = annotated(
        annotated(
            workload("Deployment", "flaky", 1, "failFirstStarts=1;readyAfter=1s"),
            "werf.io/fail-mode",
            "HopeUntilEndOfDeployProcess",
        ),
        "werf.io/failures-allowed-per-replica",
        "0",
    );
    let slow = workload("Deployment", "slow", 1, "readyAfter=60s");
    let outcome = sim.deploy(&[flaky, slow]).await;
    assert_eq!(outcome.result(), "succeeded", "{}", outcome.explain());
    let failed: Vec<_> = outcome.of("resource.failed");
    assert_eq!(
        failed.len(),
        1,
        "flaky was failed before it recovered: {}",
        outcome.explain()
    );
    assert_eq!(
        outcome.of("resource.ready").len(),
        2,
        "{}",
        outcome.explain()
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn ignore_and_continue_reports_failures_as_warnings_and_succeeds() {
    let sim = Sim::start().await;
    let web = annotated(
        annotated(
            workload("Deployment", "web", 1, "failFirstStarts=2;readyAfter=1s"),
            "rollcall.dev/fail-mode",
            "IgnoreAndContinueDeployProcess",
        ),
        "rollcall.dev/failures-allowed-per-replica",
        "0",
    );
    let outcome = sim.deploy(&[web]).await;
    assert_eq!(outcome.result(), "succeeded", "{}", outcome.explain());
    let failures = outcome.of("resource.failure");
    assert!(failures.len() >= 2, "{}", outcome.explain());
    assert!(
        failures
            .iter()
            .all(|event| serde_json::to_value(event.level).expect("level") == "warning"),
        "{}",
        outcome.explain()
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn non_blocking_resource_is_not_waited_for() {
    let sim = Sim::start().await;
    let web = workload("Deployment", "web", 1, "readyAfter=1s");
    let worker = annotated(
        workload("Deployment", "worker", 1, "neverReady=true"),
        "rollcall.dev/track-termination-mode",
        "NonBlocking",
    );
    let outcome = sim.deploy(&[web, worker]).await;
    assert_eq!(outcome.result(), "succeeded", "{}", outcome.explain());
    let worker_state = outcome
        .report
        .resources
        .iter()
        .find(|resource| resource.resource.name == "worker")
        .map(|resource| resource.status.state);
    assert_ne!(worker_state, Some(rollcall::tracker::core::State::Ready));
    sim.shutdown().await;
}
