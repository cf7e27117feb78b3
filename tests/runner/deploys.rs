//! Deploys through `POST /v1/deploys` that helm decides: dry runs, rendering and policy failures,
//! an unreachable cluster, cancellation while helm runs.

use std::time::Duration;

use kubesim::store::{DEPLOYMENTS, SECRETS};
use serde_json::{Value, json};

use super::common::app::{TestApp, spawn_app_on, spawn_app_with};
use super::{
    event_sequence, events, kubeconfig, refusing_server, start_kubesim, wait_for, wait_for_end,
    with_runner,
};

const SECRET: &str = "s3cr3t-token-value";

async fn api_only_app(home: &std::path::Path) -> TestApp {
    spawn_app_with(|config| {
        with_runner(config, None, home);
        config.runner = None;
    })
    .await
}

async fn dry_run(app: &TestApp, body: &Value) -> (u16, Value) {
    let response = app
        .post("/v1/deploys?dry_run=true", &app.admin_token)
        .json(body)
        .send()
        .await
        .expect("POST dry run");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON answer"))
}

async fn deploy_count(app: &TestApp) -> usize {
    let page: Value = app
        .get("/v1/deploys", &app.admin_token)
        .send()
        .await
        .expect("GET /v1/deploys")
        .json()
        .await
        .expect("JSON page");
    page["items"].as_array().expect("items").len()
}

#[tokio::test]
async fn dry_run_renders_with_the_values_and_returns_effective_policies() {
    let home = tempfile::tempdir().unwrap();
    let app = api_only_app(home.path()).await;
    let (status, answer) = dry_run(
        &app,
        &json!({
            "release": "shop",
            "namespace": "prod",
            "chart": {"path": "web"},
            "values": {"name": "storefront"},
            "tracking": {"resources": [
                {"kind": "Deployment", "policy": {"fail_mode": "HopeUntilEndOfDeployProcess"}}
            ]}
        }),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let resources = answer["resources"].as_array().expect("resources");
    let names: Vec<(&str, &str)> = resources
        .iter()
        .map(|r| (r["kind"].as_str().unwrap(), r["name"].as_str().unwrap()))
        .collect();
    assert_eq!(
        names,
        [("Service", "storefront"), ("Deployment", "storefront")]
    );
    assert_eq!(resources[1]["namespace"], "prod");
    assert_eq!(
        resources[1]["policy"]["fail_mode"],
        "HopeUntilEndOfDeployProcess"
    );
    assert_eq!(
        resources[0]["policy"]["fail_mode"],
        "FailWholeDeployProcessImmediately"
    );
    assert_eq!(deploy_count(&app).await, 0, "a dry run writes nothing");
}

#[tokio::test]
async fn dry_run_with_an_invalid_annotation_names_resource_and_annotation() {
    let home = tempfile::tempdir().unwrap();
    let app = api_only_app(home.path()).await;
    let (status, answer) = dry_run(
        &app,
        &json!({"release": "api", "namespace": "prod", "chart": {"path": "bad-annotation"}}),
    )
    .await;
    assert_eq!(status, 422, "{answer}");
    let error = &answer["errors"][0];
    assert_eq!(error["field"], "tracking");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("Deployment prod/api")
            && message.contains("werf.io/failures-allowed-per-replica"),
        "{message}"
    );
    assert_eq!(deploy_count(&app).await, 0);
}

#[tokio::test]
async fn dry_run_render_errors_hide_secret_values() {
    let home = tempfile::tempdir().unwrap();
    let app = api_only_app(home.path()).await;
    let (status, answer) = dry_run(
        &app,
        &json!({
            "release": "shop",
            "namespace": "prod",
            "chart": {"path": "web"},
            "secret_values": {"failWith": SECRET}
        }),
    )
    .await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["errors"][0]["field"], "chart");
    let text = answer.to_string();
    assert!(
        text.contains("[redacted]") && !text.contains(SECRET),
        "{text}"
    );
}

