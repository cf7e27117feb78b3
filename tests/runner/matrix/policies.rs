//! Tracking policy (DESIGN §5.4) decides the verdict: fail modes, track-termination modes and the
//! failure allowance (per replica × replicas).

use serde_json::{Value, json};

use crate::scenarios::{Finished, request, setup};

/// A container whose first `starts` starts exit with code 1 before they are ready; the next one
/// becomes ready. Each start waits a moment, so that the rollout ends well after tracking began.
fn fails_first(starts: u32) -> String {
    format!("failFirstStarts={starts};startDelay=10s")
}

/// One Deployment of the `fleet` chart.
fn deployment(name: &str, replicas: u32, behavior: &str, annotations: Value) -> Value {
    json!({"name": name, "replicas": replicas, "behavior": behavior, "annotations": annotations})
}

fn levels(events: &[&Value]) -> Vec<String> {
    events
        .iter()
        .map(|event| event["level"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// `(count, allowance)` of each `resource.failure` incident, in order.
fn incidents(finished: &Finished) -> Vec<(u64, u64)> {
    finished
        .of("resource.failure")
        .iter()
        .map(|event| {
            let number = |key: &str| event["data"][key].as_u64().expect("count and allowance");
            (number("count"), number("allowance"))
        })
        .collect()
}

#[tokio::test]
async fn hope_until_end_recovers_while_another_resource_still_rolls_out() {
    let setup = setup().await;
    // flaky fails once, past its allowance, and recovers while slow is still starting.
    let flaky = deployment(
        "flaky",
        1,
        &fails_first(1),
        json!({
            "werf.io/fail-mode": "HopeUntilEndOfDeployProcess",
            "werf.io/failures-allowed-per-replica": "0",
        }),
    );
    let slow = deployment("slow", 1, "readyAfter=40s", json!({}));
    let finished = setup
        .deploy(&request(
            "fleet",
            "pair",
            json!({"deployments": [flaky, slow]}),
        ))
        .await;
    assert_eq!(finished.status(), "succeeded", "{}", finished.explain());
    // flaky is failed past its allowance, recovers, and slow is ready last.
    let seq = |kind: &str, name: &str| finished.first_seq(kind, "Deployment", name);
    assert!(
        seq("resource.failed", "flaky") < seq("resource.ready", "flaky")
            && seq("resource.ready", "flaky") < seq("resource.ready", "slow"),
        "{}",
        finished.explain()
    );
    assert_eq!(finished.resource("Deployment", "flaky")["state"], "ready");
    assert_eq!(finished.resource("Deployment", "slow")["state"], "ready");
    finished.assert_in_order(&[
        "phase:tracking",
        "resource.failed",
        "report",
        "deploy.succeeded",
    ]);
    setup.shutdown().await;
}

#[tokio::test]
async fn ignore_and_continue_reports_incidents_as_warnings_and_waits_for_readiness() {
    let setup = setup().await;
    let web = deployment(
        "web",
        1,
        &fails_first(2),
        json!({
            "rollcall.dev/fail-mode": "IgnoreAndContinueDeployProcess",
            "rollcall.dev/failures-allowed-per-replica": "0",
        }),
    );
    let finished = setup
        .deploy(&request("fleet", "shop", json!({"deployments": [web]})))
        .await;
    assert_eq!(finished.status(), "succeeded", "{}", finished.explain());
    let failures = finished.of("resource.failure");
    assert_eq!(
        levels(&failures),
        ["warning", "warning"],
        "both failed starts are warnings: {}",
        finished.explain()
    );
    assert!(
        finished.of("resource.failed").is_empty(),
        "{}",
        finished.explain()
    );
    finished.assert_in_order(&[
        "phase:tracking",
        "resource.failure",
        "resource.failure",
        "resource.ready",
        "deploy.succeeded",
    ]);
    setup.shutdown().await;
}

#[tokio::test]
async fn non_blocking_resource_is_not_waited_for() {
    let setup = setup().await;
    let web = deployment("web", 1, "readyAfter=1s", json!({}));
    let worker = deployment(
        "worker",
        1,
        "neverReady=true",
        json!({"werf.io/track-termination-mode": "NonBlocking"}),
    );
    let finished = setup
        .deploy(&request(
            "fleet",
            "shop",
            json!({"deployments": [web, worker]}),
        ))
        .await;
    assert_eq!(finished.status(), "succeeded", "{}", finished.explain());
    assert!(
        finished
            .of_resource("resource.ready", "Deployment", "worker")
            .is_empty(),
        "worker never became ready: {}",
        finished.explain()
    );
    assert_ne!(finished.resource("Deployment", "worker")["state"], "ready");
    assert_eq!(finished.resource("Deployment", "web")["state"], "ready");
    setup.shutdown().await;
}

#[tokio::test]
async fn one_failed_start_within_the_default_allowance_succeeds() {
    let setup = setup().await;
    let finished = setup
        .deploy(&request(
            "web",
            "shop",
            json!({"replicas": 1, "behavior": fails_first(1)}),
        ))
        .await;
    assert_eq!(finished.status(), "succeeded", "{}", finished.explain());
    assert_eq!(incidents(&finished), [(1, 1)], "{}", finished.explain());
    finished.assert_in_order(&["resource.failure", "resource.ready", "deploy.succeeded"]);
    assert_eq!(
        finished.resource("Deployment", "web")["failures"],
        "1/1 allowed"
    );
    setup.shutdown().await;
}

#[tokio::test]
async fn one_failed_start_without_allowance_fails() {
    let setup = setup().await;
    let finished = setup
        .deploy(&request(
            "web",
            "shop",
            json!({
                "replicas": 1,
                "behavior": fails_first(1),
                "annotations": {"werf.io/failures-allowed-per-replica": "0"},
            }),
        ))
        .await;
    assert_eq!(finished.status(), "failed", "{}", finished.explain());
    assert_eq!(incidents(&finished), [(1, 0)], "{}", finished.explain());
    assert_eq!(finished.deploy["verdict"]["resource"]["name"], "web");
    finished.assert_in_order(&[
        "resource.failure",
        "resource.failed",
        "report",
        "deploy.failed",
    ]);
    setup.shutdown().await;
}

#[tokio::test]
async fn the_allowance_is_per_replica_times_replicas() {
    let setup = setup().await;
    // One failed start per pod: three incidents, within 1 × 3.
    let finished = setup
        .deploy(&request(
            "web",
            "shop",
            json!({"replicas": 3, "behavior": fails_first(1)}),
        ))
        .await;
    assert_eq!(finished.status(), "succeeded", "{}", finished.explain());
    assert_eq!(
        incidents(&finished),
        [(1, 3), (2, 3), (3, 3)],
        "{}",
        finished.explain()
    );
    assert_eq!(finished.resource("Deployment", "web")["ready"], "3/3");
    setup.shutdown().await;
}
