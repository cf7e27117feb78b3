//! Healthy rollouts of every workload kind, including the churn of a rolling update that must never
//! count as a failure (DESIGN §5.3).

use kubesim::store::EVENTS;
use serde_json::{Value, json};

use crate::scenarios::{Finished, HEALTHY, Setup, request, setup, setup_on};

/// Installs `chart` with `values`, then upgrades it to a new image (a rolling update); returns the
/// upgrade.
async fn rolling_update(setup: &Setup, chart: &str, values: Value) -> Finished {
    let first = setup.deploy(&request(chart, "app", values.clone())).await;
    assert_eq!(first.status(), "succeeded", "{}", first.explain());
    let mut updated = values;
    updated["image"] = json!("registry.example/app:2.0");
    setup.deploy(&request(chart, "app", updated)).await
}

/// Kubernetes Event reasons streamed as `k8s.event`.
fn k8s_event_reasons(finished: &Finished) -> Vec<&str> {
    finished
        .of("k8s.event")
        .iter()
        .filter_map(|event| event["data"]["reason"].as_str())
        .collect()
}

#[tokio::test]
async fn healthy_statefulset_succeeds_with_every_replica_ready() {
    let setup = setup().await;
    let finished = setup
        .deploy(&request(
            "statefulset",
            "db",
            json!({"replicas": 2, "behavior": "readyAfter=1s"}),
        ))
        .await;
    assert_eq!(finished.status(), "succeeded", "{}", finished.explain());
    finished.assert_in_order(&HEALTHY);
    let db = finished.resource("StatefulSet", "db");
    assert_eq!(
        (&db["state"], &db["ready"]),
        (&json!("ready"), &json!("2/2"))
    );
    assert_eq!(finished.resource("Service", "db")["state"], "ready");
    finished.assert_no_incident();
    setup.shutdown().await;
}

#[tokio::test]
async fn healthy_daemonset_succeeds_with_a_ready_pod_on_every_node() {
    let setup = setup().await;
    let finished = setup
        .deploy(&request(
            "daemonset",
            "agent",
            json!({"behavior": "readyAfter=1s"}),
        ))
        .await;
    assert_eq!(finished.status(), "succeeded", "{}", finished.explain());
    finished.assert_in_order(&HEALTHY);
    let nodes = setup.cluster.options().nodes;
    let agent = finished.resource("DaemonSet", "agent");
    assert_eq!(agent["state"], "ready");
    assert_eq!(agent["ready"], format!("{nodes}/{nodes}"));
    finished.assert_no_incident();
    setup.shutdown().await;
}

#[tokio::test]
async fn statefulset_update_through_a_recreated_failed_pod_on_1_29_succeeds() {
    let setup = setup_on("1.29".parse().expect("a supported version")).await;
    // Pods slow to get ready keep the rollout going well after tracking began.
    let finished = rolling_update(
        &setup,
        "statefulset",
        json!({"replicas": 3, "behavior": "readyAfter=6s"}),
    )
    .await;
    assert_eq!(finished.status(), "succeeded", "{}", finished.explain());
    // Emulating 1.29, the controller recreates the replaced pod that turned Failed while
    // terminating, and its delete of the already gone pod fails: churn, never a failure.
    let reasons = k8s_event_reasons(&finished);
    for expected in ["RecreatingFailedPod", "FailedDelete"] {
        assert!(
            reasons.contains(&expected),
            "{expected} is streamed: {}",
            finished.explain()
        );
    }
    finished.assert_in_order(&["phase:tracking", "resource.ready", "deploy.succeeded"]);
    finished.assert_no_incident();
    assert_eq!(finished.resource("StatefulSet", "db")["ready"], "3/3");
    setup.shutdown().await;
}

#[tokio::test]
async fn statefulset_update_on_the_default_version_succeeds() {
    let setup = setup().await;
    let finished = rolling_update(
        &setup,
        "statefulset",
        json!({"replicas": 3, "behavior": "readyAfter=1s"}),
    )
    .await;
    assert_eq!(finished.status(), "succeeded", "{}", finished.explain());
    assert_eq!(finished.deploy["revision"], 2);
    // From 1.31 the controller waits for the failed pod to go: nothing to recreate.
    assert!(
        !k8s_event_reasons(&finished).contains(&"FailedDelete"),
        "{}",
        finished.explain()
    );
    finished.assert_in_order(&["phase:tracking", "resource.ready", "deploy.succeeded"]);
    finished.assert_no_incident();
    setup.shutdown().await;
}

#[tokio::test]
async fn readiness_failing_while_old_pods_terminate_succeeds() {
    let setup = setup().await;
    let finished = rolling_update(
        &setup,
        "web",
        json!({
            "replicas": 2,
            "behavior": "readyAfter=15s;failReadinessWhileTerminating=true;terminationDelay=30s",
        }),
    )
    .await;
    assert_eq!(finished.status(), "succeeded", "{}", finished.explain());
    // While the new pods start, an old one drains unready: seen, streamed, and not counted.
    let draining_unready = finished.of("pod.status").into_iter().find(|event| {
        let pod = &event["data"];
        pod["terminating"] == true && pod["current_revision"] == false && pod["ready"] == "0/1"
    });
    let draining_seq = draining_unready
        .and_then(|event| event["seq"].as_u64())
        .unwrap_or_else(|| panic!("no draining unready pod: {}", finished.explain()));
    assert!(
        draining_seq < finished.first_seq("resource.ready", "Deployment", "web"),
        "{}",
        finished.explain()
    );
    let (events, _) = setup.cluster.store().list(&EVENTS, Some("default"));
    assert!(
        events.iter().any(|event| event["reason"] == "Unhealthy"
            && event["message"]
                .as_str()
                .is_some_and(|message| message.starts_with("Readiness probe failed"))),
        "the draining pods failed their readiness probes"
    );
    finished.assert_in_order(&["phase:tracking", "resource.ready", "deploy.succeeded"]);
    finished.assert_no_incident();
    setup.shutdown().await;
}
