//! Container logs: followed live for the selected containers of current-revision pods, capped per
//! container and per deploy; and the last lines of a failing container for the failure report.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures::{AsyncBufReadExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, LogParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::domain::event::{EventType, Level, NewEvent, ResourceRef};
use crate::domain::policy::LogSelection;

/// How much log a deploy may stream.
#[derive(Debug, Clone)]
pub struct LogLimits {
    pub lines_per_container: u64,
    pub bytes_per_container: u64,
    pub lines_per_deploy: u64,
    pub bytes_per_deploy: u64,
    /// Lines of a failing container kept in the failure report.
    pub failure_tail_lines: i64,
}

impl Default for LogLimits {
    fn default() -> Self {
        LogLimits {
            lines_per_container: 1_000,
            bytes_per_container: 256 * 1024,
            lines_per_deploy: 10_000,
            bytes_per_deploy: 2 * 1024 * 1024,
            failure_tail_lines: 50,
        }
    }
}

/// The log streams of one deploy.
pub struct LogStreams {
    client: Client,
    limits: LogLimits,
    budget: Arc<DeployBudget>,
    /// Each container instance is followed once, and can be stopped on its own.
    started: HashMap<ContainerInstance, CancellationToken>,
    events: mpsc::Sender<NewEvent>,
    tasks: TaskTracker,
    stop: CancellationToken,
}

/// A container instance: (pod uid, container, restart count).
pub type ContainerInstance = (String, String, i32);

#[derive(Default)]
struct DeployBudget {
    lines: AtomicU64,
    bytes: AtomicU64,
    exhausted: AtomicBool,
}

impl LogStreams {
    pub fn new(client: Client, limits: LogLimits, events: mpsc::Sender<NewEvent>) -> Self {
        LogStreams {
            client,
            limits,
            budget: Arc::new(DeployBudget::default()),
            started: HashMap::new(),
            events,
            tasks: TaskTracker::new(),
            stop: CancellationToken::new(),
        }
    }

    /// Starts following the containers `selection` wants in the first replicas among `current_pods`
    /// (by name, `show-logs-only-for-number-of-replicas` of them), once each container has started.
    pub fn follow<'a>(
        &mut self,
        resource: &ResourceRef,
        selection: &LogSelection,
        current_pods: impl Iterator<Item = &'a Pod>,
    ) {
        if selection.skip_logs || self.budget.exhausted.load(Ordering::Relaxed) {
            return;
        }
        let mut pods: Vec<&Pod> = current_pods.collect();
        pods.sort_by_key(|pod| pod.name_any());
        let replicas =
            usize::try_from(selection.show_logs_only_for_number_of_replicas).unwrap_or(usize::MAX);
        let filter = selection
            .log_regex
            .as_ref()
            .and_then(|regex| regex::Regex::new(regex.as_str()).ok());
        for pod in pods.into_iter().take(replicas) {
            for (container, restarts) in started_containers(pod) {
                if !selection.wants_container(&container) {
                    continue;
                }
                let instance = (pod.uid().unwrap_or_default(), container.clone(), restarts);
                if self.started.contains_key(&instance) {
                    continue;
                }
                let stop = self.stop.child_token();
                self.started.insert(instance, stop.clone());
                let target = LogTarget {
                    resource: resource.clone(),
                    namespace: pod.namespace().unwrap_or_default(),
                    pod: pod.name_any(),
                    container,
                };
                self.tasks.spawn(stream_container(
                    self.client.clone(),
                    target,
                    filter.clone(),
                    self.limits.clone(),
                    Arc::clone(&self.budget),
                    self.events.clone(),
                    stop,
                ));
            }
        }
    }

    /// Ends every stream and waits for them, so that no log line follows the final report. The
    /// streams of instances that have `finished` end on their own once their log is read to the end:
    /// they get up to `grace` (unless `cancel` fires) so that a container that finished just before
    /// the verdict keeps its lines; the others stop at once.
    pub async fn finish(
        &self,
        finished: impl Fn(&ContainerInstance) -> bool,
        grace: Duration,
        cancel: &CancellationToken,
    ) {
        for (instance, stop) in &self.started {
            if !finished(instance) {
                stop.cancel();
            }
        }
        self.tasks.close();
        tokio::select! {
            () = self.tasks.wait() => {}
            () = tokio::time::sleep(grace) => {}
            () = cancel.cancelled() => {}
        }
        self.stop.cancel();
        self.tasks.wait().await;
    }
}

/// Containers that have started (running or terminated), with their restart counts: only those
/// have logs to read.
fn started_containers(pod: &Pod) -> Vec<(String, i32)> {
    let statuses = pod
        .status
        .as_ref()
        .and_then(|status| status.container_statuses.as_ref());
    statuses
        .into_iter()
        .flatten()
        .filter(|status| {
            status
                .state
                .as_ref()
                .is_some_and(|state| state.running.is_some() || state.terminated.is_some())
        })
        .map(|status| (status.name.clone(), status.restart_count))
        .collect()
}

struct LogTarget {
    resource: ResourceRef,
    namespace: String,
    pod: String,
    container: String,
}

