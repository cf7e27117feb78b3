//! A notification receiver for tests: a small HTTP server on 127.0.0.1 that records every request
//! and answers from a script (then 200), and verifies Standard Webhooks signatures with the
//! `standardwebhooks` crate.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use rollcall::config::Config;
use rollcall::domain::notify::{DestinationPolicy, WebhookSecret};
use rollcall::domain::public_url::PublicUrl;
use rollcall::domain::sealing::ServerKey;
use rollcall::notify::RetryPolicy;
use serde_json::Value;
use tokio::time::Instant;
use uuid::Uuid;

use super::app::{Answer, TestApp};

/// One recorded request.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: String,
    pub at: Instant,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_else(|| panic!("no {name} header"))
    }

    pub fn webhook_id(&self) -> &str {
        self.header("webhook-id")
    }

    pub fn timestamp(&self) -> i64 {
        self.header("webhook-timestamp")
            .parse()
            .expect("a timestamp")
    }

    /// Verifies the signature as a receiver would, with a Standard Webhooks implementation.
    pub fn verify(&self, secret: &str) -> Result<(), standardwebhooks::WebhookError> {
        standardwebhooks::Webhook::new(secret)?.verify(self.body.as_bytes(), &self.headers)
    }
}

/// How the receiver answers one request.
#[derive(Debug, Clone)]
pub enum Reply {
    Status(u16),
    /// A status with headers (e.g. `Retry-After`, `Location`).
    With(u16, Vec<(&'static str, String)>),
    /// The status after a pause.
    After(Duration, u16),
    /// No answer until the connection is dropped.
    Hang,
}

#[derive(Default)]
struct Shared {
    received: Mutex<Vec<Received>>,
    script: Mutex<VecDeque<Reply>>,
}

pub struct Receiver {
    /// `http://127.0.0.1:<port>/hook`
    pub url: String,
    pub port: u16,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        Self::start_on("127.0.0.1:0").await
    }

    /// On a given address (a restarted receiver keeps its port).
    pub async fn start_on(address: &str) -> Receiver {
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .expect("bind the receiver");
        let port = listener.local_addr().expect("address").port();
        let shared = Arc::new(Shared::default());
        let app = axum::Router::new()
            .fallback(receive)
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("receiver serves");
        });
        Receiver {
            url: format!("http://127.0.0.1:{port}/hook"),
            port,
            shared,
            server,
        }
    }

    /// The next requests get these answers, in order; after them, 200.
    pub fn reply(&self, replies: impl IntoIterator<Item = Reply>) {
        self.shared.script.lock().unwrap().extend(replies);
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// Waits until `count` requests came; panics after `timeout`.
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let received = self.received();
            if received.len() >= count {
                return received;
            }
            assert!(
                Instant::now() < deadline,
                "the receiver got {} of {count} requests within {timeout:?}: {:?}",
                received.len(),
                received.iter().map(|r| &r.body).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn receive(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    shared.received.lock().unwrap().push(Received {
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        at: Instant::now(),
    });
    let reply = shared.script.lock().unwrap().pop_front();
    match reply.unwrap_or(Reply::Status(200)) {
        Reply::Status(status) => StatusCode::from_u16(status).unwrap().into_response(),
        Reply::With(status, headers) => {
            let mut response = StatusCode::from_u16(status).unwrap().into_response();
            for (name, value) in headers {
                response
                    .headers_mut()
                    .insert(name, value.parse().expect("a header value"));
            }
            response
        }
        Reply::After(pause, status) => {
            tokio::time::sleep(pause).await;
            StatusCode::from_u16(status).unwrap().into_response()
        }
        Reply::Hang => std::future::pending().await,
    }
}

/// A deploy's notifications with their attempts (`GET /v1/deploys/{id}/notifications`).
pub async fn notifications_of(app: &TestApp, id: Uuid) -> Vec<Value> {
    let page = app
        .get(&format!("/v1/deploys/{id}/notifications"), &app.admin_token)
        .json_body()
        .await;
    page["items"].as_array().expect("items").clone()
}

/// A deploy's notifications once there are some and none is pending any more.
pub async fn settled_notifications(app: &TestApp, id: Uuid) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let items = notifications_of(app, id).await;
        if !items.is_empty() && items.iter().all(|item| item["state"] != "pending") {
            return items;
        }
        assert!(
            Instant::now() < deadline,
            "notifications of {id} never settled: {items:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
pub const PORTAL_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const SERVER_KEY: &str = "8f2b6c0e4a1d3f5b7c9e0a2c4e6f8a1b3d5f7a9c1e3b5d7f9a0c2e4f6b8d0a1c";

/// Notifications on: a default and a named secret, the loopback network allowed, retries after
/// 300 ms, links under a public URL, a server key for subscription secrets.
pub fn notifying(config: &mut Config) {
    config.notify.default_secret = Some(WebhookSecret::parse(SECRET).unwrap());
    config.notify.secrets = BTreeMap::from([(
        "portal".to_owned(),
        WebhookSecret::parse(PORTAL_SECRET).unwrap(),
    )]);
    config.notify.destinations =
        DestinationPolicy::new(DestinationPolicy::parse_networks("127.0.0.0/8").unwrap());
    config.notify.delivery.retry = RetryPolicy {
        first_delay: Duration::from_millis(300),
        max_delay: Duration::from_secs(2),
        horizon: Duration::from_secs(3600),
    };
    config.public_url = Some(PublicUrl::parse("https://rollcall.example.com").unwrap());
    config.secret_key = Some(ServerKey::parse(SERVER_KEY).unwrap());
}
