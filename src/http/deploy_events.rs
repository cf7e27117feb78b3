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
use crate::bus::BusMessage;
use crate::domain::FieldError;
use crate::domain::auth::{Principal, Scope};
use crate::domain::event::{Event, EventType};
use crate::store::deploy_events::list_after;

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
/// `Accept: application/json`.
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
        let mut live = state.events.subscribe();
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
                    Ok(BusMessage::Event(published)) if published.event.deploy_id == deploy_id => {
                        let event = &published.event;
                        if event.seq <= last {
                            continue;
                        }
                        if event.seq > last + 1 {
                            continue 'catch_up;
                        }
                        last = event.seq;
                        yield Ok(sse_event(event, &published.json, event.seq.to_string()));
                        if event.kind.is_terminal() {
                            yield Ok(end_event(last));
                            return;
                        }
                    }
                    Ok(BusMessage::Event(_)) => {}
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
}

/// Live events of every deploy readable by the token (dashboards), optionally of some types only.
/// SSE ids are `<deploy id>:<seq>`; a consumer that falls behind receives a `lagged` event with the
/// number of events it missed.
#[utoipa::path(get, path = "/v1/events", tag = "events", params(FirehoseParams),
    responses(
        (status = 200, content_type = "text/event-stream", body = String, description = "SSE: `id: <deploy id>:<seq>`, `event: <type>`, JSON data (an `Event`); a consumer that fell behind gets a `lagged` event, `{\"missed\": <count>}`"),
        AuthProblems, ParameterProblems,
    ))]
async fn firehose(
    State(state): State<ApiState>,
    auth: Auth,
    Query(params): Query<FirehoseParams>,
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
    let keep_alive = state.limits.sse_keep_alive;
    let revocations = state.revocations.clone();
    let principal = auth.0.clone();
    let stream = async_stream::stream! {
        let _subscriber = state.metrics.sse_subscriber();
        yield Ok::<_, Infallible>(SseEvent::default().retry(RETRY_HINT));
        let mut live = state.events.subscribe();
        let shutdown = state.shutdown.clone();
        loop {
            let message = tokio::select! {
                () = shutdown.cancelled() => return,
                message = live.recv() => message,
            };
            match message {
                Ok(BusMessage::Event(published)) => {
                    let matches = |wanted: &Option<String>, actual: &str| wanted.as_deref().is_none_or(|w| w == actual);
                    let release = &published.release;
                    let visible = matches(&params.cluster, &release.cluster)
                        && matches(&params.namespace, &release.namespace)
                        && matches(&params.release, &release.release)
                        && types.as_ref().is_none_or(|types| types.contains(&published.event.kind))
                        && principal.allows(Scope::Read, release);
                    if visible {
                        let event = &published.event;
                        yield Ok(sse_event(event, &published.json, format!("{}:{}", event.deploy_id, event.seq)));
                    }
                }
                Ok(BusMessage::Resync) => {}
                Err(RecvError::Lagged(missed)) => {
                    state.metrics.sse_lagged();
                    yield Ok(SseEvent::default().event("lagged").data(format!("{{\"missed\":{missed}}}")));
                }
                Err(RecvError::Closed) => return,
            }
        }
    };
    let stream = until_revoked(stream, revocations, auth.0);
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(keep_alive))
        .into_response())
}
