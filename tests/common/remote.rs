//! A rollcall reached only by its URL (a child process, a container): submit a deploy and wait
//! for its end over HTTP.

use std::time::{Duration, Instant};

use serde_json::Value;

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
    let deploy_url = format!(
        "{url}{}",
        accepted["links"]["self"]
            .as_str()
            .unwrap_or_else(|| panic!("the deploy was not accepted: {accepted}"))
    );
    let deadline = Instant::now() + SAFETY_TIMEOUT;
    loop {
        let deploy: Value = client
            .get(&deploy_url)
            .bearer_auth(token)
            .send()
            .await
            .expect("GET the deploy")
            .json()
            .await
            .expect("JSON deploy");
        match deploy["status"].as_str() {
            Some("succeeded" | "failed" | "cancelled") => return deploy,
            _ if Instant::now() > deadline => panic!("the deploy did not end: {deploy}"),
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}
