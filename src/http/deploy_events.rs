//! Deploy events as Server-Sent Events (resumable, gapless, deduplicated) or JSON pages, and the
//! live firehose across deploys.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::auth::Auth;
use super::deploys::authorized_deploy;
use super::error::{ApiError, AuthProblems, NotFoundProblem, ParameterProblems};
use super::json::{Path, Query};
use super::page;
use super::revocations::Revocations;
use super::state::ApiState;
use crate::bus::{BusMessage, FollowError};
use crate::domain::FieldError;
use crate::domain::auth::{Principal, Scope};
use crate::domain::event::{Event, EventType};
use crate::domain::firehose::{FirehosePosition, InvalidPosition};
use crate::store::deploy_events::{PublishedEvent, list_after};

/// Events read from the database per query while catching up.
const CATCH_UP_PAGE: i64 = 500;
/// Reconnection delay suggested to SSE clients.
const RETRY_HINT: Duration = Duration::from_secs(2);

pub fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(deploy_events))
        .routes(routes!(firehose))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventsParams {
    /// Only events with a greater seq (`Last-Event-ID` wins over it on SSE reconnects); 0 to the
    /// deploy's `last_event_seq`, beyond it a 400.
    #[param(minimum = 0, maximum = 9_223_372_036_854_775_807_i64)]
    pub after: Option<i64>,
    /// JSON pages only: page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    pub items: Vec<Event>,
    /// Pass as `after` for the next page; absent when no more events are stored yet.
    pub next_after: Option<i64>,
}

/// The end of a deploy's stream, sent after its terminal event.
#[derive(Debug, Serialize, ToSchema)]
pub struct StreamEnd {
    pub last_seq: i64,
}

fn wants_json(headers: &HeaderMap) -> bool {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    accept.contains("application/json") && !accept.contains("text/event-stream")
}

/// The seq to resume after: `Last-Event-ID`, else `after`, else 0. A seq the deploy has not
/// reached is refused: events are committed before anyone can see their seq, so no client holds
/// one beyond `last_seq`, and a stream waiting for it would never end.
fn resume_point(headers: &HeaderMap, after: Option<i64>, last_seq: i64) -> Result<i64, ApiError> {
    let invalid = |field: &str| ApiError::BadRequest {
        detail: "invalid resume point".into(),
        errors: vec![FieldError::new(
            field,
            format!("must be a seq of this deploy's events, 0 to {last_seq}"),
        )],
    };
    let (field, seq) = match headers.get("last-event-id") {
        Some(value) => (
            "Last-Event-ID",
            value
                .to_str()
                .ok()
                .and_then(|text| text.trim().parse::<i64>().ok()),
        ),
        None => ("after", Some(after.unwrap_or(0))),
    };
    seq.filter(|seq| (0..=last_seq).contains(seq))
        .ok_or_else(|| invalid(field))
}

/// An SSE frame from the event's JSON (serialized once per event, not once per subscriber).
fn sse_event(event: &Event, json: &str, id: String) -> SseEvent {
    SseEvent::default()
        .id(id)
        .event(event.kind.as_str())
        .data(json)
}

fn end_event(last_seq: i64) -> SseEvent {
    SseEvent::default()
        .event("end")
        .json_data(StreamEnd { last_seq })
        .unwrap_or_else(|_| SseEvent::default().event("end"))
}

/// A deploy's events: SSE under `Accept: text/event-stream` (the default), JSON pages under
/// `Accept: application/json`. Events of a deploy finished long ago may have been pruned by the
/// retention policy (log lines first; its terminal event and `report` are kept): a stream or a
/// page resumed inside the gap continues with the next kept event, and a stream still ends with
/// the terminal event and `end`.
#[utoipa::path(get, path = "/v1/deploys/{id}/events", tag = "events",
    params(("id" = Uuid, Path), EventsParams,
        ("Last-Event-ID" = Option<i64>, Header, minimum = 0, maximum = 9_223_372_036_854_775_807_i64, description = "Resume after this seq (0 to the deploy's `last_event_seq`; beyond it a 400)")),
    responses(
        (status = 200, content(
            (String = "text/event-stream"),
            (EventPage = "application/json"),
        ), description = "SSE: `id: <seq>`, `event: <type>`, JSON data (an `Event`); after the terminal event an `end` event (a `StreamEnd`)"),
        AuthProblems, ParameterProblems, NotFoundProblem,
    ))]
