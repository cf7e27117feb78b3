//! Container logs reach the events even when the container finishes just before the verdict.

use std::time::Duration;

use chrono::Utc;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, LogParams};
use kubesim::store::JOBS;
use rollcall::domain::policy::TrackingOverrides;
use rollcall::tracker::watch::{LogLimits, TrackOptions};

use crate::support::{NAMESPACE, Outcome, SAFETY_TIMEOUT, Sim, job};

/// Writes four lines within 30ms (at this time scale) and exits.
const QUICK: &str = "exitAfter=300ms;log=quick job line;logEvery=100ms";

/// The lines the Job's pod wrote, as `kubectl logs` reads them.
async fn pod_log(sim: &Sim, name: &str) -> Vec<String> {
    let pods: Api<Pod> = Api::namespaced(sim.client.clone(), NAMESPACE);
    let listed = pods
        .list(&ListParams::default().labels(&format!("app={name}")))
        .await
        .expect("pods list");
    let pod = listed.items.first().expect("the Job has a pod");
    let log = pods
        .logs(
            pod.metadata.name.as_deref().expect("named"),
            &LogParams::default(),
        )
        .await
        .expect("the log reads");
    log.lines().map(str::to_owned).collect()
}

fn streamed(outcome: &Outcome) -> Vec<String> {
    outcome
        .of("container.log")
        .iter()
        .map(|event| event.message.clone())
        .collect()
}

#[tokio::test]
async fn a_job_that_completed_before_tracking_keeps_its_lines() {
    let sim = Sim::start().await;
    let since = Utc::now();
    let resources = sim.apply(&[job("quick", 0, QUICK)]).await.expect("applies");
    tokio::time::timeout(SAFETY_TIMEOUT, async {
        loop {
            let (jobs, _) = sim.cluster.store().list(&JOBS, Some(NAMESPACE));
            if jobs
                .iter()
                .any(|job| job["status"]["succeeded"].as_u64() == Some(1))
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the Job completes");
    let options = TrackOptions {
        since: Some(since),
        ..TrackOptions::default()
    };
    let outcome = sim
        .track(resources, &TrackingOverrides::default(), options, |_| {})
        .await;
    assert_eq!(outcome.result(), "succeeded", "{}", outcome.explain());
    let written = pod_log(&sim, "quick").await;
    assert!(written.len() >= 2, "the container wrote lines: {written:?}");
    assert_eq!(streamed(&outcome), written, "{}", outcome.explain());
    sim.shutdown().await;
}

#[tokio::test]
async fn a_job_that_finishes_at_once_keeps_its_lines_every_time() {
    let sim = Sim::start().await;
    for run in 0..5 {
        let name = format!("quick-{run}");
        let outcome = sim.deploy(&[job(&name, 0, QUICK)]).await;
        assert_eq!(outcome.result(), "succeeded", "{}", outcome.explain());
        let written = pod_log(&sim, &name).await;
        assert_eq!(
            streamed(&outcome),
            written,
            "run {run}: {}",
            outcome.explain()
        );
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn logs_beyond_the_cap_are_cut_and_the_cap_is_recorded() {
    let sim = Sim::start().await;
    let since = Utc::now();
    let chatty = "exitAfter=1s;log=chatty line;logEvery=50ms";
    let resources = sim
        .apply(&[job("chatty", 0, chatty)])
        .await
        .expect("applies");
    let options = TrackOptions {
        since: Some(since),
        logs: LogLimits {
            lines_per_container: 3,
            ..LogLimits::default()
        },
        ..TrackOptions::default()
    };
    let outcome = sim
        .track(resources, &TrackingOverrides::default(), options, |_| {})
        .await;
    assert_eq!(outcome.result(), "succeeded", "{}", outcome.explain());
    assert_eq!(streamed(&outcome).len(), 3, "{}", outcome.explain());
    let capped = outcome.of("log.capped");
    assert_eq!(capped.len(), 1, "{}", outcome.explain());
    assert_eq!(capped[0].data["cap"], "container");
    assert_eq!(capped[0].data["lines"], 3);
    assert_eq!(capped[0].data["container"], "app");
    let written = pod_log(&sim, "chatty").await;
    assert!(written.len() > 3, "the container wrote more: {written:?}");
    sim.shutdown().await;
}
