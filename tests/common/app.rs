//! The rollcall server on port 0 over a fresh database, with an HTTP client and its admin token.

use std::sync::Once;

use rollcall::config::Config;
use rollcall::domain::auth::StaticToken;
use rollcall::domain::chart_allowlist::{ChartAllowList, OciLocation, RepositoryUrl};
use rollcall::http::state::ApiState;
use rollcall::startup::{StartupError, serve, start};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::postgres::fresh_database;

pub struct TestApp {
    /// `http://127.0.0.1:<port>`
    pub address: String,
    pub database_url: String,
    pub state: ApiState,
    /// A bootstrap admin token (admin over `*/*/*`).
    pub admin_token: String,
    pub client: reqwest::Client,
    shutdown: CancellationToken,
    server: Option<JoinHandle<Result<(), StartupError>>>,
}

fn init_logs() {
    static LOGS: Once = Once::new();
    LOGS.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            rollcall::telemetry::init(rollcall::telemetry::LogFormat::Text);
        }
    });
}

/// An app over a fresh database.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// An app over a fresh database with adjusted configuration.
pub async fn spawn_app_with(configure: impl FnOnce(&mut Config)) -> TestApp {
    let database_url = fresh_database().await;
    spawn_app_on(&database_url, configure).await
}

/// Another instance on an existing database (scale-out tests).
pub async fn spawn_app_on(database_url: &str, configure: impl FnOnce(&mut Config)) -> TestApp {
    init_logs();
    let admin_token = format!("test-admin-{}", uuid::Uuid::new_v4().simple());
    let mut config = Config::new(database_url);
    config.db_max_connections = 5;
    config
        .static_tokens
        .push(StaticToken::bootstrap_admin(&admin_token));
    config.allowed_charts = example_charts();
    configure(&mut config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind port 0");
    let address = format!("http://{}", listener.local_addr().expect("local address"));
    let shutdown = CancellationToken::new();
    let rollcall = start(config, shutdown.clone())
        .await
        .expect("start rollcall");
    let state = rollcall.api.clone();
    let server = tokio::spawn(serve(rollcall, listener));
    TestApp {
        address,
        database_url: database_url.to_owned(),
        state,
        admin_token,
        client: reqwest::Client::new(),
        shutdown,
        server: Some(server),
    }
}

/// The repository and registry the suite's deploy bodies name ([`deploy_body`]); nothing is ever
/// fetched from them unless a test renders or runs such a deploy.
pub const EXAMPLE_REPOSITORY: &str = "https://charts.example.com";
pub const EXAMPLE_REGISTRY: &str = "registry.example/charts";

/// [`EXAMPLE_REPOSITORY`] and [`EXAMPLE_REGISTRY`], which every test app allows unless its
/// configuration replaces `allowed_charts`.
pub fn example_charts() -> ChartAllowList {
    let mut allowed = ChartAllowList::default();
    allowed.allow_repository(RepositoryUrl::parse(EXAMPLE_REPOSITORY).expect("a repository URL"));
    allowed.allow_registry(OciLocation::parse(EXAMPLE_REGISTRY).expect("a registry prefix"));
    allowed
}

/// A server key (`ROLLCALL_SECRET_KEY`) for tests that seal secrets.
pub const TEST_SERVER_KEY: &str =
    "8f2b6c0e4a1d3f5b7c9e0a2c4e6f8a1b3d5f7a9c1e3b5d7f9a0c2e4f6b8d0a1c";

pub fn test_server_key() -> rollcall::domain::sealing::ServerKey {
    rollcall::domain::sealing::ServerKey::parse(TEST_SERVER_KEY).expect("a valid key")
}

/// A minimal valid deploy request body.
pub fn deploy_body(namespace: &str, release: &str) -> Value {
    json!({
        "release": release,
        "namespace": namespace,
        "chart": {"repo": "https://charts.example.com", "name": release, "version": "1.0.0"},
    })
}

/// Sends a prepared `POST /v1/deploys` and returns the new deploy's id; panics unless it is accepted.
pub async fn submit(request: reqwest::RequestBuilder) -> uuid::Uuid {
    let response = request.send().await.expect("POST /v1/deploys");
    let status = response.status();
    let answer: Value = response.json().await.expect("JSON answer");
    assert_eq!(status, 202, "deploy not accepted: {answer}");
    answer["id"].as_str().expect("id").parse().expect("uuid")
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub fn get(&self, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.client.get(self.url(path)).bearer_auth(token)
    }

    pub fn post(&self, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.client.post(self.url(path)).bearer_auth(token)
    }

    pub fn delete(&self, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.client.delete(self.url(path)).bearer_auth(token)
    }

    /// Submits a deploy as admin and returns its id; panics unless it is accepted.
    pub async fn submit(&self, body: &Value) -> uuid::Uuid {
        submit(self.post("/v1/deploys", &self.admin_token).json(body)).await
    }

    /// `GET /v1/deploys/{id}` as admin.
    pub async fn deploy(&self, id: uuid::Uuid) -> Value {
        let response = self
            .get(&format!("/v1/deploys/{id}"), &self.admin_token)
            .send()
            .await
            .expect("GET /v1/deploys/{id}");
        assert_eq!(response.status(), 200);
        response.json().await.expect("JSON answer")
    }

    /// `GET /metrics` (no token needed): the Prometheus text.
    pub async fn metrics(&self) -> String {
        let response = self
            .client
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("GET /metrics");
        response.text().await.expect("metrics text")
    }

    /// Mints a token through the API.
    pub async fn token(&self, scopes: &[&str], targets: &[&str]) -> (String, String) {
        let response = self
            .post("/v1/tokens", &self.admin_token)
            .json(&json!({"name": "test", "scopes": scopes, "targets": targets}))
            .send()
            .await
            .expect("POST /v1/tokens");
        assert_eq!(response.status(), 201);
        let created: Value = response.json().await.expect("JSON answer");
        (
            created["id"].as_str().expect("id").to_owned(),
            created["token"].as_str().expect("token").to_owned(),
        )
    }

    /// Graceful shutdown; returns once the server and its background tasks have finished.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("server result");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Every event of a deploy, in order, through the JSON pages of the server at `address` (an app in
/// this process or a `rollcall serve` child).
pub async fn all_events(address: &str, token: &str, id: uuid::Uuid) -> Vec<Value> {
    let client = reqwest::Client::new();
    let mut events = Vec::new();
    let mut after = 0;
    loop {
        let page: Value = client
            .get(format!(
                "{address}/v1/deploys/{id}/events?after={after}&limit=200"
            ))
            .bearer_auth(token)
            .header("accept", "application/json")
            .send()
            .await
            .expect("GET events")
            .json()
            .await
            .expect("JSON events");
        let items = page["items"].as_array().expect("items").clone();
        if items.is_empty() {
            return events;
        }
        after = items.last().expect("an item")["seq"].as_i64().expect("seq");
        events.extend(items);
    }
}

/// Shorthands for requests whose answer a test reads only in part.
pub trait Answer {
    /// Sends the request and returns the status code.
    fn status_code(self) -> impl Future<Output = u16>;
    /// Sends the request and returns the JSON body, whatever the status.
    fn json_body(self) -> impl Future<Output = Value>;
    /// Sends the request and returns the body as text, whatever the status.
    fn text_body(self) -> impl Future<Output = String>;
}

impl Answer for reqwest::RequestBuilder {
    async fn status_code(self) -> u16 {
        self.send().await.expect("request sent").status().as_u16()
    }

    async fn json_body(self) -> Value {
        let response = self.send().await.expect("request sent");
        response.json().await.expect("a JSON body")
    }

    async fn text_body(self) -> String {
        let response = self.send().await.expect("request sent");
        response.text().await.expect("a text body")
    }
}