#[tokio::test]
async fn an_invalid_annotation_fails_the_deploy_while_rendering_and_helm_never_upgrades() {
    let home = tempfile::tempdir().unwrap();
    let (cluster, kubeconfig) = start_kubesim(0.1, home.path()).await;
    let app = spawn_app_with(|config| with_runner(config, Some(kubeconfig), home.path())).await;
    let id = app
        .submit(
            &json!({"release": "api", "namespace": "prod", "chart": {"path": "bad-annotation"}}),
        )
        .await;
    let deploy = wait_for_end(&app, id).await;
    assert_eq!(deploy["status"], "failed");
    assert_eq!(deploy["verdict"]["reason"], "InvalidTrackingPolicy");
    let message = deploy["verdict"]["message"].as_str().unwrap();
    assert!(
        message.contains("werf.io/failures-allowed-per-replica"),
        "{message}"
    );
    assert!(deploy["lease_owner"].is_null());
    let sequence = event_sequence(&events(&app, id).await);
    assert_eq!(
        sequence[..3],
        ["deploy.queued", "deploy.started", "phase:rendering"],
        "{sequence:?}"
    );
    assert_eq!(sequence.last().unwrap(), "deploy.failed");
    // helm's own output may follow (helm 4 reports the refused post-render), but the deploy never
    // reaches the upgrade and helm writes nothing: no release record, no Deployment.
    assert!(
        !sequence.contains(&"phase:upgrading".to_owned()),
        "{sequence:?}"
    );
    let store = cluster.store();
    assert!(store.get(&DEPLOYMENTS, Some("prod"), "api").is_none());
    let (secrets, _) = store.list(&SECRETS, Some("prod"));
    assert!(secrets.is_empty(), "helm recorded a release: {secrets:?}");
    app.shutdown().await;
    cluster.shutdown().await;
}

/// An app whose runner polls only at start-up within a test: anything later must wake it.
async fn app_polling_only_at_start(home: &std::path::Path) -> TestApp {
    let kubeconfig = kubeconfig(home, &refusing_server());
    spawn_app_with(|config| {
        with_runner(config, Some(kubeconfig), home);
        if let Some(runner) = config.runner.as_mut() {
            runner.poll_interval = Duration::from_secs(3600);
        }
    })
    .await
}

#[tokio::test]
async fn queued_deploys_start_without_waiting_for_the_next_poll() {
    let home = tempfile::tempdir().unwrap();
    let app = app_polling_only_at_start(home.path()).await;
    // The cluster is unreachable: each deploy ends quickly, failed by helm's API error.
    let body = json!({"release": "api", "namespace": "prod", "chart": {"path": "web"}});
    // The second queues behind the first (fifo) and starts once the release is free.
    let first = app.submit(&body).await;
    let second = app.submit(&body).await;
    for id in [first, second] {
        let deploy = wait_for_end(&app, id).await;
        assert_eq!(deploy["verdict"]["reason"], "KubernetesApiError");
    }
}

#[tokio::test]
async fn a_deploy_submitted_to_another_replica_starts_without_waiting_for_the_next_poll() {
    let home = tempfile::tempdir().unwrap();
    let worker = app_polling_only_at_start(home.path()).await;
    // A replica without a runner takes the request; the worker hears of it through NOTIFY.
    let front = spawn_app_on(&worker.database_url, |_| {}).await;
    let id = front
        .submit(&json!({"release": "api", "namespace": "prod", "chart": {"path": "web"}}))
        .await;
    let deploy = wait_for_end(&front, id).await;
    assert_eq!(deploy["verdict"]["reason"], "KubernetesApiError");
}

