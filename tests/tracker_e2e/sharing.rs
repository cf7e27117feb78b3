//! Watches, not polling (DESIGN §5.5): one watch per (namespace, kind) shared by every resource and by
//! concurrent deploys, and no periodic LIST.

use rollcall::domain::policy::TrackingOverrides;
use rollcall::tracker::core::plan;
use rollcall::tracker::watch::{TrackOptions, track};
use tokio_util::sync::CancellationToken;

use crate::support::{NAMESPACE, SAFETY_TIMEOUT, Sim, workload};

#[tokio::test]
async fn concurrent_deploys_share_one_watch_per_kind() {
    let sim = Sim::start().await;
    let first = sim
        .apply(&[
            workload("Deployment", "web", 1, "readyAfter=2s"),
            workload("Deployment", "api", 1, "readyAfter=2s"),
        ])
        .await
        .expect("first release applies");
    let second = sim
        .apply(&[workload("Deployment", "worker", 2, "readyAfter=2s")])
        .await
        .expect("second release applies");
    sim.cluster.reset_request_counts();
    let start = |manifest: String| {
        let resources =
            plan(&manifest, NAMESPACE, &TrackingOverrides::default()).expect("valid policies");
        track(
            &sim.hub,
            resources,
            TrackOptions::default(),
            CancellationToken::new(),
        )
    };
    let (first, second) = (start(first), start(second));
    let (first, second) = tokio::time::timeout(SAFETY_TIMEOUT, async {
        tokio::join!(first.finish(), second.finish())
    })
    .await
    .expect("both deploys end");
    assert!(first.expect("first report").succeeded());
    assert!(second.expect("second report").succeeded());

    let counts = sim.cluster.request_counts();
    for resource in ["deployments.apps", "replicasets.apps", "pods", "events"] {
        assert_eq!(
            counts.count("list", resource),
            1,
            "one list of {resource}: {counts:?}"
        );
        assert_eq!(
            counts.count("watch", resource),
            1,
            "one watch of {resource}: {counts:?}"
        );
    }
    assert_eq!(
        sim.hub.active_watches(),
        0,
        "watches stop with their last deploy"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn dropping_a_tracking_stops_it_and_its_watches() {
    let sim = Sim::start().await;
    let manifest = sim
        .apply(&[workload("Deployment", "stuck", 1, "neverReady=true")])
        .await
        .expect("applies");
    let resources =
        plan(&manifest, NAMESPACE, &TrackingOverrides::default()).expect("valid policies");
    let tracking = track(
        &sim.hub,
        resources,
        TrackOptions::default(),
        CancellationToken::new(),
    );
    let hub = &sim.hub;
    let watches_are = |running: bool| async move {
        tokio::time::timeout(SAFETY_TIMEOUT, async {
            while (hub.active_watches() > 0) != running {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        })
        .await
        .is_ok()
    };
    assert!(watches_are(true).await, "the tracking watches");
    drop(tracking);
    assert!(watches_are(false).await, "its watches stop with it");
    tokio::time::timeout(SAFETY_TIMEOUT, sim.shutdown())
        .await
        .expect("the hub's tasks have ended");
}
