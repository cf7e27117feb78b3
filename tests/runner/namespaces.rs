//! `create_namespace`: helm creates a missing namespace when asked; without it a deploy to a
//! namespace that does not exist fails with a verdict naming it (kubesim refuses objects in a
//! missing namespace as an API server does).

use serde_json::{Value, json};

use super::common::app::spawn_app_with;
use super::{event_sequence, events, start_kubesim, wait_for_end, with_runner};

fn body(namespace: &str, create_namespace: Option<Value>) -> Value {
    let mut body = json!({
        "release": "shop",
        "namespace": namespace,
        "chart": {"path": "web"},
        "values": {"behavior": "readyAfter=1s"},
        "timeout": "60s",
    });
    if let Some(create) = create_namespace {
        body["create_namespace"] = create;
    }
    body
}

#[tokio::test]
async fn a_missing_namespace_is_created_only_when_asked() {
    let home = tempfile::tempdir().unwrap();
    let (cluster, kubeconfig) = start_kubesim(0.1, home.path()).await;
    let app = spawn_app_with(|config| with_runner(config, Some(kubeconfig), home.path())).await;

    let id = app.submit(&body("fresh-shop", Some(json!(true)))).await;
    let deploy = wait_for_end(&app, id).await;
    assert_eq!(deploy["status"], "succeeded", "{deploy}");
    assert_eq!(deploy["create_namespace"], true);
    let resources = deploy["resources"].as_array().unwrap();
    assert!(
        resources.iter().any(|r| r["kind"] == "Deployment"
            && r["namespace"] == "fresh-shop"
            && r["state"] == "ready"),
        "{deploy}"
    );

    let id = app.submit(&body("absent-shop", None)).await;
    let deploy = wait_for_end(&app, id).await;
    assert_eq!(deploy["status"], "failed", "{deploy}");
    assert_eq!(deploy["create_namespace"], false);
    assert_eq!(deploy["verdict"]["reason"], "NamespaceNotFound", "{deploy}");
    let message = deploy["verdict"]["message"].as_str().unwrap();
    assert!(message.contains("\"absent-shop\""), "{message}");
    let sequence = event_sequence(&events(&app, id).await);
    assert!(
        !sequence.iter().any(|kind| kind == "phase:tracking"),
        "{sequence:?}"
    );
    app.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test]
async fn create_namespace_must_be_a_boolean() {
    let home = tempfile::tempdir().unwrap();
    let app = spawn_app_with(|config| {
        with_runner(config, None, home.path());
        config.runner = None;
    })
    .await;
    let response = app
        .post("/v1/deploys", &app.admin_token)
        .json(&body("shop", Some(json!("yes"))))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let problem: Value = response.json().await.unwrap();
    assert!(matches!(status, 400 | 422), "{status}: {problem}");
    assert!(
        problem.to_string().contains("create_namespace"),
        "{problem}"
    );
    let listed: Value = app
        .get("/v1/deploys", &app.admin_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"], json!([]), "nothing is queued on a 4xx");
}
