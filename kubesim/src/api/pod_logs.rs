//! `GET .../pods/{name}/log`: `container`, `previous`, `tailLines`, `sinceSeconds`, `timestamps`,
//! `follow` (streams until the container instance ends or the pod goes).

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{SecondsFormat, Utc};
use serde_json::Value;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio_util::sync::CancellationToken;

use crate::api::error::ApiError;
use crate::api::{ApiState, Target};
use crate::logs::{ContainerRef, LogLine};
use crate::store::{PODS, StoredEvent, WatchEventType};

type Params = HashMap<String, String>;

fn container_names(pod: &Value) -> Vec<String> {
    ["/spec/initContainers", "/spec/containers"]
        .iter()
        .filter_map(|pointer| pod.pointer(pointer).and_then(Value::as_array))
        .flatten()
        .filter_map(|container| {
            container
                .get("name")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .collect()
}

fn container_status<'a>(pod: &'a Value, container: &str) -> Option<&'a Value> {
    ["/status/initContainerStatuses", "/status/containerStatuses"]
        .iter()
        .filter_map(|pointer| pod.pointer(pointer).and_then(Value::as_array))
        .flatten()
        .find(|status| status.get("name").and_then(Value::as_str) == Some(container))
}

fn restart_count(pod: &Value, container: &str) -> u32 {
    container_status(pod, container)
        .and_then(|status| status.get("restartCount"))
        .and_then(Value::as_u64)
        .and_then(|count| u32::try_from(count).ok())
        .unwrap_or(0)
}

fn waiting_reason(pod: &Value, container: &str) -> Option<String> {
    let status = container_status(pod, container);
    match status {
        None => Some("ContainerCreating".into()),
        Some(status) => status.pointer("/state/waiting").map(|waiting| {
            waiting
                .get("reason")
                .and_then(Value::as_str)
                .unwrap_or("ContainerCreating")
                .to_owned()
        }),
    }
}

fn render(line: &LogLine, timestamps: bool) -> Bytes {
    let text = if timestamps {
        format!(
            "{} {}\n",
            line.at.to_rfc3339_opts(SecondsFormat::Nanos, true),
            line.text
        )
    } else {
        format!("{}\n", line.text)
    };
    Bytes::from(text)
}

