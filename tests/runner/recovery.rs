//! A deploy whose process died while rolling back is taken over and its rollback finished: helm
//! rollback to the recorded target (not the newest deployed revision, which is the failed one)
//! unless it had completed, then tracking; the deploy ends `failed` with the recorded failure and
//! `rolled_back_to` set, as an uninterrupted rollback would.

use std::path::Path;

use chrono::Utc;
use rollcall::domain::deploy::Phase;
use rollcall::domain::verdict::{Verdict, VerdictReason};
use rollcall::store;
use serde_json::{Value, json};
use uuid::Uuid;

use super::common::app::{TestApp, spawn_app_with};
use super::{
    event_sequence, events, helm_bin, insert_deploy, start_kubesim, wait_for_end, with_runner,
};

fn web(values: Value) -> Value {
    json!({
        "release": "shop",
        "namespace": "default",
        "chart": {"path": "web"},
        "values": values,
        "timeout": "60s",
    })
}

/// Runs helm against the simulated cluster (served by this test's runtime: never block it);
/// returns its stdout.
async fn helm(kubeconfig: &Path, home: &Path, args: &[&str]) -> String {
    let output = tokio::process::Command::new(helm_bin())
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("HELM_CACHE_HOME", home.join("test-helm/cache"))
        .env("HELM_CONFIG_HOME", home.join("test-helm/config"))
        .env("HELM_DATA_HOME", home.join("test-helm/data"))
        .output()
        .await
        .expect("run helm");
    assert!(
        output.status.success(),
        "helm {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

async fn history(kubeconfig: &Path, home: &Path) -> Vec<Value> {
    let args = [
        "history",
        "shop",
        "--namespace",
        "default",
        "--output",
        "json",
    ];
    serde_json::from_str(&helm(kubeconfig, home, &args).await).expect("helm history JSON")
}

/// A deploy of revision 2 that failed and whose process died in phase `rolling_back`, having
/// recorded the failure and the rollback target (revision 1); its lease has expired.
async fn insert_interrupted_rollback(app: &TestApp, failure: &Verdict) -> Uuid {
    let events = &app.state.events;
    let mut tx = events.begin().await.unwrap();
    let id = insert_deploy(&mut tx, web(json!({"behavior": "crashAfter=1s"}))).await;
    let expired = Utc::now() - chrono::Duration::seconds(5);
    store::deploys::start(&mut tx, id, "dead-process", expired)
        .await
        .unwrap();
    store::deploys::set_phase(&mut tx, id, Phase::RollingBack)
        .await
        .unwrap();
    store::deploys::set_failure(&mut tx, id, failure)
        .await
        .unwrap();
    // In the same transaction: the runner takes the deploy over as soon as it is committed.
    sqlx::query("update deploys set revision = 2, rollback_target = 1 where id = $1")
        .bind(id)
        .execute(tx.conn())
        .await
        .unwrap();
    events.commit(tx).await.unwrap();
    id
}

/// Revision 1 healthy, revision 2 crash looping (its deploy failed without a rollback); then the
/// interrupted rollback of revision 2 resumed by the runner, after helm rolled back itself when
/// `rolled_back_before` (the process died after helm rollback, before tracking).
async fn resume_after(rolled_back_before: bool) -> (Value, Vec<String>, Vec<Value>) {
    let home = tempfile::tempdir().unwrap();
    let (cluster, kubeconfig) = start_kubesim(0.1, home.path()).await;
    let app =
        spawn_app_with(|config| with_runner(config, Some(kubeconfig.clone()), home.path())).await;
    let healthy = app.submit(&web(json!({"behavior": "readyAfter=1s"}))).await;
    assert_eq!(wait_for_end(&app, healthy).await["status"], "succeeded");
    let crashing = app
        .submit(&web(json!({"behavior": "crashAfter=1s;exitCode=1"})))
        .await;
    let crashed = wait_for_end(&app, crashing).await;
    assert_eq!(crashed["status"], "failed", "{crashed}");
    assert_eq!(crashed["revision"], 2);

    if rolled_back_before {
        let args = ["rollback", "shop", "1", "--namespace", "default"];
        helm(&kubeconfig, home.path(), &args).await;
    }
    let failure = Verdict::new(
        VerdictReason::CrashLoopBackOff,
        "recorded before the process died",
    );
    let id = insert_interrupted_rollback(&app, &failure).await;
    let deploy = wait_for_end(&app, id).await;
    let sequence = event_sequence(&events(&app, id).await);
    let history = history(&kubeconfig, home.path()).await;
    app.shutdown().await;
    cluster.shutdown().await;
    (deploy, sequence, history)
}

fn assert_failed_and_rolled_back(deploy: &Value) {
    assert_eq!(deploy["status"], "failed", "{deploy}");
    assert_eq!(deploy["verdict"]["reason"], "CrashLoopBackOff", "{deploy}");
    assert_eq!(
        deploy["verdict"]["message"],
        "recorded before the process died"
    );
    assert_eq!(deploy["revision"], 2);
    assert_eq!(deploy["rolled_back_to"], 1, "{deploy}");
}

#[tokio::test]
async fn a_rollback_that_never_ran_is_run_to_the_recorded_target_and_tracked() {
    let (deploy, sequence, history) = resume_after(false).await;
    assert_failed_and_rolled_back(&deploy);
    assert_eq!(
        sequence
            .iter()
            .filter(|kind| [
                "deploy.recovered",
                "rollback.started",
                "rollback.succeeded",
                "report",
                "deploy.failed"
            ]
            .contains(&kind.as_str()))
            .collect::<Vec<_>>(),
        [
            "deploy.recovered",
            "rollback.started",
            "report",
            "rollback.succeeded",
            "deploy.failed"
        ],
        "{sequence:?}"
    );
    let newest = history.last().unwrap();
    assert_eq!(newest["revision"], 3, "{history:?}");
    assert_eq!(newest["description"], "Rollback to 1");
}

#[tokio::test]
async fn a_rollback_that_had_completed_is_tracked_without_running_it_again() {
    let (deploy, sequence, history) = resume_after(true).await;
    assert_failed_and_rolled_back(&deploy);
    assert!(
        !sequence.iter().any(|kind| kind == "rollback.started"),
        "{sequence:?}"
    );
    assert!(
        sequence.iter().any(|kind| kind == "rollback.succeeded"),
        "{sequence:?}"
    );
    assert_eq!(history.len(), 3, "no second rollback: {history:?}");
}

/// The web app behind a migration Job that helm waits for before an install, upgrade or rollback
/// (30 simulated seconds, 3 at this time scale).
fn migrating_web(behavior: &str, rollback_on_failure: bool) -> Value {
    json!({
        "release": "shop",
        "namespace": "default",
        "chart": {"path": "migrating-web"},
        "values": {"web": {"behavior": behavior}, "migration": {"behavior": "exitAfter=30s"}},
        "timeout": "90s",
        "rollback_on_failure": rollback_on_failure,
    })
}

#[tokio::test]
async fn a_cancel_while_helm_rolls_back_repairs_to_the_recorded_target_not_the_failed_revision() {
    let home = tempfile::tempdir().unwrap();
    let (cluster, kubeconfig) = start_kubesim(0.1, home.path()).await;
    let app =
        spawn_app_with(|config| with_runner(config, Some(kubeconfig.clone()), home.path())).await;
    let healthy = app.submit(&migrating_web("readyAfter=1s", false)).await;
    assert_eq!(wait_for_end(&app, healthy).await["status"], "succeeded");
    let crashing = app
        .submit(&migrating_web("crashAfter=1s;exitCode=1", true))
        .await;
    super::wait_for(&app, crashing, "rolling back", |d| {
        d["phase"] == "rolling_back"
    })
    .await;
    // helm waits for the migration before rolling back: the release is pending-rollback, and
    // revision 2 (the failed one) is still marked deployed.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let status: Value = serde_json::from_str(
            &helm(
                &kubeconfig,
                home.path(),
                &[
                    "status",
                    "shop",
                    "--namespace",
                    "default",
                    "--output",
                    "json",
                ],
            )
            .await,
        )
        .unwrap();
        if status["info"]["status"] == "pending-rollback" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never pending-rollback: {status}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let response = app
        .post(&format!("/v1/deploys/{crashing}/cancel"), &app.admin_token)
        .json(&json!({"reason": "stop the rollback"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let deploy = wait_for_end(&app, crashing).await;
    assert_eq!(deploy["status"], "cancelled", "{deploy}");
    assert_eq!(deploy["rolled_back_to"], 1, "{deploy}");
    let history = history(&kubeconfig, home.path()).await;
    let newest = history.last().unwrap();
    assert_eq!(newest["description"], "Rollback to 1", "{history:?}");
    assert_eq!(newest["status"], "deployed", "{history:?}");
    app.shutdown().await;
    cluster.shutdown().await;
}
