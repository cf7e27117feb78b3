//! Webhook deliveries as GitHub, GitLab and Standard Webhooks senders make them: the payloads of
//! `tests/fixtures/hooks` (their real shapes), signed with each provider's scheme.

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::app::TestApp;

pub const GITHUB_SECRET: &str = "It's a Secret to Everybody";
pub const GITLAB_TOKEN: &str = "gitlab-hook-token-5d41402abc4b2a76";
pub const STANDARD_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// `ROLLCALL_SECRET_KEY` of apps that store hooks.
pub const SERVER_KEY: &str = "8f2b6c0e4a1d3f5b7c9e0a2c4e6f8a1b3d5f7a9c1e3b5d7f9a0c2e4f6b8d0a1c";
/// The commit of the push fixture.
pub const PUSHED_COMMIT: &str = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c";

/// A payload fixture.
pub fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/hooks/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path}: {error}"));
    serde_json::from_str(&text).expect("a JSON fixture")
}

/// GitHub's push of the fixture to `git_ref`, its head commit `after`.
pub fn github_push(git_ref: &str, after: &str) -> Value {
    let mut push = fixture("github-push.json");
    push["ref"] = json!(git_ref);
    push["after"] = json!(after);
    push["head_commit"]["id"] = json!(after);
    push
}

/// The push of a branch's deletion, as GitHub sends it.
pub fn github_branch_deletion(git_ref: &str) -> Value {
    let mut push = github_push(git_ref, "0000000000000000000000000000000000000000");
    push["deleted"] = json!(true);
    push["commits"] = json!([]);
    push["head_commit"] = Value::Null;
    push
}

/// `sha256=<hex HMAC-SHA256(secret, body)>`, GitHub's `X-Hub-Signature-256`.
pub fn github_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// `POST /v1/hooks/{hook}` of `body` with GitHub's headers but no signature (add one).
pub fn github_unsigned(
    app: &TestApp,
    hook: &str,
    event: &str,
    delivery_id: &str,
    content_type: &str,
    body: &[u8],
) -> reqwest::RequestBuilder {
    app.client
        .post(app.url(&format!("/v1/hooks/{hook}")))
        .header("content-type", content_type)
        .header("user-agent", "GitHub-Hookshot/a7f2d1c")
        .header("x-github-event", event)
        .header("x-github-delivery", delivery_id)
        .header("x-github-hook-id", "471934")
        .body(body.to_vec())
}

/// `POST /v1/hooks/{hook}` of `body` as GitHub delivers JSON, signed with [`GITHUB_SECRET`].
pub fn github_delivery(
    app: &TestApp,
    hook: &str,
    event: &str,
    delivery_id: &str,
    body: &[u8],
) -> reqwest::RequestBuilder {
    github_unsigned(app, hook, event, delivery_id, "application/json", body)
        .header("x-hub-signature-256", github_signature(GITHUB_SECRET, body))
}

/// `POST /v1/hooks/{hook}` of `body` as GitLab 17.4+ delivers it, with `token`.
pub fn gitlab_delivery(
    app: &TestApp,
    hook: &str,
    event: &str,
    idempotency_key: &str,
    token: &str,
    body: &[u8],
) -> reqwest::RequestBuilder {
    app.client
        .post(app.url(&format!("/v1/hooks/{hook}")))
        .header("content-type", "application/json")
        .header("user-agent", "GitLab/17.6.0")
        .header("x-gitlab-event", event)
        .header("x-gitlab-event-uuid", uuid::Uuid::new_v4().to_string())
        .header("idempotency-key", idempotency_key)
        .header("x-gitlab-instance", "https://gitlab.example.com")
        .header("x-gitlab-token", token)
        .body(body.to_vec())
}

/// `POST /v1/hooks/{hook}` of `body` as a Standard Webhooks sender delivers it, signed by the
/// `standardwebhooks` crate with [`STANDARD_SECRET`] at `timestamp` (Unix seconds).
pub fn standard_delivery(
    app: &TestApp,
    hook: &str,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> reqwest::RequestBuilder {
    let signature = standardwebhooks::Webhook::new(STANDARD_SECRET)
        .expect("a valid secret")
        .sign(id, timestamp, body)
        .expect("a UTF-8 body");
    app.client
        .post(app.url(&format!("/v1/hooks/{hook}")))
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body.to_vec())
}

/// Now, in Unix seconds.
pub fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// `rollcall_hook_deliveries_total` of `hook` and `outcome` in the Prometheus text `metrics`.
pub fn metric(metrics: &str, hook: &str, outcome: &str) -> u64 {
    let prefix =
        format!("rollcall_hook_deliveries_total{{hook=\"{hook}\",outcome=\"{outcome}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map_or(0, |count| count.parse().expect("a count"))
}
