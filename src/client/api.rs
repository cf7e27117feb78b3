//! rollcall's HTTP API as the client uses it: requests with the bearer token, answers decoded into
//! the wire types `domain` defines (events, verdicts, statuses) or kept as the JSON received, and
//! every failure sorted into what the exit code needs (rejected, unavailable, unreachable).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderValue};
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use crate::domain::FieldError;
use crate::domain::deploy::{DeployRequest, DeployStatus, Phase};
use crate::domain::event::Event;
use crate::domain::verdict::Verdict;

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a plain (not streaming) request may take; a dry run renders the chart first.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(90);

/// A bearer token: never shown (`Debug` hides it), checked to fit in a header.
#[derive(Clone)]
pub struct Token(String);

impl std::str::FromStr for Token {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() || !text.chars().all(|c| c.is_ascii_graphic()) {
            return Err("a token is one word of visible ASCII characters".to_owned());
        }
        Ok(Token(text.to_owned()))
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// An RFC 9457 problem answer, as rollcall writes them.
#[derive(Debug, Clone, Deserialize)]
pub struct Problem {
    pub title: String,
    pub status: u16,
    #[serde(default)]
    pub detail: String,
    #[serde(default)]
    pub errors: Vec<FieldError>,
    #[serde(default)]
    pub request_id: Option<String>,
    /// For queue rejections: the deploy that holds the release.
    #[serde(default)]
    pub blocking_deploy_id: Option<Uuid>,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.title, self.status)?;
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The server refused the request (4xx): exit code 4.
    #[error("{0}")]
    Rejected(Problem),
    /// The server, or a proxy before it, answered 5xx: worth retrying.
    #[error("the server answered {status}: {detail}")]
    Unavailable { status: u16, detail: String },
    /// No answer: connection refused, reset or timed out; worth retrying.
    #[error("cannot reach the server: {0}")]
    Unreachable(String),
    /// An answer the client does not understand.
    #[error("unexpected answer from the server: {0}")]
    Unexpected(String),
}

impl ApiError {
    /// Whether asking again may succeed (the server restarts, a proxy recovers).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ApiError::Unavailable { .. } | ApiError::Unreachable(_)
        )
    }

    fn transport(error: reqwest::Error) -> Self {
        // The chain names the cause ("connection refused"), which reqwest's own text leaves out.
        let mut text = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            text = format!("{text}: {cause}");
            source = cause.source();
        }
        ApiError::Unreachable(text)
    }
}

/// `202` to `POST /v1/deploys`.
#[derive(Debug, Clone, Deserialize)]
pub struct Accepted {
    pub id: Uuid,
    pub status: DeployStatus,
}

/// What `POST /v1/deploys` answered.
#[derive(Debug)]
pub enum Submitted {
    Accepted {
        accepted: Accepted,
        /// The same `Idempotency-Key` and body were sent before: this is that deploy.
        replayed: bool,
    },
    /// `?dry_run=true`: the resources that would be tracked, as JSON.
    DryRun(Value),
}

/// A deploy as `GET /v1/deploys/{id}` shows it: the fields the client reads, and the JSON itself
/// (printed as received by `-o json`).
#[derive(Debug, Clone)]
pub struct DeployView {
    pub summary: DeploySummary,
    pub json: Value,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DeploySummary {
    pub id: Uuid,
    pub cluster: String,
    pub namespace: String,
    pub release: String,
    pub status: DeployStatus,
    #[serde(default)]
    pub phase: Option<Phase>,
    #[serde(default)]
    pub revision: Option<i32>,
    #[serde(default)]
    pub rolled_back_to: Option<i32>,
    #[serde(default)]
    pub verdict: Option<Verdict>,
    #[serde(default)]
    pub cancel_reason: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub last_event_seq: i64,
    /// Per tracked resource (only in `GET /v1/deploys/{id}`).
    #[serde(default)]
    pub resources: Vec<ResourceRow>,
}

/// One tracked resource of `GET /v1/deploys/{id}`.
#[derive(Debug, Clone, Deserialize)]
pub struct ResourceRow {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub state: String,
    pub ready: String,
    pub failures: String,
    pub message: String,
}

/// One page of `GET /v1/deploys`.
#[derive(Debug)]
pub struct DeployListPage {
    pub items: Vec<DeployView>,
    pub next_cursor: Option<String>,
}

/// The filters of `GET /v1/deploys`.
#[derive(Debug, Default)]
pub struct DeployFilter<'a> {
    pub release: Option<&'a str>,
    pub namespace: Option<&'a str>,
    pub cluster: Option<&'a str>,
    pub status: Option<DeployStatus>,
    pub labels: &'a [String],
}

#[derive(Debug, Deserialize)]
struct EventPage {
    items: Vec<Event>,
}

pub struct ApiClient {
    http: reqwest::Client,
    /// The base URL without a trailing slash.
    server: String,
}

impl ApiClient {
    pub fn new(server: &str, token: &Token) -> Result<Self, ApiError> {
        let mut authorization = HeaderValue::from_str(&format!("Bearer {}", token.0))
            .map_err(|_| ApiError::Unexpected("the token does not fit in a header".into()))?;
        authorization.set_sensitive(true);
        let http = reqwest::Client::builder()
            .user_agent(concat!("rollcall-cli/", env!("CARGO_PKG_VERSION")))
            .default_headers(HeaderMap::from_iter([(AUTHORIZATION, authorization)]))
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|error| ApiError::Unexpected(error.to_string()))?;
        Ok(ApiClient {
            http,
            server: server.trim_end_matches('/').to_owned(),
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server)
    }

