//! `POST /v1/deploys`: validation, limits, idempotency, queue modes; nothing is written on a 4xx.

use rollcall::runner::DeploySecrets;
use serde_json::{Value, json};

use crate::common::app::{Answer, TestApp, deploy_body, spawn_app, spawn_app_with};

async fn post_raw(
    app: &TestApp,
    body: impl Into<reqwest::Body>,
    content_type: &str,
) -> (u16, Value) {
    let response = app
        .post("/v1/deploys", &app.admin_token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn post_json(app: &TestApp, body: &Value) -> (u16, Value) {
    post_raw(app, body.to_string(), "application/json").await
}

pub fn error_fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| e["field"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

async fn deploy_count(app: &TestApp) -> i64 {
    sqlx::query_scalar("select count(*) from deploys")
        .fetch_one(&app.state.pool)
        .await
        .unwrap()
}

async fn event_count(app: &TestApp) -> i64 {
    sqlx::query_scalar("select count(*) from deploy_events")
        .fetch_one(&app.state.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn accepted_deploy_is_queued_with_location_and_links() {
    let app = spawn_app().await;
    let response = app
        .post("/v1/deploys", &app.admin_token)
        .json(&deploy_body("prod", "web"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "queued");
    assert_eq!(
        location,
        format!("/v1/deploys/{}", body["id"].as_str().unwrap())
    );
    assert_eq!(body["links"]["events"], format!("{location}/events"));

    let deploy: Value = app.get(&location, &app.admin_token).json_body().await;
    assert_eq!(deploy["status"], "queued");
    assert_eq!(deploy["cluster"], "default");
    assert_eq!(deploy["timeout_seconds"], 600);
    assert_eq!(deploy["resources"], json!([]));
    assert_eq!(deploy["last_event_seq"], 1);
}

#[tokio::test]
async fn each_field_family_is_validated_and_named() {
    let app = spawn_app().await;
    let cases: Vec<(Value, &str)> = vec![
        (json!({"release": "Web!"}), "release"),
        (json!({"release": "a".repeat(54)}), "release"),
        (json!({"namespace": "-prod"}), "namespace"),
        (json!({"cluster": "a/b"}), "cluster"),
        (json!({"chart": {"path": "/abs"}}), "chart.path"),
        (json!({"chart": {"path": "../up"}}), "chart.path"),
        (
            json!({"chart": {"repo": "https://x", "name": "web"}}),
            "chart.version",
        ),
        (
            json!({"chart": {"oci": "docker.io/web", "version": "1"}}),
            "chart.oci",
        ),
        (json!({"chart": {}}), "chart"),
        (json!({"timeout": "5 minutes"}), "timeout"),
        (json!({"timeout": "48h"}), "timeout"),
        (json!({"queue": "sometimes"}), "queue"),
        (json!({"values": [1, 2]}), "values"),
        (json!({"labels": {"bad key": "x"}}), "labels.bad key"),
        (json!({"notify": [{"url": "ftp://x"}]}), "notify[0].url"),
        (
            json!({"notify": [{"url": "https://x", "events": ["deploy.nope"]}]}),
            "notify[0].events[0]",
        ),
        (
            json!({"tracking": {"defaults": {"fail_mode": "Never"}}}),
            "tracking.defaults.fail_mode",
        ),
        (
            json!({"tracking": {"defaults": {"no_activity_timeout": "later"}}}),
            "tracking.defaults.no_activity_timeout",
        ),
        (
            json!({"tracking": {"resources": [{"kind": "Deployment", "policy": {"track_termination_mode": "x"}}]}}),
            "tracking.resources[0].policy.track_termination_mode",
        ),
        (
            json!({"tracking": {"resources": [{"kind": "Deployment", "policy": {"failures_allowed_per_replica": -1}}]}}),
            "tracking.resources[0].policy.failures_allowed_per_replica",
        ),
        (
            json!({"tracking": {"resources": [{"kind": "Deployment", "policy": {"colour": "red"}}]}}),
            "tracking.resources[0].policy.colour",
        ),
        (json!({"unknown": 1}), "unknown"),
    ];
    for (patch, field) in cases {
        let mut body = deploy_body("prod", "web");
        for (key, value) in patch.as_object().unwrap() {
            body[key] = value.clone();
        }
        let (status, problem) = post_json(&app, &body).await;
        assert_eq!(status, 422, "{body} → {problem}");
        assert!(
            error_fields(&problem).contains(&field.to_owned()),
            "{body}: expected {field} in {problem}"
        );
        assert_eq!(problem["status"], 422);
    }
    let missing = json!({"namespace": "prod", "chart": {"path": "web"}});
    let (status, problem) = post_json(&app, &missing).await;
    assert_eq!(status, 422);
    assert_eq!(error_fields(&problem), ["release"]);
    assert_eq!(deploy_count(&app).await, 0);
    assert_eq!(event_count(&app).await, 0);
}

#[tokio::test]
async fn several_invalid_fields_are_reported_together() {
    let app = spawn_app().await;
    let body = json!({"release": "A", "namespace": "B", "chart": {"path": "x"}, "timeout": "x"});
    let (status, problem) = post_json(&app, &body).await;
    assert_eq!(status, 422);
    assert_eq!(error_fields(&problem), ["release", "namespace", "timeout"]);
}

#[tokio::test]
async fn chart_paths_resolve_inside_the_configured_catalog() {
    let catalog = tempfile::tempdir().unwrap();
    std::fs::create_dir(catalog.path().join("web")).unwrap();
    let root = catalog.path().to_owned();
    let app = spawn_app_with(move |config| config.chart_dir = Some(root)).await;
    let mut body = deploy_body("prod", "web");
    body["chart"] = json!({"path": "web"});
    assert_eq!(post_json(&app, &body).await.0, 202);
    body["chart"] = json!({"path": "missing"});
    let (status, problem) = post_json(&app, &body).await;
    assert_eq!(status, 422);
    assert_eq!(error_fields(&problem), ["chart.path"]);
}

#[tokio::test]
async fn malformed_json_is_a_400_naming_the_position() {
    let app = spawn_app().await;
    let (status, problem) = post_raw(
        &app,
        "{\n \"release\": \"web\",\n oops}",
        "application/json",
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("line 3 column 2"),
        "{problem}"
    );
    assert_eq!(deploy_count(&app).await, 0);
}

#[tokio::test]
async fn oversized_bodies_are_a_413() {
    let app = spawn_app_with(|config| config.body_limit = 4096).await;
    let mut body = deploy_body("prod", "web");
    body["values"] = json!({"blob": "x".repeat(8192)});
    let (status, problem) = post_json(&app, &body).await;
    assert_eq!(status, 413);
    assert_eq!(problem["status"], 413);
    assert_eq!(deploy_count(&app).await, 0);
}

#[tokio::test]
async fn other_content_types_are_a_415() {
    let app = spawn_app().await;
    let (status, problem) =
        post_raw(&app, deploy_body("prod", "web").to_string(), "text/plain").await;
    assert_eq!(status, 415);
    assert_eq!(problem["status"], 415);
}

#[tokio::test]
async fn unknown_query_parameters_are_rejected() {
    let app = spawn_app().await;
    let response = app
        .post("/v1/deploys?dry_runn=true", &app.admin_token)
        .json(&deploy_body("prod", "web"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(deploy_count(&app).await, 0);
}

#[tokio::test]
async fn secret_values_are_never_echoed_nor_digested_without_a_key() {
    let app = spawn_app().await;
    let mut body = deploy_body("prod", "web");
    body["secret_values"] = json!({"password": "hunter2-very-secret"});
    let id = app.submit(&body).await;
    let text = app
        .get(&format!("/v1/deploys/{id}"), &app.admin_token)
        .text_body()
        .await;
    assert!(!text.contains("hunter2"), "{text}");
    let deploy: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(deploy["has_secret_values"], true);
    assert_eq!(deploy["secret_values_digest"], Value::Null);
    let stored: String = sqlx::query_scalar("select row_to_json(d)::text from deploys d")
        .fetch_one(&app.state.pool)
        .await
        .unwrap();
    assert!(!stored.contains("hunter2"));
    let kept = app.state.secrets.take(&app.state.pool, id, true).await;
    assert!(
        matches!(kept, Ok(DeploySecrets::Available(_))),
        "without a server key, secret values are kept in memory for the runner"
    );
}

#[tokio::test]
async fn same_idempotency_key_and_body_return_the_same_deploy() {
    let app = spawn_app().await;
    let send = |body: Value| {
        app.post("/v1/deploys", &app.admin_token)
            .header("idempotency-key", "ci-run-42")
            .json(&body)
            .send()
    };
    let first = send(deploy_body("prod", "web")).await.unwrap();
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();
    // Same JSON with keys in another order is the same request.
    let reordered: Value = serde_json::from_str(
        r#"{"chart": {"version": "1.0.0", "name": "web", "repo": "https://charts.example.com"}, "namespace": "prod", "release": "web"}"#,
    )
    .unwrap();
    let second = send(reordered).await.unwrap();
    assert_eq!(second.status(), 202);
    assert_eq!(second.headers()["idempotent-replayed"], "true");
    let second: Value = second.json().await.unwrap();
    assert_eq!(first["id"], second["id"]);
    assert_eq!(deploy_count(&app).await, 1);

    let other = send(deploy_body("prod", "api")).await.unwrap();
    assert_eq!(other.status(), 422);
    assert_eq!(deploy_count(&app).await, 1);
}

#[tokio::test]
async fn concurrent_requests_with_one_key_create_one_deploy() {
    let app = spawn_app().await;
    let requests = (0..8).map(|_| {
        app.post("/v1/deploys", &app.admin_token)
            .header("idempotency-key", "race")
            .json(&deploy_body("prod", "web"))
            .send()
    });
    let responses = futures::future::join_all(requests).await;
    let mut ids = std::collections::HashSet::new();
    for response in responses {
        let response = response.unwrap();
        assert_eq!(response.status(), 202);
        ids.insert(
            response.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(ids.len(), 1);
    assert_eq!(deploy_count(&app).await, 1);
}

#[tokio::test]
async fn queue_reject_answers_409_with_the_blocking_deploy() {
    let app = spawn_app().await;
    let first = app.submit(&deploy_body("prod", "web")).await;
    let mut body = deploy_body("prod", "web");
    body["queue"] = json!("reject");
    let (status, problem) = post_json(&app, &body).await;
    assert_eq!(status, 409);
    assert_eq!(problem["blocking_deploy_id"], first.to_string());
    assert_eq!(deploy_count(&app).await, 1);
    // Another release is not blocked.
    body["release"] = json!("api");
    assert_eq!(post_json(&app, &body).await.0, 202);
}

#[tokio::test]
async fn queue_supersede_cancels_older_queued_deploys_of_the_release() {
    let app = spawn_app().await;
    let mut with_secret = deploy_body("prod", "web");
    with_secret["secret_values"] = json!({"token": "s3cret"});
    let older = app.submit(&with_secret).await;
    let other_release = app.submit(&deploy_body("prod", "api")).await;
    let mut body = deploy_body("prod", "web");
    body["queue"] = json!("supersede");
    let newer = app.submit(&body).await;
    let kept = app.state.secrets.take(&app.state.pool, older, true).await;
    assert!(
        matches!(kept, Ok(DeploySecrets::Unavailable(_))),
        "a superseded deploy's secrets are dropped"
    );
    let older = app.deploy(older).await;
    assert_eq!(older["status"], "cancelled");
    assert!(
        older["cancel_reason"]
            .as_str()
            .unwrap()
            .contains(&newer.to_string())
    );
    assert_eq!(older["last_event_seq"], 2);
    assert_eq!(app.deploy(other_release).await["status"], "queued");
    assert_eq!(app.deploy(newer).await["status"], "queued");
}