async fn deploy_events(
    State(state): State<ApiState>,
    auth: Auth,
    Path(id): Path<String>,
    Query(params): Query<EventsParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let deploy = authorized_deploy(&state, &auth, &id, Scope::Read).await?;
    if wants_json(&headers) {
        let after = resume_point(&HeaderMap::new(), params.after, deploy.last_event_seq)?;
        let limit = page::DEPLOY_EVENTS.limit(params.limit)?;
        let items = list_after(&state.pool, deploy.id, after, limit).await?;
        let next_after = (items.len() as i64 == limit)
            .then(|| items.last().map(|e| e.seq))
            .flatten();
        return Ok(axum::Json(EventPage { items, next_after }).into_response());
    }
    let after = resume_point(&headers, params.after, deploy.last_event_seq)?;
    let already_ended = deploy.status.is_terminal() && after == deploy.last_event_seq;
    let stream = deploy_stream(state.clone(), deploy.id, after, already_ended);
    let stream = until_revoked(stream, state.revocations.clone(), auth.0);
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(state.limits.sse_keep_alive))
        .into_response())
}

/// Ends `stream` when the token it was opened with is revoked or expires.
fn until_revoked<S: Stream>(
    stream: S,
    revocations: Revocations,
    principal: Principal,
) -> impl Stream<Item = S::Item> {
    stream.take_until(async move { revocations.ended(&principal).await })
}

