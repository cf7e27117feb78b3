//! Failing rollouts fail for the right reason, naming the resource, with the evidence in the report.

use serde_json::json;

use crate::scenarios::{Finished, request, setup};

/// Events of a deploy whose tracking failed, in order.
const FAILED: [&str; 6] = [
    "deploy.started",
    "phase:tracking",
    "resource.added",
    "resource.failed",
    "report",
    "deploy.failed",
];

/// The verdict names the Deployment `web`, and the report carries its failure.
fn assert_web_failed(finished: &Finished, reason: &str) {
    assert_eq!(finished.status(), "failed", "{}", finished.explain());
    assert_eq!(finished.verdict_reason(), reason, "{}", finished.explain());
    let resource = &finished.deploy["verdict"]["resource"];
    assert_eq!(
        (&resource["kind"], &resource["name"]),
        (&json!("Deployment"), &json!("web"))
    );
    assert_eq!(finished.resource("Deployment", "web")["state"], "failed");
    finished.assert_in_order(&FAILED);
    assert_eq!(finished.report()["outcome"]["result"], "failed");
}

/// The failure recorded in the report for the Deployment (`web`).
fn web_failure(finished: &Finished) -> &serde_json::Value {
    finished.report()["resources"]
        .as_array()
        .and_then(|resources| {
            resources
                .iter()
                .find(|resource| resource["resource"]["kind"] == "Deployment")
        })
        .map(|web| &web["failure"])
        .unwrap_or_else(|| panic!("no report of web: {}", finished.explain()))
}

#[tokio::test]
async fn image_pull_failure_fails_with_the_pull_error_as_evidence() {
    let setup = setup().await;
    let finished = setup
        .deploy(&request(
            "web",
            "shop",
            json!({"replicas": 1, "behavior": "imagePull=fail"}),
        ))
        .await;
    let reason = finished.verdict_reason().to_owned();
    assert!(
        ["ErrImagePull", "ImagePullBackOff"].contains(&reason.as_str()),
        "{}",
        finished.explain()
    );
    assert_web_failed(&finished, &reason);
    let failure = web_failure(&finished);
    assert_eq!(failure["reason"], reason.as_str(), "{failure}");
    assert_eq!(failure["evidence"]["container"], "web", "{failure}");
    assert!(
        failure["evidence"]["pod"]
            .as_str()
            .is_some_and(|pod| pod.starts_with("web-")),
        "{failure}"
    );
    let pull_events = failure["evidence"]["events"].to_string();
    assert!(
        pull_events.contains("Failed to pull image"),
        "the kubelet's events are evidence: {failure}"
    );
    setup.shutdown().await;
}

#[tokio::test]
async fn progress_deadline_exceeded_fails_at_once() {
    let setup = setup().await;
    let finished = setup
        .deploy(&request(
            "web",
            "shop",
            json!({"replicas": 1, "behavior": "neverReady=true", "progressDeadlineSeconds": 10}),
        ))
        .await;
    assert_web_failed(&finished, "ProgressDeadlineExceeded");
    assert_eq!(
        web_failure(&finished)["kind"],
        "terminal",
        "{}",
        finished.explain()
    );
    // Terminal at once: no allowance consumed before the verdict.
    assert!(
        finished.of("resource.failure").is_empty(),
        "{}",
        finished.explain()
    );
    setup.shutdown().await;
}

#[tokio::test]
async fn readiness_never_true_fails_on_the_no_activity_timeout() {
    let setup = setup().await;
    let mut body = request(
        "web",
        "shop",
        json!({"replicas": 1, "behavior": "neverReady=true"}),
    );
    body["tracking"] = json!({"defaults": {"no_activity_timeout": "2s"}});
    let finished = setup.deploy(&body).await;
    assert_web_failed(&finished, "NoActivityTimeout");
    assert_eq!(
        web_failure(&finished)["evidence"]["container"],
        "web",
        "the container that never became ready is named: {}",
        finished.explain()
    );
    setup.shutdown().await;
}
