//! A rollcall reached only by its URL (a child process, a container): submit a deploy and wait
//! for its end over HTTP.

use std::time::{Duration, Instant};

use serde_json::Value;
use uuid::Uuid;

/// Generous: only guards against a hung test.
const SAFETY_TIMEOUT: Duration = Duration::from_secs(120);

/// Submits `body` to the rollcall at `url` and polls the deploy until it ends; returns it.
pub async fn deploy_to_the_end(url: &str, token: &str, body: &Value) -> Value {
    let client = reqwest::Client::new();
    let accepted: Value = client
        .post(format!("{url}/v1/deploys"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("POST /v1/deploys")
        .json()
        .await
        .expect("JSON answer");
    let id = accepted["id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("the deploy was not accepted: {accepted}"));
    wait_for_the_end(url, token, id).await
}

/// Polls deploy `id` of the rollcall at `url` until it ends; returns it.
pub async fn wait_for_the_end(url: &str, token: &str, id: Uuid) -> Value {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + SAFETY_TIMEOUT;
    loop {
        let deploy: Value = client
            .get(format!("{url}/v1/deploys/{id}"))
            .bearer_auth(token)
            .send()
            .await
            .expect("GET the deploy")
            .json()
            .await
            .expect("JSON deploy");
        if has_ended(&deploy) {
            return deploy;
        }
        assert!(
            Instant::now() < deadline,
            "the deploy did not end: {deploy}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Whether a deploy (as the API shows it) is in a final state.
pub fn has_ended(deploy: &Value) -> bool {
    matches!(
        deploy["status"].as_str(),
        Some("succeeded" | "failed" | "cancelled")
    )
}
