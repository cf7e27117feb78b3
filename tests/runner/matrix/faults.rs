//! Errors of rollcall's own API calls are never a verdict (DESIGN §5.3): watches dropped and
//! history compacted (410) mid-tracking, and the deploy still succeeds.

use kubesim::store::CONFIGMAPS;
use serde_json::json;

use crate::scenarios::{request, setup};

#[tokio::test]
async fn dropped_watches_and_410_during_tracking_keep_a_healthy_verdict() {
    let setup = setup().await;
    // Held until the faults are in: the rollout cannot end before them, however late the SSE
    // client hears of tracking.
    setup.cluster.controllers().pause();
    let id = setup
        .app
        .submit(&request(
            "web",
            "shop",
            json!({"replicas": 2, "behavior": "readyAfter=2s"}),
        ))
        .await;
    let mut injected = false;
    let finished = setup
        .follow(id, |event| {
            if injected || event["type"] != "resource.status" {
                return;
            }
            injected = true;
            // All at once, before any watch can resume (the test runtime has one thread): every
            // watch ends, a change moves the history past every resourceVersion seen, and the
            // history is forgotten. Each watch resumes from a version that is gone (410).
            let cluster = &setup.cluster;
            cluster.reset_request_counts();
            cluster.drop_watches();
            cluster
                .store()
                .create(
                    &CONFIGMAPS,
                    json!({"metadata": {"name": "unrelated", "namespace": "default"}}),
                )
                .expect("a change");
            cluster.compact();
            cluster.controllers().resume();
        })
        .await;
    assert!(injected, "faults were injected while tracking");
    assert_eq!(finished.status(), "succeeded", "{}", finished.explain());
    finished.assert_no_incident();
    finished.assert_in_order(&[
        "phase:tracking",
        "resource.status",
        "resource.ready",
        "deploy.succeeded",
    ]);
    assert_eq!(finished.resource("Deployment", "web")["ready"], "2/2");
    let relists = setup.cluster.request_counts().by_verb.get("list").copied();
    assert!(
        relists.unwrap_or(0) > 0,
        "each 410 made a watch re-list: {:?}",
        setup.cluster.request_counts()
    );
    setup.shutdown().await;
}