    /// `POST /v1/deploys` (with `?dry_run=true` for a dry run).
    pub async fn submit(
        &self,
        request: &DeployRequest,
        idempotency_key: Option<&str>,
        dry_run: bool,
    ) -> Result<Submitted, ApiError> {
        let path = if dry_run {
            "/v1/deploys?dry_run=true"
        } else {
            "/v1/deploys"
        };
        let mut builder = self.http.post(self.url(path)).json(request);
        if let Some(key) = idempotency_key {
            builder = builder.header("idempotency-key", key);
        }
        let response = send(builder).await?;
        let replayed = response.headers().contains_key("idempotent-replayed");
        let body: Value = decode(response).await?;
        if dry_run {
            return Ok(Submitted::DryRun(body));
        }
        Ok(Submitted::Accepted {
            accepted: from_json(body)?,
            replayed,
        })
    }

    /// `GET /v1/deploys/{id}`.
    pub async fn deploy(&self, id: Uuid) -> Result<DeployView, ApiError> {
        let response = send(self.http.get(self.url(&format!("/v1/deploys/{id}")))).await?;
        view(decode(response).await?)
    }

    /// `POST /v1/deploys/{id}/cancel`: the deploy, `cancelling` or already `cancelled`.
    pub async fn cancel(&self, id: Uuid, reason: &str) -> Result<DeployView, ApiError> {
        let builder = self
            .http
            .post(self.url(&format!("/v1/deploys/{id}/cancel")))
            .json(&serde_json::json!({ "reason": reason }));
        view(decode(send(builder).await?).await?)
    }

    /// `GET /v1/deploys`, newest first.
    pub async fn deploys(
        &self,
        filter: &DeployFilter<'_>,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<DeployListPage, ApiError> {
        let mut query: Vec<(&str, String)> = vec![("limit", limit.to_string())];
        for (name, value) in [
            ("release", filter.release),
            ("namespace", filter.namespace),
            ("cluster", filter.cluster),
            ("status", filter.status.map(DeployStatus::as_str)),
            ("cursor", cursor),
        ] {
            if let Some(value) = value {
                query.push((name, value.to_owned()));
            }
        }
        query.extend(filter.labels.iter().map(|label| ("label", label.clone())));
        let response = send(self.http.get(self.url("/v1/deploys")).query(&query)).await?;
        let mut page: Value = decode(response).await?;
        let next_cursor = page["next_cursor"].as_str().map(str::to_owned);
        let items = match page.get_mut("items").map(Value::take) {
            Some(Value::Array(items)) => items.into_iter().map(view).collect::<Result<_, _>>()?,
            _ => return Err(ApiError::Unexpected("a deploy page without items".into())),
        };
        Ok(DeployListPage { items, next_cursor })
    }

    /// Up to `limit` events of a deploy after `after`, as JSON pages.
    pub async fn events_after(
        &self,
        id: Uuid,
        after: i64,
        limit: u32,
    ) -> Result<Vec<Event>, ApiError> {
        let builder = self
            .http
            .get(self.url(&format!("/v1/deploys/{id}/events")))
            .query(&[("after", after.to_string()), ("limit", limit.to_string())])
            .header(ACCEPT, "application/json");
        let page: EventPage = from_json(decode(send(builder).await?).await?)?;
        Ok(page.items)
    }

    /// Opens the SSE stream of a deploy's events after `last_seq` (`Last-Event-ID`).
    pub async fn event_stream(
        &self,
        id: Uuid,
        last_seq: i64,
    ) -> Result<reqwest::Response, ApiError> {
        let builder = self
            .http
            .get(self.url(&format!("/v1/deploys/{id}/events")))
            .header(ACCEPT, "text/event-stream")
            .header("last-event-id", last_seq.to_string());
        let response = builder.send().await.map_err(ApiError::transport)?;
        check(response).await
    }
}

async fn send(builder: reqwest::RequestBuilder) -> Result<reqwest::Response, ApiError> {
    let response = builder
        .timeout(REQUEST_TIMEOUT)
        .send()
        .await
        .map_err(ApiError::transport)?;
    check(response).await
}

/// Passes a 2xx answer; turns any other into the error it stands for.
async fn check(response: reqwest::Response) -> Result<reqwest::Response, ApiError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let text = response.text().await.unwrap_or_default();
    if status.is_client_error() {
        let problem = serde_json::from_str(&text).unwrap_or_else(|_| Problem {
            title: status.canonical_reason().unwrap_or("rejected").to_owned(),
            status: status.as_u16(),
            detail: text.trim().chars().take(500).collect(),
            errors: Vec::new(),
            request_id: None,
            blocking_deploy_id: None,
        });
        return Err(ApiError::Rejected(problem));
    }
    let detail = serde_json::from_str::<Problem>(&text)
        .map(|problem| problem.detail)
        .unwrap_or_else(|_| text.trim().chars().take(500).collect());
    Err(ApiError::Unavailable {
        status: status.as_u16(),
        detail,
    })
}

async fn decode(response: reqwest::Response) -> Result<Value, ApiError> {
    let bytes = response.bytes().await.map_err(ApiError::transport)?;
    serde_json::from_slice(&bytes).map_err(|error| ApiError::Unexpected(error.to_string()))
}

fn from_json<T: serde::de::DeserializeOwned>(json: Value) -> Result<T, ApiError> {
    serde_json::from_value(json).map_err(|error| ApiError::Unexpected(error.to_string()))
}

fn view(json: Value) -> Result<DeployView, ApiError> {
    Ok(DeployView {
        summary: from_json(json.clone())?,
        json,
    })
}