#[tokio::test]
async fn an_unreachable_cluster_fails_the_upgrade_as_an_api_error_with_helm_output() {
    let home = tempfile::tempdir().unwrap();
    let kubeconfig = kubeconfig(home.path(), &refusing_server());
    let app = spawn_app_with(|config| with_runner(config, Some(kubeconfig), home.path())).await;
    let id = app
        .submit(&json!({"release": "shop", "namespace": "prod", "chart": {"path": "web"}}))
        .await;
    let deploy = wait_for_end(&app, id).await;
    assert_eq!(deploy["status"], "failed", "{deploy}");
    assert_eq!(deploy["verdict"]["reason"], "KubernetesApiError");
    let events = events(&app, id).await;
    let sequence = event_sequence(&events);
    // helm 4 renders inside the upgrade, which needs the cluster first; helm 3 renders offline.
    assert_eq!(
        sequence[..3],
        ["deploy.queued", "deploy.started", "phase:rendering"]
    );
    assert_eq!(sequence.last().unwrap(), "deploy.failed");
    let helm_error = events
        .iter()
        .find(|e| e["type"] == "helm.output" && e["data"]["stream"] == "stderr")
        .expect("helm's stderr streamed");
    assert!(
        helm_error["message"]
            .as_str()
            .unwrap()
            .contains("connection refused"),
        "{helm_error}"
    );
    let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=events.len() as i64).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_render_failure_verdict_hides_secret_values_everywhere() {
    let home = tempfile::tempdir().unwrap();
    let (cluster, kubeconfig) = start_kubesim(0.1, home.path()).await;
    let app = spawn_app_with(|config| with_runner(config, Some(kubeconfig), home.path())).await;
    let id = app
        .submit(&json!({
            "release": "shop",
            "namespace": "prod",
            "chart": {"path": "web"},
            "secret_values": {"failWith": SECRET}
        }))
        .await;
    let deploy = wait_for_end(&app, id).await;
    assert_eq!(deploy["verdict"]["reason"], "RenderFailed", "{deploy}");
    let everything = format!("{deploy} {}", Value::from(events(&app, id).await));
    assert!(everything.contains("[redacted]"), "{everything}");
    assert!(!everything.contains(SECRET), "{everything}");
    app.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test]
async fn cancel_while_helm_runs_stops_it_and_ends_cancelled_with_who_and_why() {
    let home = tempfile::tempdir().unwrap();
    // A server that accepts connections and never answers: helm hangs on its first request.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = format!("http://{}", silent.local_addr().unwrap());
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let kubeconfig = kubeconfig(home.path(), &server);
    let app = spawn_app_with(|config| with_runner(config, Some(kubeconfig), home.path())).await;
    let id = app
        .submit(&json!({"release": "shop", "namespace": "prod", "chart": {"path": "web"}}))
        .await;
    // helm 4 hangs while rendering (its first request is the cluster's), helm 3 while upgrading.
    wait_for(&app, id, "helm running", |d| d["phase"] == "rendering").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // From now on the cluster refuses connections, so that the repair's status check ends fast.
    holder.abort();
    let response = app
        .post(&format!("/v1/deploys/{id}/cancel"), &app.admin_token)
        .json(&json!({"reason": "wrong version"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let deploy = wait_for_end(&app, id).await;
    assert_eq!(deploy["status"], "cancelled", "{deploy}");
    assert_eq!(deploy["verdict"]["reason"], "Cancelled");
    assert!(
        deploy["verdict"]["message"]
            .as_str()
            .unwrap()
            .ends_with(": wrong version")
    );
    let sequence = event_sequence(&events(&app, id).await);
    assert!(
        sequence.contains(&"deploy.cancelling".to_owned()),
        "{sequence:?}"
    );
    assert_eq!(sequence.last().unwrap(), "deploy.cancelled");
}

#[tokio::test]
async fn bad_input_is_refused_before_anything_runs() {
    let home = tempfile::tempdir().unwrap();
    let kubeconfig = kubeconfig(home.path(), &refusing_server());
    let app = spawn_app_with(|config| with_runner(config, Some(kubeconfig), home.path())).await;
    let huge = "x".repeat(2 * 1024 * 1024);
    let bodies = [
        (
            json!({"release": "Bad_Name", "namespace": "prod", "chart": {"path": "web"}}),
            422,
            "release",
        ),
        (
            json!({"release": "shop", "namespace": "prod", "chart": {"path": "../../etc"}}),
            422,
            "chart.path",
        ),
        (
            json!({"release": "shop", "namespace": "prod", "chart": {"path": "web"}, "values": [1]}),
            422,
            "values",
        ),
        (
            json!({"release": "shop", "namespace": "prod", "chart": {"path": "web"}, "colour": "red"}),
            422,
            "colour",
        ),
        (
            json!({"release": "shop", "namespace": "prod", "chart": {"path": "web"}, "values": {"blob": huge}}),
            413,
            "",
        ),
    ];
    for (body, status, field) in bodies {
        let response = app
            .post("/v1/deploys", &app.admin_token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status);
        let problem: Value = response.json().await.unwrap();
        assert!(
            problem.to_string().contains(field),
            "{field} not named: {problem}"
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(deploy_count(&app).await, 0, "nothing queued, nothing run");
}
