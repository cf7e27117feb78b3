//! Watches: newline-delimited JSON frames `{"type": ..., "object": ...}` (kubernetes-behaviour.md §7.1).
//!
//! - `resourceVersion` unset or `0`: synthetic ADDED for every existing object, then changes.
//! - `resourceVersion=N`: the changes after N; a compacted N gets one `ERROR` frame with a 410 `Expired`
//!   Status, as the watch cache sends it.
//! - `sendInitialEvents=true` (streaming list, helm 4 `--wait`, kubectl `rollout status`): ADDED for every
//!   object, then a BOOKMARK annotated `k8s.io/initial-events-end: "true"`, then changes.
//! - `allowWatchBookmarks=true`: periodic BOOKMARKs with the latest resourceVersion.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::api::error::ApiError;
use crate::api::{ApiState, Selectors, TableFormat, Target};
use crate::store::{ResourceType, StoreError, StoredEvent};

/// The apiserver picks 30–60 minutes when the client gives no timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(30);

fn frame(event_type: &str, object: &Value) -> Bytes {
    let mut line =
        serde_json::to_vec(&json!({"type": event_type, "object": object})).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

fn bookmark(rt: &ResourceType, resource_version: u64, initial_events_end: bool) -> Bytes {
    let mut metadata = json!({"resourceVersion": resource_version.to_string()});
    if initial_events_end {
        metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    frame(
        "BOOKMARK",
        &json!({"kind": rt.kind, "apiVersion": rt.api_version(), "metadata": metadata}),
    )
}

struct Watch {
    rt: ResourceType,
    namespace: Option<String>,
    /// A single object, from `metadata.name` in the URL (legacy `/watch/.../name`).
    name: Option<String>,
    selectors: Selectors,
    pending: VecDeque<Bytes>,
    events: broadcast::Receiver<StoredEvent>,
    /// Changes up to this resourceVersion were already sent (or are in the initial snapshot).
    sent_up_to: u64,
    bookmarks: bool,
    /// `kubectl get -w` asks for each object as a one-row Table.
    format: Option<TableFormat>,
    deadline: Instant,
    dropped: CancellationToken,
    shutdown: CancellationToken,
}

impl Watch {
    fn wants(&self, event: &StoredEvent) -> bool {
        event.resource == self.rt
            && event.resource_version > self.sent_up_to
            && self
                .namespace
                .as_deref()
                .is_none_or(|ns| event.namespace() == Some(ns))
            && self.name.as_deref().is_none_or(|name| event.name() == name)
            && self.selectors.matches(&event.object)
    }

    fn object_frame(&self, event_type: &str, object: &Value, resource_version: u64) -> Bytes {
        match self.format {
            Some(format) => frame(
                event_type,
                &format.table(&self.rt, std::slice::from_ref(object), resource_version),
            ),
            None => frame(event_type, object),
        }
    }

    fn queue(&mut self, event: &StoredEvent) {
        if self.wants(event) {
            let frame = self.object_frame(
                event.event_type.as_str(),
                &event.object,
                event.resource_version,
            );
            self.pending.push_back(frame);
        }
        self.sent_up_to = self.sent_up_to.max(event.resource_version);
    }

    /// The next frame, or `None` when the watch ends (timeout, dropped, shutdown, or fallen behind:
    /// the client then resumes from its last resourceVersion).
    async fn next_frame(&mut self, ticker: &mut tokio::time::Interval) -> Option<Bytes> {
        loop {
            if let Some(frame) = self.pending.pop_front() {
                return Some(frame);
            }
            tokio::select! {
                _ = self.dropped.cancelled() => return None,
                _ = self.shutdown.cancelled() => return None,
                _ = tokio::time::sleep_until(self.deadline) => return None,
                _ = ticker.tick(), if self.bookmarks => {
                    self.pending.push_back(bookmark(&self.rt, self.sent_up_to, false));
                }
                received = self.events.recv() => match received {
                    Ok(event) => self.queue(&event),
                    Err(RecvError::Lagged(_) | RecvError::Closed) => return None,
                },
            }
        }
    }
}

type Params = HashMap<String, String>;

pub(crate) fn serve(
    state: &ApiState,
    target: &Target,
    params: &Params,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let format = super::table_format(headers, params);
    let rt = *target.rt();
    let selectors = Selectors::parse(&rt, params)?;
    let timeout = params
        .get("timeoutSeconds")
        .and_then(|seconds| seconds.parse::<u64>().ok())
        .map_or(DEFAULT_TIMEOUT, Duration::from_secs);
    let bookmarks = super::flag(params, "allowWatchBookmarks");
    let send_initial_events = super::flag(params, "sendInitialEvents");
    let resource_version = params
        .get("resourceVersion")
        .filter(|rv| !rv.is_empty() && rv.as_str() != "0")
        .map(|rv| {
            rv.parse::<u64>()
                .map_err(|_| ApiError::BadRequest(format!("invalid resourceVersion {rv:?}")))
        })
        .transpose()?;
    let dropped = state.admin.watch_token(super::user_agent(headers));

    let mut initial = Vec::new();
    let mut initial_events_end = None;
    let (events, sent_up_to, missed) = match resource_version {
        Some(resource_version) if !send_initial_events => {
            match state.store.watch_since(resource_version) {
                Ok((missed, events)) => (events, resource_version, missed),
                Err(error @ StoreError::Gone { .. }) => {
                    let status = ApiError::from(error).status();
                    return Ok(json_stream_response(Body::from(frame("ERROR", &status))));
                }
                Err(error) => return Err(error.into()),
            }
        }
        _ => {
            let (objects, revision, events) = state
                .store
                .list_and_subscribe(&rt, target.namespace.as_deref());
            let name_matches = |object: &&Value| {
                target.name.as_deref().is_none_or(|name| {
                    object.pointer("/metadata/name").and_then(Value::as_str) == Some(name)
                })
            };
            initial.extend(
                objects
                    .iter()
                    .map(|object| &**object)
                    .filter(|object| selectors.matches(object))
                    .filter(name_matches)
                    .cloned(),
            );
            if send_initial_events && bookmarks {
                initial_events_end = Some(bookmark(&rt, revision, true));
            }
            (events, revision, Vec::new())
        }
    };
    let mut watch = Watch {
        rt,
        namespace: target.namespace.clone(),
        name: target.name.clone(),
        selectors,
        pending: VecDeque::new(),
        events,
        sent_up_to,
        bookmarks,
        format,
        deadline: Instant::now() + timeout,
        dropped,
        shutdown: state.shutdown.clone(),
    };
    for object in &initial {
        let frame = watch.object_frame("ADDED", object, sent_up_to);
        watch.pending.push_back(frame);
    }
    watch.pending.extend(initial_events_end);
    for event in &missed {
        watch.queue(event);
    }
    Ok(stream(watch))
}

fn json_stream_response(body: Body) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn stream(watch: Watch) -> Response {
    let mut ticker =
        tokio::time::interval_at(Instant::now() + BOOKMARK_INTERVAL, BOOKMARK_INTERVAL);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let frames = futures::stream::unfold((watch, ticker), |(mut watch, mut ticker)| async move {
        let frame = watch.next_frame(&mut ticker).await?;
        Some((Ok::<_, Infallible>(frame), (watch, ticker)))
    });
    json_stream_response(Body::from_stream(frames))
}