/// Catches up from the database after the cursor, then follows live events, deduplicating by seq.
/// A gap, a lagging receiver or a resync request sends it back to the database, so a client sees
/// every committed event exactly once and in order.
fn deploy_stream(
    state: ApiState,
    deploy_id: Uuid,
    after: i64,
    already_ended: bool,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    async_stream::stream! {
        let _subscriber = state.metrics.sse_subscriber();
        yield Ok(SseEvent::default().retry(RETRY_HINT));
        if already_ended {
            yield Ok(end_event(after));
            return;
        }
        // Subscribed before reading the database: nothing committed meanwhile can slip through.
        let mut live = state.events.follow_deploy(deploy_id);
        let shutdown = state.shutdown.clone();
        let mut last = after;
        'catch_up: loop {
            loop {
                let page = match list_after(&state.pool, deploy_id, last, CATCH_UP_PAGE).await {
                    Ok(page) => page,
                    Err(error) => {
                        tracing::warn!(%deploy_id, %error, "event stream ended: reading events failed");
                        return;
                    }
                };
                let full = page.len() as i64 == CATCH_UP_PAGE;
                for event in page {
                    last = event.seq;
                    let json = serde_json::to_string(&event).unwrap_or_default();
                    yield Ok(sse_event(&event, &json, event.seq.to_string()));
                    if event.kind.is_terminal() {
                        yield Ok(end_event(last));
                        return;
                    }
                }
                if !full {
                    break;
                }
            }
            loop {
                let message = tokio::select! {
                    () = shutdown.cancelled() => return,
                    message = live.recv() => message,
                };
                match message {
                    Ok(BusMessage::Event(published)) => {
                        let event = &published.event;
                        if event.seq <= last {
                            continue;
                        }
                        if event.seq > last + 1 {
                            continue 'catch_up;
                        }
                        last = event.seq;
                        yield Ok(sse_event(event, published.json(), event.seq.to_string()));
                        if event.kind.is_terminal() {
                            yield Ok(end_event(last));
                            return;
                        }
                    }
                    Ok(BusMessage::Resync) => continue 'catch_up,
                    Err(RecvError::Lagged(_)) => {
                        state.metrics.sse_lagged();
                        continue 'catch_up;
                    }
                    Err(RecvError::Closed) => return,
                }
            }
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FirehoseParams {
    pub cluster: Option<String>,
    pub namespace: Option<String>,
    pub release: Option<String>,
    /// Only events of these types: a comma-separated list of types and families of them, e.g.
    /// `deploy.*,phase` (a dashboard that lists deploys needs no log lines).
    #[serde(rename = "type")]
    #[param(schema_with = EventType::selection_schema)]
    pub types: Option<String>,
    /// Resume after this position (an SSE `id:` of this stream); `Last-Event-ID` wins over it.
    pub after: Option<String>,
}

/// The position a firehose stream resumes after: `Last-Event-ID`, else `after`, else none (now).
fn firehose_cursor(
    headers: &HeaderMap,
    after: Option<&str>,
) -> Result<Option<(&'static str, FirehosePosition)>, ApiError> {
    let (field, text) = match headers.get("last-event-id") {
        Some(value) => ("Last-Event-ID", value.to_str().ok()),
        None => match after {
            Some(after) => ("after", Some(after)),
            None => return Ok(None),
        },
    };
    let invalid = |message: String| ApiError::BadRequest {
        detail: "invalid resume point".into(),
        errors: vec![FieldError::new(field, message)],
    };
    let position = text
        .ok_or(InvalidPosition)
        .and_then(str::parse)
        .map_err(|error: InvalidPosition| invalid(error.to_string()))?;
    Ok(Some((field, position)))
}

/// Events of every deploy readable by the token (dashboards), optionally of some deploys or types
/// only: live, or resumed after a position without losing or repeating one.
#[utoipa::path(get, path = "/v1/events", tag = "events",
    params(FirehoseParams,
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this position: the last SSE `id:` received from this stream (on any replica). A position this stream never handed out is a 400")),
    responses(
        (status = 200, content_type = "text/event-stream", body = String, description = "SSE: `event: <type>`, the event as JSON `data`, and `id: <position>`, the stream's cursor: `<order_xid>:<deploy id>:<seq>` (opaque to clients; the stream opens with an `id:` of its own, so that a client reconnecting before any event resumes from where it connected). Events arrive in the order of their transactions' ids, each delivered once every transaction that started before it has ended: a reconnecting client that sends back the last `id:` as `Last-Event-ID` receives every event committed after it exactly once, whatever the replica, however late a concurrent transaction commits. Within a deploy, events keep their `seq` order. A slow client is never dropped: it catches up from the database"),
        AuthProblems, ParameterProblems,
    ))]
async fn firehose(
    State(state): State<ApiState>,
    auth: Auth,
    Query(params): Query<FirehoseParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    auth.require_scope(Scope::Read)?;
    let types = match params.types.as_deref().map(EventType::select) {
        None => None,
        Some(Ok(types)) => Some(types),
        Some(Err(message)) => {
            return Err(ApiError::invalid_query(vec![FieldError::new(
                "type", message,
            )]));
        }
    };
    let cursor = firehose_cursor(&headers, params.after.as_deref())?;
    let follower = state.events.follow_firehose();
    let start = match follower.start(cursor.map(|(_, position)| position)).await {
        Ok(start) => start,
        Err(FollowError::Ahead(position)) => {
            let field = cursor.map_or("after", |(field, _)| field);
            return Err(ApiError::BadRequest {
                detail: "invalid resume point".into(),
                errors: vec![FieldError::new(
                    field,
                    format!("{position} is not a position this stream handed out"),
                )],
            });
        }
        Err(FollowError::Store(error)) => return Err(error.into()),
    };
    let principal = auth.0.clone();
    let wanted = move |published: &PublishedEvent| {
        let matches =
            |wanted: &Option<String>, actual: &str| wanted.as_deref().is_none_or(|w| w == actual);
        let release = &published.release;
        matches(&params.cluster, &release.cluster)
            && matches(&params.namespace, &release.namespace)
            && matches(&params.release, &release.release)
            && types
                .as_ref()
                .is_none_or(|types| types.contains(&published.event.kind))
            && principal.allows(Scope::Read, release)
    };
    let events = follower.events(start, wanted, state.shutdown.clone());
    let metrics = state.metrics.clone();
    let stream = async_stream::stream! {
        let _subscriber = metrics.sse_subscriber();
        yield Ok::<_, Infallible>(SseEvent::default().retry(RETRY_HINT).id(start.position().to_string()));
        for await published in events {
            yield Ok(sse_event(&published.event, published.json(), published.position().to_string()));
        }
    };
    let stream = until_revoked(stream, state.revocations.clone(), auth.0);
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(state.limits.sse_keep_alive))
        .into_response())
}
