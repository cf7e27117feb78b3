//! Watches, not polling (DESIGN §5.5): one watch per (namespace, kind) shared by every resource and by
//! concurrent deploys, and no periodic LIST; a deploy joining a watch that lags behind reads its
//! resources once itself, and is not misled by what the watch still holds.

use std::time::Duration;

use axum::http::StatusCode;
use chrono::Utc;
use rollcall::domain::policy::TrackingOverrides;
use rollcall::tracker::core::plan;
use rollcall::tracker::watch::{HubOptions, TrackOptions, Tracking, WatchHub, track};
use tokio_util::sync::CancellationToken;

use crate::support::{NAMESPACE, SAFETY_TIMEOUT, Sim, workload};

/// Tracks a manifest applied earlier.
fn start(sim: &Sim, manifest: &str) -> Tracking {
    let resources =
        plan(manifest, NAMESPACE, &TrackingOverrides::default()).expect("valid policies");
    track(
        &sim.hub,
        resources,
        TrackOptions::default(),
        CancellationToken::new(),
    )
}

/// Waits for the tracking's first `resource.status`: its watches have listed.
async fn first_status(tracking: &mut Tracking) {
    tokio::time::timeout(SAFETY_TIMEOUT, async {
        while let Some(event) = tracking.next_event().await {
            if event.kind.as_str() == "resource.status" {
                return;
            }
        }
        panic!("the tracking ended before any status");
    })
    .await
    .expect("a first status");
}

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
    let mut first = start(&sim, &first);
    first_status(&mut first).await;
    let second = start(&sim, &second);
    let (first, second) = tokio::time::timeout(SAFETY_TIMEOUT, async {
        tokio::join!(first.finish(), second.finish())
    })
    .await
    .expect("both deploys end");
    assert!(first.expect("first report").succeeded());
    assert!(second.expect("second report").succeeded());

    let counts = sim.cluster.request_counts();
    for resource in ["deployments.apps", "replicasets.apps", "pods", "events"] {
        // The second deploy joined the first one's watches: no list of its own.
        assert_eq!(
            counts.count("list", resource),
            1,
            "one list of {resource} for both deploys: {counts:?}"
        );
        assert_eq!(
            counts.count("watch", resource),
            1,
            "one watch of {resource} for both deploys: {counts:?}"
        );
    }
    assert_eq!(
        counts.count("get", "deployments.apps"),
        3,
        "one read of each tracked Deployment when its tracking starts: {counts:?}"
    );
    assert_eq!(
        sim.hub.active_watches(),
        0,
        "watches stop with their last deploy"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_deploy_joining_a_watch_that_lags_behind_sees_the_upgrade_not_the_rollout_before_it() {
    let sim = Sim::start().await;
    let web = |behavior: &str| [workload("Deployment", "web", 2, behavior)];
    let healthy = sim.deploy(&web("readyAfter=500ms")).await;
    assert_eq!(healthy.result(), "succeeded", "{}", healthy.explain());
    // Another deploy keeps the namespace's watches open...
    let stuck = sim
        .apply(&[workload("Deployment", "stuck", 1, "neverReady=true")])
        .await
        .expect("applies");
    let mut stuck = start(&sim, &stuck);
    first_status(&mut stuck).await;
    // ...and they stop following the cluster: every re-watch fails (lists still work).
    sim.cluster.fail_next(
        u32::MAX,
        StatusCode::INTERNAL_SERVER_ERROR,
        Some("watch=true"),
    );
    sim.cluster.drop_watches();

    let since = Utc::now();
    let upgrade = sim.apply(&web("crashAfter=500ms")).await.expect("applies");
    let options = TrackOptions {
        since: Some(since),
        ..TrackOptions::default()
    };
    // What the watches held is web fully rolled out at its previous version.
    let outcome = sim
        .track(upgrade, &TrackingOverrides::default(), options, |cluster| {
            cluster.clear_faults();
        })
        .await;
    assert_eq!(
        (outcome.result().as_str(), outcome.reason().as_str()),
        ("failed", "CrashLoopBackOff"),
        "{}",
        outcome.explain()
    );
    drop(stuck);
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

#[tokio::test]
async fn a_watch_lingering_after_its_last_deploy_serves_the_next_one_without_a_list() {
    let sim = Sim::start().await;
    let hub = WatchHub::new(
        sim.client.clone(),
        HubOptions {
            linger: Duration::from_millis(500),
            ..HubOptions::default()
        },
    );
    let manifest = sim
        .apply(&[workload("Deployment", "web", 1, "readyAfter=200ms")])
        .await
        .expect("applies");
    sim.cluster.reset_request_counts();
    for deploy in ["first", "second"] {
        let resources =
            plan(&manifest, NAMESPACE, &TrackingOverrides::default()).expect("valid policies");
        let tracking = track(
            &hub,
            resources,
            TrackOptions::default(),
            CancellationToken::new(),
        );
        let report = tokio::time::timeout(SAFETY_TIMEOUT, tracking.finish())
            .await
            .expect("the tracking ends")
            .expect("a report");
        assert!(report.succeeded(), "{deploy}: {:?}", report.outcome);
    }
    let counts = sim.cluster.request_counts();
    assert_eq!(
        counts.count("list", "deployments.apps"),
        1,
        "the second deploy found the watch still running: {counts:?}"
    );
    let stopped = tokio::time::timeout(SAFETY_TIMEOUT, async {
        while hub.active_watches() > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        stopped.is_ok(),
        "the watches stop once the linger has passed"
    );
    hub.shutdown().await;
    sim.shutdown().await;
}
