//! Leases and sharing work through the database: take-over of expired leases, renewal, two
//! processes on one database running a release one deploy at a time.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rollcall::domain::deploy::{DeployStatus, Phase};
use rollcall::store;
use serde_json::{Value, json};
use uuid::Uuid;

use super::common::app::{TestApp, spawn_app_on, spawn_app_with};
use super::common::postgres::fresh_database;
use super::{events, insert_deploy, kubeconfig, refusing_server, wait_for_end, with_runner};

/// Marks a queued deploy as started by `owner` with a lease until `until`, in `phase`, as a process
/// that then died would have left it.
async fn start_as(app: &TestApp, id: Uuid, owner: &str, until: DateTime<Utc>, phase: Phase) {
    let events = &app.state.events;
    let mut tx = events.begin().await.unwrap();
    store::deploys::start(&mut tx, id, owner, until)
        .await
        .unwrap();
    store::deploys::set_phase(&mut tx, id, phase).await.unwrap();
    events.commit(tx).await.unwrap();
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_and_the_deploy_reaches_a_verdict() {
    let home = tempfile::tempdir().unwrap();
    let database_url = fresh_database().await;
    let submitter = spawn_app_on(&database_url, |_| {}).await;
    let id = submitter
        .submit(&json!({"release": "api", "namespace": "prod", "chart": {"path": "web"}}))
        .await;
    start_as(
        &submitter,
        id,
        "dead-process",
        Utc::now() - chrono::Duration::seconds(5),
        Phase::Rendering,
    )
    .await;

    let kubeconfig = kubeconfig(home.path(), &refusing_server());
    let runner = spawn_app_on(&database_url, |config| {
        with_runner(config, Some(kubeconfig), home.path())
    })
    .await;
    let deploy = wait_for_end(&runner, id).await;
    assert_eq!(deploy["status"], "failed", "{deploy}");
    // Run again by the new owner: helm could not reach the (refusing) cluster.
    assert_eq!(deploy["verdict"]["reason"], "KubernetesApiError");
    let events = events(&runner, id).await;
    let recovered = events
        .iter()
        .find(|e| e["type"] == "deploy.recovered")
        .expect("a deploy.recovered event");
    assert_eq!(recovered["data"]["previous_owner"], "dead-process");
    let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=events.len() as i64).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_live_lease_is_left_alone_and_only_its_owner_renews_it() {
    let home = tempfile::tempdir().unwrap();
    let kubeconfig = kubeconfig(home.path(), &refusing_server());
    let app = spawn_app_with(|config| with_runner(config, Some(kubeconfig), home.path())).await;
    // Not claimable by the runner: started by another (live) owner right away.
    let database_url = app.database_url.clone();
    let other = spawn_app_on(&database_url, |_| {}).await;
    let body = json!({"release": "held", "namespace": "prod", "chart": {"path": "web"}});
    let mut tx = other.state.events.begin().await.unwrap();
    let id = insert_deploy(&mut tx, body).await;
    let until = Utc::now() + chrono::Duration::minutes(5);
    store::deploys::start(&mut tx, id, "live-owner", until)
        .await
        .unwrap();
    other.state.events.commit(tx).await.unwrap();

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let deploy = app.deploy(id).await;
    assert_eq!(deploy["status"], "running");
    assert_eq!(deploy["lease_owner"], "live-owner");

    let pool = app.state.events.pool();
    let later = Utc::now() + chrono::Duration::minutes(10);
    assert_eq!(
        store::deploys::renew_lease(pool, id, "someone-else", later)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store::deploys::renew_lease(pool, id, "live-owner", later)
            .await
            .unwrap(),
        Some(DeployStatus::Running)
    );
}

fn timestamp(deploy: &Value, field: &str) -> DateTime<Utc> {
    deploy[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} missing: {deploy}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn two_processes_run_one_release_one_deploy_at_a_time_in_fifo_order() {
    let home = tempfile::tempdir().unwrap();
    let database_url = fresh_database().await;
    let kubeconfig = kubeconfig(home.path(), &refusing_server());
    let first = spawn_app_on(&database_url, |config| {
        with_runner(config, Some(kubeconfig.clone()), home.path())
    })
    .await;
    let second = spawn_app_on(&database_url, |config| {
        with_runner(config, Some(kubeconfig.clone()), home.path())
    })
    .await;
    let mut ids = Vec::new();
    for (index, app) in [&first, &second, &first, &second].into_iter().enumerate() {
        ids.push(
            app.submit(&json!({
                "release": "shop",
                "namespace": "prod",
                "chart": {"path": "web"},
                "labels": {"n": index.to_string()}
            }))
            .await,
        );
    }
    let mut runs = Vec::new();
    for id in &ids {
        let deploy = wait_for_end(&first, *id).await;
        assert_eq!(
            deploy["verdict"]["reason"], "KubernetesApiError",
            "{deploy}"
        );
        // Event times are taken when each step happens (the columns hold transaction start times).
        let events = events(&first, *id).await;
        let at = |kind: &str| {
            let event = events
                .iter()
                .find(|e| e["type"] == kind)
                .unwrap_or_else(|| panic!("no {kind} event"));
            timestamp(event, "at")
        };
        runs.push((at("deploy.started"), at("deploy.failed")));
    }
    // In submission order, each starts only after the previous one finished: fifo, no overlap.
    for pair in runs.windows(2) {
        assert!(
            pair[1].0 >= pair[0].1,
            "deploys of one release overlapped: {runs:?}"
        );
    }
    drop(second);
}