impl LogTarget {
    fn event(
        &self,
        kind: EventType,
        level: Level,
        message: String,
        data: serde_json::Value,
    ) -> NewEvent {
        let mut data = data;
        data["pod"] = json!(self.pod);
        data["container"] = json!(self.container);
        NewEvent::new(kind, message)
            .level(level)
            .resource(self.resource.clone())
            .data(data)
    }
}

async fn stream_container(
    client: Client,
    target: LogTarget,
    filter: Option<regex::Regex>,
    limits: LogLimits,
    budget: Arc<DeployBudget>,
    events: mpsc::Sender<NewEvent>,
    stop: CancellationToken,
) {
    let api: Api<Pod> = Api::namespaced(client, &target.namespace);
    let params = LogParams {
        container: Some(target.container.clone()),
        follow: true,
        ..LogParams::default()
    };
    let reader = tokio::select! {
        () = stop.cancelled() => return,
        reader = api.log_stream(&target.pod, &params) => reader,
    };
    let reader = match reader {
        Ok(reader) => reader,
        Err(error) => {
            // The container may be gone already: its failure logs are fetched separately.
            tracing::debug!(pod = %target.pod, container = %target.container, %error, "log stream not opened");
            return;
        }
    };
    let mut lines = reader.lines();
    let (mut container_lines, mut container_bytes) = (0_u64, 0_u64);
    loop {
        let line = tokio::select! {
            () = stop.cancelled() => return,
            line = lines.next() => line,
        };
        let Some(Ok(line)) = line else { return };
        if filter
            .as_ref()
            .is_some_and(|filter| !filter.is_match(&line))
        {
            continue;
        }
        let size = u64::try_from(line.len()).unwrap_or(u64::MAX);
        container_lines += 1;
        container_bytes += size;
        if container_lines > limits.lines_per_container
            || container_bytes > limits.bytes_per_container
        {
            let message = format!(
                "log cap reached for container {} of pod {}: {} lines / {} bytes per container; further lines are not shown",
                target.container,
                target.pod,
                limits.lines_per_container,
                limits.bytes_per_container
            );
            let _closed = events
                .send(target.event(
                    EventType::LogCapped,
                    Level::Warning,
                    message,
                    json!({"cap": "container", "lines": limits.lines_per_container, "bytes": limits.bytes_per_container}),
                ))
                .await;
            return;
        }
        let deploy_lines = budget.lines.fetch_add(1, Ordering::Relaxed) + 1;
        let deploy_bytes = budget.bytes.fetch_add(size, Ordering::Relaxed) + size;
        if deploy_lines > limits.lines_per_deploy || deploy_bytes > limits.bytes_per_deploy {
            if !budget.exhausted.swap(true, Ordering::Relaxed) {
                let message = format!(
                    "log cap reached for this deploy: {} lines / {} bytes; further lines are not shown",
                    limits.lines_per_deploy, limits.bytes_per_deploy
                );
                let _closed = events
                    .send(target.event(
                        EventType::LogCapped,
                        Level::Warning,
                        message,
                        json!({"cap": "deploy", "lines": limits.lines_per_deploy, "bytes": limits.bytes_per_deploy}),
                    ))
                    .await;
            }
            return;
        }
        if events
            .send(target.event(EventType::ContainerLog, Level::Info, line, json!({})))
            .await
            .is_err()
        {
            return;
        }
    }
}

/// The last lines of a container, for a failure report: the previous instance for a crash loop
/// (`kubectl logs --previous`). When the preferred instance has nothing (no previous instance yet, or
/// the container restarted since the crash was seen) the other one is read.
pub async fn last_lines(
    client: &Client,
    namespace: &str,
    pod: &str,
    container: Option<&str>,
    previous: bool,
    lines: i64,
) -> Result<Vec<String>, kube::Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let read = |previous| {
        let params = LogParams {
            container: container.map(str::to_owned),
            previous,
            tail_lines: Some(lines),
            ..LogParams::default()
        };
        let api = api.clone();
        async move { api.logs(pod, &params).await }
    };
    let preferred = read(previous).await;
    if let Ok(text) = &preferred
        && !text.is_empty()
    {
        return Ok(text.lines().map(str::to_owned).collect());
    }
    match read(!previous).await {
        Ok(text) if !text.is_empty() => Ok(text.lines().map(str::to_owned).collect()),
        other => preferred
            .or(other)
            .map(|text| text.lines().map(str::to_owned).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_started_containers_have_logs() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web-1", "uid": "u1"},
            "status": {"containerStatuses": [
                {"name": "app", "image": "i", "imageID": "", "ready": false, "restartCount": 2,
                 "state": {"terminated": {"exitCode": 1}}},
                {"name": "sidecar", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                 "state": {"waiting": {"reason": "ContainerCreating"}}},
                {"name": "proxy", "image": "i", "imageID": "", "ready": true, "restartCount": 0,
                 "state": {"running": {}}}
            ]}
        }))
        .expect("valid pod");
        assert_eq!(
            started_containers(&pod),
            [("app".to_owned(), 2), ("proxy".to_owned(), 0)]
        );
    }
}
