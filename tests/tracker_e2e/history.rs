//! Kubernetes Events of an earlier deploy are history, even within the same second (Event
//! timestamps have whole seconds).

use std::time::Duration;

use chrono::{Timelike, Utc};
use serde_json::json;

use crate::support::{Sim, workload};

#[tokio::test]
async fn the_previous_deploys_events_do_not_leak_into_the_next() {
    let sim = Sim::start().await;
    // Both deploys within one second, so that their Events share timestamps.
    let into_second = Duration::from_nanos(u64::from(Utc::now().nanosecond() % 1_000_000_000));
    tokio::time::sleep(Duration::from_secs(1).saturating_sub(into_second)).await;
    let first = sim
        .deploy(&[workload("Deployment", "web", 1, "readyAfter=0s")])
        .await;
    assert_eq!(first.result(), "succeeded", "{}", first.explain());
    let mut second = workload("Deployment", "web", 1, "readyAfter=0s");
    second["spec"]["template"]["spec"]["containers"][0]["image"] = json!("example.com/web:2");
    let outcome = sim.deploy(&[second]).await;
    assert_eq!(outcome.result(), "succeeded", "{}", outcome.explain());
    let first_events: Vec<&serde_json::Value> = first
        .of("k8s.event")
        .iter()
        .map(|event| &event.data)
        .collect();
    let leaked: Vec<&serde_json::Value> = outcome
        .of("k8s.event")
        .iter()
        .map(|event| &event.data)
        .filter(|event| first_events.contains(event))
        .collect();
    assert!(
        leaked.is_empty(),
        "the first deploy's Events are not the second's: {leaked:?}"
    );
    sim.shutdown().await;
}
