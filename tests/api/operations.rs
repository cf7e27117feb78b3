//! Health, metrics, request ids and the error format of the router itself; what `serve` says when
//! it cannot start.

use serde_json::Value;

use crate::common::app::{Answer, spawn_app};

#[tokio::test]
async fn health_and_readiness_need_no_token() {
    let app = spawn_app().await;
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.json::<Value>().await.unwrap()["status"], "ready");
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_errors_repeat_it() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/v1/nowhere")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["status"], 404);
    assert_eq!(problem["request_id"], request_id.as_str());
    assert!(problem["type"].as_str().unwrap().starts_with("https://"));

    let ok = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.headers()["x-request-id"], "abc-123");
}

#[tokio::test]
async fn wrong_method_is_a_problem_405() {
    let app = spawn_app().await;
    let response = app.client.put(app.url("/v1/deploys")).send().await.unwrap();
    assert_eq!(response.status(), 405);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["status"], 405);
    assert!(
        problem["request_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty())
    );
}

#[tokio::test]
async fn metrics_count_deploys_requests_and_events() {
    let app = spawn_app().await;
    app.submit(&crate::common::app::deploy_body("prod", "web"))
        .await;
    let text = app.metrics().await;
    assert!(
        text.contains("rollcall_deploys{status=\"queued\"} 1"),
        "{text}"
    );
    assert!(text.contains("rollcall_events_written_total 1"), "{text}");
    assert!(
        text.contains(
            "rollcall_http_requests_total{method=\"POST\",route=\"/v1/deploys\",status=\"202\"} 1"
        ),
        "{text}"
    );
}

#[tokio::test]
async fn docs_page_and_openapi_document_are_served() {
    let app = spawn_app().await;
    let docs = app.client.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    assert!(docs.text().await.unwrap().contains("<html"));
    let spec: Value = app.client.get(app.url("/openapi.json")).json_body().await;
    assert!(spec["openapi"].as_str().unwrap().starts_with("3.1"));
    assert!(spec["paths"]["/v1/deploys"]["post"].is_object());
}

/// `rollcall serve` without a reachable database: one sentence with the real cause (not the
/// pool's timeout) and the variable that fixes it, and exit status 1.
#[test]
fn serve_without_a_database_says_why_and_what_to_do() {
    let refusing = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = refusing.local_addr().expect("address").port();
    drop(refusing);
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_rollcall"))
        .args(["serve", "--listen", "127.0.0.1:0", "--database-url"])
        .arg(format!("postgres://rollcall@127.0.0.1:{port}/rollcall"))
        .env_remove("DATABASE_URL")
        .env_remove("ROLLCALL_CONFIG")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run rollcall serve");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr.lines().last().unwrap_or_default(),
        "rollcall: cannot connect to PostgreSQL (database error: error communicating with \
         database: Connection refused (os error 111)): start it, or point DATABASE_URL \
         (--database-url) at a running server"
    );
}