pub(crate) async fn serve(
    state: &ApiState,
    target: &Target,
    params: &Params,
) -> Result<Response, ApiError> {
    // Subscribed before the pod is read, so that a follower cannot miss its container stopping.
    let pod_events = state.store.subscribe();
    let namespace = target.namespace.clone().unwrap_or_default();
    let name = target.name()?.to_owned();
    let pod = state
        .store
        .get(&PODS, Some(&namespace), &name)
        .ok_or_else(|| super::not_found(&PODS, &name))?;
    let containers = container_names(&pod);
    let container = match params.get("container") {
        Some(container) if containers.contains(container) => container.clone(),
        Some(container) => {
            return Err(ApiError::BadRequest(format!(
                "container {container} is not valid for pod {name}"
            )));
        }
        None if containers.len() == 1 => containers[0].clone(),
        None => {
            return Err(ApiError::BadRequest(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                containers.join(" ")
            )));
        }
    };
    let restarts = restart_count(&pod, &container);
    let previous = super::flag(params, "previous");
    let waiting = waiting_reason(&pod, &container);
    // The run `lastState.terminated` describes (the kubelet serves it for `previous`): while the
    // container waits to restart (CrashLoopBackOff) `restartCount` still numbers that run, once it
    // runs again the run before.
    let last_terminated = container_status(&pod, &container)
        .and_then(|status| status.pointer("/lastState/terminated"))
        .and_then(|_| {
            if waiting.is_some() {
                Some(restarts)
            } else {
                restarts.checked_sub(1)
            }
        });
    let instance = if previous {
        last_terminated.ok_or_else(|| {
            ApiError::BadRequest(format!(
                "previous terminated container \"{container}\" in pod \"{name}\" not found"
            ))
        })?
    } else if let Some(reason) = waiting.as_deref() {
        // A container waiting to restart (CrashLoopBackOff) shows its last run, as the kubelet does.
        last_terminated.ok_or_else(|| {
            ApiError::BadRequest(format!(
                "container \"{container}\" in pod \"{name}\" is waiting to start: {reason}"
            ))
        })?
    } else {
        restarts
    };
    let timestamps = super::flag(params, "timestamps");
    let since = params
        .get("sinceSeconds")
        .and_then(|seconds| seconds.parse::<i64>().ok())
        .map(|seconds| Utc::now() - chrono::Duration::seconds(seconds));
    let (lines, appended) = state
        .logs
        .lines_and_subscribe(&namespace, &name, &container, instance);
    let mut lines: VecDeque<LogLine> = lines
        .into_iter()
        .filter(|line| since.is_none_or(|since| line.at >= since))
        .collect();
    if let Some(tail) = params
        .get("tailLines")
        .and_then(|tail| tail.parse::<usize>().ok())
    {
        while lines.len() > tail {
            lines.pop_front();
        }
    }
    let rendered: VecDeque<Bytes> = lines.iter().map(|line| render(line, timestamps)).collect();
    let follow = super::flag(params, "follow") && !previous && waiting.is_none();
    let headers = [(header::CONTENT_TYPE, "text/plain")];
    if !follow {
        let body: Vec<u8> = rendered
            .into_iter()
            .flat_map(|bytes| bytes.to_vec())
            .collect();
        return Ok((headers, body).into_response());
    }
    let follower = Follower {
        container: ContainerRef::new(&namespace, &name, &container),
        instance,
        timestamps,
        pending: rendered,
        appended,
        pod_events,
        shutdown: state.shutdown.clone(),
        finished: false,
    };
    let frames = futures::stream::unfold(follower, |mut follower| async move {
        let bytes = follower.next().await?;
        Some((Ok::<_, Infallible>(bytes), follower))
    });
    Ok((headers, Body::from_stream(frames)).into_response())
}

struct Follower {
    container: ContainerRef,
    instance: u32,
    timestamps: bool,
    pending: VecDeque<Bytes>,
    appended: broadcast::Receiver<(ContainerRef, LogLine)>,
    pod_events: broadcast::Receiver<StoredEvent>,
    shutdown: CancellationToken,
    finished: bool,
}

impl Follower {
    /// Whether this event ends the stream: the pod went, or the followed container instance stopped.
    fn ends(&self, event: &StoredEvent) -> bool {
        if event.resource != PODS
            || event.name() != self.container.pod
            || event.namespace() != Some(self.container.namespace.as_str())
        {
            return false;
        }
        if event.event_type == WatchEventType::Deleted {
            return true;
        }
        let status = container_status(&event.object, &self.container.container);
        let restarted = restart_count(&event.object, &self.container.container) > self.instance;
        let terminated = status.is_some_and(|status| status.pointer("/state/terminated").is_some());
        restarted || terminated
    }

    async fn next(&mut self) -> Option<Bytes> {
        loop {
            if let Some(bytes) = self.pending.pop_front() {
                return Some(bytes);
            }
            if self.finished {
                return None;
            }
            tokio::select! {
                _ = self.shutdown.cancelled() => return None,
                line = self.appended.recv() => match line {
                    Ok((container, line)) if container == self.container && line.restart_count == self.instance => {
                        self.pending.push_back(render(&line, self.timestamps));
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return None,
                },
                event = self.pod_events.recv() => match event {
                    Ok(event) if self.ends(&event) => {
                        // Lines the kubelet wrote before stopping the container may still be queued.
                        while let Ok((container, line)) = self.appended.try_recv() {
                            if container == self.container && line.restart_count == self.instance {
                                self.pending.push_back(render(&line, self.timestamps));
                            }
                        }
                        self.finished = true;
                    }
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return None,
                },
            }
        }
    }
}
