//! DESIGN §8 scenarios end to end: real helm against kubesim, a real PostgreSQL, rollcall over HTTP,
//! asserting the final state, the verdict reason and the event sequence.

use kubesim::options::ClusterOptions;
use kubesim::{Cluster, ClusterHandle};
use serde_json::{Value, json};

use super::common::app::{TestApp, spawn_app_with};
use super::{event_sequence, events, wait_for_end, with_runner};

/// Simulated durations run this much faster.
const TIME_SCALE: f64 = 0.1;

struct Setup {
    app: TestApp,
    cluster: ClusterHandle,
    _home: tempfile::TempDir,
}

async fn setup() -> Setup {
    let home = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(ClusterOptions {
        time_scale: TIME_SCALE,
        ..ClusterOptions::default()
    })
    .await
    .expect("kubesim starts");
    let kubeconfig = home.path().join("kubeconfig");
    std::fs::write(&kubeconfig, cluster.kubeconfig_yaml()).unwrap();
    let app = spawn_app_with(|config| with_runner(config, Some(kubeconfig), home.path())).await;
    Setup {
        app,
        cluster,
        _home: home,
    }
}

impl Setup {
    async fn deploy(&self, release: &str, values: Value, extra: Value) -> (Value, Vec<Value>) {
        let mut body = json!({
            "release": release,
            "namespace": "default",
            "chart": {"path": "web"},
            "values": values,
            "timeout": "60s",
        });
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        let id = self.app.submit(&body).await;
        let deploy = wait_for_end(&self.app, id).await;
        let events = events(&self.app, id).await;
        (deploy, events)
    }

    async fn shutdown(self) {
        self.app.shutdown().await;
        self.cluster.shutdown().await;
    }
}

fn has_in_order(sequence: &[String], wanted: &[&str]) -> bool {
    let mut rest = sequence.iter();
    wanted
        .iter()
        .all(|want| rest.any(|have| have.as_str() == *want))
}

#[tokio::test]
async fn a_healthy_web_app_succeeds_with_its_resources_ready() {
    let setup = setup().await;
    let (deploy, events) = setup
        .deploy("shop", json!({"behavior": "readyAfter=1s"}), json!({}))
        .await;
    assert_eq!(deploy["status"], "succeeded", "{deploy}");
    assert_eq!(deploy["revision"], 1);
    let sequence = event_sequence(&events);
    assert!(
        has_in_order(
            &sequence,
            &[
                "deploy.queued",
                "deploy.started",
                "phase:rendering",
                "phase:upgrading",
                "phase:tracking",
                "resource.added",
                "resource.ready",
                "report",
                "deploy.succeeded"
            ]
        ),
        "{sequence:?}"
    );
    assert_eq!(sequence.last().unwrap(), "deploy.succeeded");
    let resources = deploy["resources"].as_array().unwrap();
    let web = resources
        .iter()
        .find(|r| r["kind"] == "Deployment")
        .expect("the Deployment's state");
    assert_eq!(web["state"], "ready", "{web}");
    setup.shutdown().await;
}

#[tokio::test]
async fn a_crash_loop_fails_and_is_rolled_back_to_the_previous_revision() {
    let setup = setup().await;
    let (first, _) = setup
        .deploy("shop", json!({"behavior": "readyAfter=1s"}), json!({}))
        .await;
    assert_eq!(first["status"], "succeeded", "{first}");
    let (deploy, events) = setup
        .deploy(
            "shop",
            json!({"behavior": "crashAfter=1s;exitCode=1"}),
            json!({"rollback_on_failure": true}),
        )
        .await;
    assert_eq!(deploy["status"], "failed", "{deploy}");
    assert_eq!(deploy["revision"], 2);
    assert_eq!(deploy["rolled_back_to"], 1);
    assert_eq!(deploy["verdict"]["resource"]["kind"], "Deployment");
    let sequence = event_sequence(&events);
    assert!(
        has_in_order(
            &sequence,
            &[
                "phase:tracking",
                "resource.failed",
                "report",
                "phase:rolling_back",
                "rollback.started",
                "report",
                "rollback.succeeded",
                "deploy.failed"
            ]
        ),
        "{sequence:?}"
    );
    setup.shutdown().await;
}

#[tokio::test]
async fn cancel_while_tracking_stops_and_leaves_the_release_deployed() {
    let setup = setup().await;
    let id = setup
        .app
        .submit(&json!({
            "release": "stuck",
            "namespace": "default",
            "chart": {"path": "web"},
            "values": {"behavior": "neverReady=true"},
            "timeout": "60s",
        }))
        .await;
    super::wait_for(&setup.app, id, "tracking", |d| d["phase"] == "tracking").await;
    let response = setup
        .app
        .post(&format!("/v1/deploys/{id}/cancel"), &setup.app.admin_token)
        .json(&json!({"reason": "not needed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let deploy = wait_for_end(&setup.app, id).await;
    assert_eq!(deploy["status"], "cancelled", "{deploy}");
    assert_eq!(deploy["cancel_reason"], "not needed");
    let sequence = event_sequence(&events(&setup.app, id).await);
    assert!(
        has_in_order(
            &sequence,
            &["phase:tracking", "deploy.cancelling", "deploy.cancelled"]
        ),
        "{sequence:?}"
    );
    // helm finished its upgrade before tracking began: nothing is left pending to repair.
    assert!(
        !sequence.iter().any(|kind| kind == "rollback.started"),
        "{sequence:?}"
    );
    setup.shutdown().await;
}
