//! `track()`: follows a release's resources through shared watches into the decision core, and turns
//! what the core decides into §3 events, ending with a report.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use futures::stream::{self, Stream, StreamExt};
use k8s_openapi::api::apps::v1::{ControllerRevision, ReplicaSet};
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::ResourceExt;
use kube::api::{Api, DynamicObject};
use kube::discovery::{ApiResource, Scope};
use serde::Serialize;
use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::deltas::{event_of, to_json};
use super::logs::{ContainerInstance, LogLimits, LogStreams, last_lines};
use super::{Observation, WatchBackoff, WatchHold, WatchHub, api_resource};
use crate::domain::event::{EventType, Level, NewEvent, ResourceRef};
use crate::domain::verdict::{VerdictDetail, VerdictReason};
use crate::telemetry::ApiCall;
use crate::tracker::core::{
    Change, CustomResourceRules, Delta, DeployTracker, ResourceKey, ResourceReport,
    ResourceTracker, State, TrackedObject, TrackedResource, Verdict,
};

/// Events buffered between the tracker and the runner persisting them.
const EVENT_BUFFER: usize = 1024;
/// How long, after a successful verdict, the log streams of finished containers may take to deliver
/// their last lines (they end on their own once the log is read to the end).
const LOG_DRAIN_GRACE: Duration = Duration::from_secs(2);

/// When tracking gives up.
#[derive(Debug, Clone)]
pub struct Deadlines {
    /// The whole tracking: past it the outcome is `timed_out`.
    pub overall: Duration,
    /// How often the core is asked about time-based rules (no-activity timeout, settle windows).
    pub tick: Duration,
}

impl Default for Deadlines {
    fn default() -> Self {
        Deadlines {
            overall: Duration::from_secs(15 * 60),
            tick: Duration::from_secs(1),
        }
    }
}

/// Everything `track()` can be tuned with.
#[derive(Debug, Clone, Default)]
pub struct TrackOptions {
    pub deadlines: Deadlines,
    pub logs: LogLimits,
    /// When the deploy began (before helm ran): Kubernetes Events older than this are history, not
    /// evidence. Defaults to the moment `track()` is called.
    pub since: Option<DateTime<Utc>>,
    /// How custom resources of configured kinds are read (`[[tracking.custom_resources]]`).
    pub custom_resources: CustomResourceRules,
    /// UIDs of objects left by an earlier run under the same names (a hook Job that helm deletes and
    /// creates anew): they, their pods and their Events are ignored, so that the old object's
    /// completion is not taken for the new one's.
    pub previous_uids: HashSet<String>,
    /// Tracking starts before helm has applied the resources (hooks, followed while helm runs):
    /// reading them now would find the previous run's objects, so they are not read (see
    /// `previous_uids`). Otherwise each resource is read once (a quorum GET) when tracking
    /// starts and none is ready before that read is in: watches joined while running may lag
    /// behind it.
    pub before_apply: bool,
}

/// The tracking task itself failed (it panicked).
#[derive(Debug, thiserror::Error)]
#[error("tracking task failed: {0}")]
pub struct TrackError(#[from] tokio::task::JoinError);

/// How tracking ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum TrackOutcome {
    Succeeded,
    Failed {
        reason: VerdictReason,
        resource: ResourceRef,
        message: String,
        #[serde(skip_serializing_if = "VerdictDetail::is_empty")]
        detail: VerdictDetail,
    },
    /// The overall deadline passed with these blocking resources not settled.
    TimedOut {
        waiting_for: Vec<ResourceRef>,
    },
    Cancelled,
}

/// The final report (also the data of the last event, `report`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrackReport {
    pub outcome: TrackOutcome,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// Per resource: status, failure with evidence (log lines included), incidents.
    pub resources: Vec<ResourceReport>,
    /// Errors of our own API calls, retried (never a verdict).
    pub api_errors: u64,
    /// When tracking received what decided the verdict (a watch event, or a tick of the clock for
    /// time-based rules); `None` without a verdict. The start of the verdict latency.
    #[serde(skip)]
    pub decided_at: Option<std::time::Instant>,
}

impl TrackReport {
    pub fn succeeded(&self) -> bool {
        self.outcome == TrackOutcome::Succeeded
    }
}

/// A running tracking: read its events until they end, then [`Tracking::finish`] for the report.
/// Dropping it stops the tracking.
pub struct Tracking {
    events: mpsc::Receiver<NewEvent>,
    task: JoinHandle<TrackReport>,
    _stop_when_dropped: DropGuard,
}

impl Tracking {
    /// The next event; `None` once the `report` event has been read.
    pub async fn next_event(&mut self) -> Option<NewEvent> {
        self.events.recv().await
    }

    /// Waits for the end, discarding events not read yet, and returns the report.
    pub async fn finish(mut self) -> Result<TrackReport, TrackError> {
        while self.events.recv().await.is_some() {}
        Ok(self.task.await?)
    }
}

/// Starts tracking `resources` (planned with their policies by [`crate::tracker::core::plan`])
/// until every blocking one is ready, one fails as its policy says, the deadline passes, `cancel`
/// fires or the hub shuts down. The tracking task belongs to the hub's task tracker.
pub fn track(
    hub: &WatchHub,
    resources: Vec<TrackedResource>,
    options: TrackOptions,
    cancel: CancellationToken,
) -> Tracking {
    let (sender, events) = mpsc::channel(EVENT_BUFFER);
    // Stopped by the hub's shutdown, by dropping the `Tracking`, or by the caller's `cancel`.
    let stop = hub.inner.shutdown.child_token();
    let run = Run {
        hub: hub.clone(),
        // Event timestamps (lastTimestamp) have whole seconds: an Event of the first second must count.
        started_at: options.since.unwrap_or_else(Utc::now).trunc_subsecs(0),
        options,
        cancel: stop.clone(),
        events: sender,
        api_errors: 0,
        failure_logs: HashMap::new(),
        decided_at: None,
    };
    let stop_when_dropped = stop.clone().drop_guard();
    let task = hub.inner.tasks.spawn(async move {
        let report = run.run(resources);
        tokio::pin!(report);
        tokio::select! {
            report = &mut report => report,
            () = cancel.cancelled() => {
                stop.cancel();
                report.await
            }
        }
    });
    Tracking {
        events,
        task,
        _stop_when_dropped: stop_when_dropped,
    }
}

/// What tracking takes in, each tagged with its index in [`ListGate`].
enum Input {
    /// From a watch.
    Watched(usize, Observation),
    /// A quorum read of a tracked resource (`None`: not found).
    Read(usize, ResourceKey, Option<Arc<DynamicObject>>),
    /// A quorum read failed; it is retried with back-off.
    ReadFailed(String),
}

type Feed = Pin<Box<dyn Stream<Item = Input> + Send>>;
type Inputs = stream::SelectAll<Feed>;

/// Which resources still wait for a first list from one of the watches they depend on, or for
/// their quorum read.
#[derive(Debug, Default)]
struct ListGate {
    listed: Vec<bool>,
    waiting: Vec<(ResourceKey, BTreeSet<usize>)>,
}

impl ListGate {
    /// A new watch (or read); its index.
    fn add_watch(&mut self) -> usize {
        self.listed.push(false);
        self.listed.len() - 1
    }

    fn add_resource(&mut self, key: ResourceKey, watches: BTreeSet<usize>) {
        self.waiting.push((key, watches));
    }

    /// Watch `index` has listed: the resources whose every watch now has.
    fn listed(&mut self, index: usize) -> Vec<ResourceKey> {
        if let Some(listed) = self.listed.get_mut(index) {
            *listed = true;
        }
        let listed = &self.listed;
        let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|(_, watches)| watches.iter().all(|watch| listed[*watch]));
        self.waiting = waiting;
        done.into_iter().map(|(key, _)| key).collect()
    }
}

struct Run {
    hub: WatchHub,
    options: TrackOptions,
    cancel: CancellationToken,
    events: mpsc::Sender<NewEvent>,
    started_at: DateTime<Utc>,
    api_errors: u64,
    /// Last lines of the failing container, per failed resource.
    failure_logs: HashMap<ResourceKey, Vec<String>>,
    decided_at: Option<std::time::Instant>,
}

enum Stop {
    Verdict(Verdict),
    TimedOut,
    Cancelled,
}

impl Stop {
    /// How long the log streams of finished containers may still deliver lines before the report.
    /// After a success, a Job that finished just before the verdict may still be delivering its
    /// lines. A failure does not wait: its evidence already holds the failing container's last
    /// lines (read when it failed), and a kubelet ends the follow stream of an exited container only
    /// at its next state check (every 5 s, `kuberuntime/logs`): waiting would hold the verdict back
    /// for the whole grace.
    fn log_drain_grace(&self) -> Duration {
        match self {
            Stop::Verdict(Verdict::Succeeded) => LOG_DRAIN_GRACE,
            Stop::Verdict(Verdict::Failed { .. }) | Stop::TimedOut | Stop::Cancelled => {
                Duration::ZERO
            }
        }
    }
}

impl Run {
    async fn run(mut self, resources: Vec<TrackedResource>) -> TrackReport {
        let deadline = tokio::time::Instant::now() + self.options.deadlines.overall;
        let mut trackers = Vec::new();
        let mut feeds: Vec<Feed> = Vec::new();
        let mut watched = BTreeMap::new();
        let mut gate = ListGate::default();
        for resource in resources {
            let policy = &resource.policy;
            let Some((api, scope)) = self.discover(&resource, deadline).await else {
                let stop = if self.cancel.is_cancelled() {
                    Stop::Cancelled
                } else {
                    Stop::TimedOut
                };
                return self.finish(&DeployTracker::new(trackers), stop).await;
            };
            let namespace = match scope {
                Scope::Namespaced => resource.namespace.clone(),
                Scope::Cluster => None,
            };
            let key = ResourceKey::new(
                &resource.api_version,
                &resource.kind,
                namespace.as_deref(),
                &resource.name,
            );
            self.emit(
                NewEvent::new(EventType::ResourceAdded, format!("tracking {key}"))
                    .resource(ResourceRef::from(&key))
                    .data(json!({"api_version": key.api_version, "policy": to_json(policy)})),
            )
            .await;
            let mut needs = BTreeSet::new();
            if !self.options.before_apply {
                let index = gate.add_watch();
                feeds.push(self.read_current(index, key.clone(), &api));
                needs.insert(index);
            }
            for (namespace, api) in watches_for(namespace.as_deref(), &api) {
                let watch = (namespace.clone(), api.api_version.clone(), api.kind.clone());
                let index = *watched.entry(watch).or_insert_with(|| {
                    let index = gate.add_watch();
                    feeds.push(self.feed(index, namespace.as_deref(), &api));
                    index
                });
                needs.insert(index);
            }
            gate.add_resource(key.clone(), needs);
            trackers.push(
                ResourceTracker::new(key, policy.clone(), self.started_at)
                    .with_custom_rules(&self.options.custom_resources)
                    .awaiting_initial_lists(),
            );
        }
        let mut deploy = DeployTracker::new(trackers);
        let mut logs = LogStreams::new(
            self.hub.client().clone(),
            self.options.logs.clone(),
            self.events.clone(),
        );
        let mut inputs = stream::select_all(feeds);
        let stop = self
            .follow(&mut deploy, &mut logs, &mut inputs, gate, deadline)
            .await;
        let grace_ends = tokio::time::Instant::now() + stop.log_drain_grace();
        if matches!(stop, Stop::Verdict(Verdict::Succeeded)) {
            self.catch_up_with_completed_jobs(&mut deploy, &mut logs, &mut inputs, grace_ends)
                .await;
        }
        logs.finish(
            |instance| has_finished(&deploy, instance),
            grace_ends.saturating_duration_since(tokio::time::Instant::now()),
            &self.cancel,
        )
        .await;
        self.finish(&deploy, stop).await
    }

    /// A Job's watch may be ahead of its pods': a Job seen complete before its pod was seen running
    /// would lose the pod's lines. Until every pod of a completed Job has been seen finished (or the
    /// grace ends), pod observations still start log streams; they change no verdict.
    async fn catch_up_with_completed_jobs(
        &mut self,
        deploy: &mut DeployTracker,
        logs: &mut LogStreams,
        inputs: &mut Inputs,
        grace_ends: tokio::time::Instant,
    ) {
        while has_unfinished_job_pods(deploy) {
            tokio::select! {
                () = self.cancel.cancelled() => return,
                () = tokio::time::sleep_until(grace_ends) => return,
                input = inputs.next() => match input {
                    Some(Input::Watched(_, observation)) => {
                        let _after_the_verdict = self.observe(deploy, logs, observation).await;
                    }
                    Some(_) => {}
                    None => return,
                },
            }
        }
    }

    /// Resolves a kind, retrying (with back-off, each failure a warning) until the deadline.
    async fn discover(
        &mut self,
        resource: &TrackedResource,
        deadline: tokio::time::Instant,
    ) -> Option<(ApiResource, Scope)> {
        let mut backoff = WatchBackoff::new(Duration::from_millis(200), Duration::from_secs(10));
        loop {
            match self
                .hub
                .resolve(&resource.api_version, &resource.kind)
                .await
            {
                Ok(found) => return Some(found),
                Err(error) => {
                    self.hub.inner.options.metrics.api_error(ApiCall::Discovery);
                    self.api_error(error.to_string()).await;
                    let delay = backoff.next().unwrap_or(Duration::from_secs(10));
                    tokio::select! {
                        () = self.cancel.cancelled() => return None,
                        () = tokio::time::sleep_until(deadline) => return None,
                        () = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    fn feed(&self, index: usize, namespace: Option<&str>, api: &ApiResource) -> Feed {
        self.hub
            .subscribe(namespace, api)
            .into_stream()
            .map(move |observation| Input::Watched(index, observation))
            .boxed()
    }

    /// One quorum GET of the resource `key` (no resourceVersion: served from etcd, not a cache),
    /// retried with back-off until it answers.
    fn read_current(&self, index: usize, key: ResourceKey, api: &ApiResource) -> Feed {
        let client = self.hub.client().clone();
        let api: Api<DynamicObject> = match &key.namespace {
            Some(namespace) => Api::namespaced_with(client, namespace, api),
            None => Api::all_with(client, api),
        };
        let metrics = Arc::clone(&self.hub.inner.options.metrics);
        let backoff = WatchBackoff::new(
            self.hub.inner.options.initial_backoff,
            self.hub.inner.options.max_backoff,
        );
        stream::unfold(Some((backoff, Duration::ZERO)), move |retry| {
            let (api, key, metrics) = (api.clone(), key.clone(), Arc::clone(&metrics));
            async move {
                let (mut backoff, delay) = retry?;
                tokio::time::sleep(delay).await;
                match api.get_opt(&key.name).await {
                    Ok(found) => Some((Input::Read(index, key, found.map(Arc::new)), None)),
                    Err(error) => {
                        metrics.api_error(ApiCall::Get);
                        let delay = backoff.next().unwrap_or(Duration::from_secs(10));
                        let message = format!("reading {key}: {error}");
                        Some((Input::ReadFailed(message), Some((backoff, delay))))
                    }
                }
            }
        })
        .boxed()
    }

    async fn follow(
        &mut self,
        deploy: &mut DeployTracker,
        logs: &mut LogStreams,
        inputs: &mut Inputs,
        mut gate: ListGate,
        deadline: tokio::time::Instant,
    ) -> Stop {
        let mut tick = tokio::time::interval(self.options.deadlines.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // When the input being handled arrived; a verdict it leads to was decided then.
        let mut received = std::time::Instant::now();
        loop {
            if let Some(verdict) = deploy.verdict() {
                self.decided_at = Some(received);
                return Stop::Verdict(verdict.clone());
            }
            let deltas = tokio::select! {
                () = self.cancel.cancelled() => return Stop::Cancelled,
                () = tokio::time::sleep_until(deadline) => return Stop::TimedOut,
                _ = tick.tick() => deploy.tick(Utc::now()),
                input = inputs.next() => match input {
                    Some(Input::Watched(watch, Observation::Listed)) => {
                        self.release(deploy, &mut gate, watch)
                    }
                    Some(Input::Watched(_, observation)) => {
                        self.observe(deploy, logs, observation).await
                    }
                    Some(Input::Read(index, key, found)) => {
                        let mut deltas = match found.as_deref().map(to_tracked) {
                            Some(Err(message)) => {
                                self.warn(message).await;
                                Vec::new()
                            }
                            Some(Ok(object)) => deploy.observe_current(&key, Some(&object), Utc::now()),
                            None => deploy.observe_current(&key, None, Utc::now()),
                        };
                        Self::follow_all_logs(deploy, logs);
                        deltas.extend(self.release(deploy, &mut gate, index));
                        deltas
                    }
                    Some(Input::ReadFailed(message)) => {
                        self.api_error(message).await;
                        Vec::new()
                    }
                    // Every watch ended: only the hub's shutdown does that.
                    None => return Stop::Cancelled,
                },
            };
            received = std::time::Instant::now();
            for delta in deltas {
                self.relay(delta).await;
            }
        }
    }

    async fn observe(
        &mut self,
        deploy: &mut DeployTracker,
        logs: &mut LogStreams,
        observation: Observation,
    ) -> Vec<Delta> {
        let (object, deleted) = match observation {
            Observation::Applied(object) => (object, false),
            Observation::Deleted(object) => (object, true),
            Observation::ApiError { watch, message } => {
                self.api_error(format!("watch {watch}: {message}")).await;
                return Vec::new();
            }
            // Lists are counted by `follow`, which holds the gate.
            Observation::Listed => return Vec::new(),
        };
        if left_by_earlier_run(&object, &self.options.previous_uids) {
            return Vec::new();
        }
        let tracked = match to_tracked(&object) {
            Ok(tracked) => tracked,
            Err(message) => {
                self.warn(message).await;
                return Vec::new();
            }
        };
        let now = Utc::now();
        let deltas = if deleted {
            deploy.observe_deleted(&tracked, now)
        } else {
            deploy.observe(&tracked, now)
        };
        // Not only a pod's change: a ReplicaSet or workload seen after its pods makes them current.
        if !matches!(tracked, TrackedObject::Event(_)) {
            Self::follow_all_logs(deploy, logs);
        }
        deltas
    }

    /// Follows the logs of new containers in the pods the resources currently count (each
    /// container instance once).
    fn follow_all_logs(deploy: &DeployTracker, logs: &mut LogStreams) {
        for resource in deploy.resources() {
            logs.follow(
                &ResourceRef::from(resource.key()),
                &resource.policy().logs,
                resource.current_pods(),
            );
        }
    }

    /// Watch (or read) `index` has delivered: the resources that needed only it more now judge
    /// with the complete picture.
    fn release(&self, deploy: &mut DeployTracker, gate: &mut ListGate, index: usize) -> Vec<Delta> {
        let now = Utc::now();
        gate.listed(index)
            .iter()
            .flat_map(|key| deploy.initial_lists_done(key, now))
            .collect()
    }

    async fn warn(&self, message: String) {
        self.emit(NewEvent::new(EventType::TrackerWarning, message).level(Level::Warning))
            .await;
    }

    /// Emits a delta's event; a failure first gets the failing container's last log lines.
    async fn relay(&mut self, mut delta: Delta) {
        if let Change::Failed { failure } = &mut delta.change {
            let evidence = &mut failure.evidence;
            if let (Some(pod), Some(namespace)) = (&evidence.pod, &delta.resource.namespace) {
                match last_lines(
                    self.hub.client(),
                    namespace,
                    pod,
                    evidence.container.as_deref(),
                    evidence.previous_instance,
                    self.options.logs.failure_tail_lines,
                )
                .await
                {
                    Ok(lines) => {
                        evidence.log_lines.clone_from(&lines);
                        self.failure_logs.insert(delta.resource.clone(), lines);
                    }
                    Err(error) => {
                        self.hub.inner.options.metrics.api_error(ApiCall::Logs);
                        self.api_error(format!("logs of pod {pod}: {error}")).await;
                    }
                }
            }
        }
        self.emit(event_of(&delta)).await;
    }

    async fn api_error(&mut self, message: String) {
        self.api_errors += 1;
        let count = self.api_errors;
        self.emit(
            NewEvent::new(EventType::TrackerWarning, format!("{message} (retrying)"))
                .level(Level::Warning)
                .data(json!({"api_errors": count})),
        )
        .await;
    }

    async fn emit(&self, event: NewEvent) {
        // The receiver gone means nobody reads: tracking goes on to its report regardless.
        let _closed = self.events.send(event).await;
    }

    async fn finish(self, deploy: &DeployTracker, stop: Stop) -> TrackReport {
        let core_report = deploy.report();
        let outcome = match stop {
            Stop::Verdict(Verdict::Succeeded) => TrackOutcome::Succeeded,
            Stop::Verdict(Verdict::Failed {
                reason,
                resource,
                message,
                detail,
            }) => TrackOutcome::Failed {
                reason,
                resource: ResourceRef::from(&resource),
                message,
                detail: *detail,
            },
            Stop::TimedOut => TrackOutcome::TimedOut {
                waiting_for: deploy
                    .resources()
                    .iter()
                    .filter(|resource| {
                        resource.is_blocking()
                            && !matches!(resource.state(), State::Ready | State::Failed)
                    })
                    .map(|resource| ResourceRef::from(resource.key()))
                    .collect(),
            },
            Stop::Cancelled => TrackOutcome::Cancelled,
        };
        let mut resources = core_report.resources;
        for resource in &mut resources {
            if let (Some(failure), Some(lines)) = (
                &mut resource.failure,
                self.failure_logs.get(&resource.resource),
            ) {
                failure.evidence.log_lines.clone_from(lines);
            }
        }
        let report = TrackReport {
            outcome,
            started_at: self.started_at,
            finished_at: Utc::now(),
            resources,
            api_errors: self.api_errors,
            decided_at: self.decided_at,
        };
        let (level, message) = match &report.outcome {
            TrackOutcome::Succeeded => (Level::Info, "all resources ready".to_owned()),
            TrackOutcome::Failed {
                resource, message, ..
            } => (Level::Error, format!("{resource} failed: {message}")),
            TrackOutcome::TimedOut { waiting_for } => (
                Level::Error,
                format!(
                    "deadline passed waiting for {} resource(s)",
                    waiting_for.len()
                ),
            ),
            TrackOutcome::Cancelled => (Level::Warning, "tracking cancelled".to_owned()),
        };
        self.emit(
            NewEvent::new(EventType::Report, message)
                .level(level)
                .data(to_json(&report)),
        )
        .await;
        report
    }
}

/// Holds the watches that tracking `resources` will need (see [`WatchHub::hold`]), so that they
/// have listed by the time helm has applied them. Kinds whose discovery fails now are left to
/// tracking, which retries.
pub async fn hold_watches(hub: &WatchHub, resources: &[TrackedResource]) -> Vec<WatchHold> {
    let mut held = HashSet::new();
    let mut holds = Vec::new();
    for resource in resources {
        let Ok((api, scope)) = hub.resolve(&resource.api_version, &resource.kind).await else {
            continue;
        };
        let namespace = match scope {
            Scope::Namespaced => resource.namespace.as_deref(),
            Scope::Cluster => None,
        };
        for (namespace, api) in watches_for(namespace, &api) {
            if held.insert((namespace.clone(), api.api_version.clone(), api.kind.clone())) {
                holds.push(hub.hold(namespace.as_deref(), &api));
            }
        }
    }
    holds
}

/// The watches a resource needs: its own kind, and in its namespace the pods, the events, and the
/// objects that tell which pods are the current revision.
fn watches_for(namespace: Option<&str>, api: &ApiResource) -> Vec<(Option<String>, ApiResource)> {
    let mut watches = vec![(namespace.map(str::to_owned), api.clone())];
    if let Some(namespace) = namespace {
        let own = Some(namespace.to_owned());
        watches.push((own.clone(), api_resource::<Pod>()));
        watches.push((own.clone(), api_resource::<Event>()));
        match (api.group.as_str(), api.kind.as_str()) {
            ("apps", "Deployment") => watches.push((own, api_resource::<ReplicaSet>())),
            ("apps", "StatefulSet" | "DaemonSet") => {
                watches.push((own, api_resource::<ControllerRevision>()));
            }
            _ => {}
        }
    }
    watches
}

/// Whether a container instance has ended, as last observed: its container terminated or restarted,
/// its pod is over, or its pod belongs to a Job that is over (the Job's watch may be ahead of the
/// pods').
fn has_finished(deploy: &DeployTracker, (uid, container, restarts): &ContainerInstance) -> bool {
    deploy.resources().iter().any(|resource| {
        let job_over = resource.key().kind == "Job"
            && matches!(resource.state(), State::Ready | State::Failed);
        resource
            .current_pods()
            .filter(|pod| pod.uid().as_deref() == Some(uid.as_str()))
            .any(|pod| job_over || container_finished(pod, container, *restarts))
    })
}

/// Whether a completed Job that wants logs still has a pod not seen finished.
fn has_unfinished_job_pods(deploy: &DeployTracker) -> bool {
    deploy.resources().iter().any(|resource| {
        resource.key().kind == "Job"
            && resource.state() == State::Ready
            && !resource.policy().logs.skip_logs
            && resource.current_pods().any(|pod| {
                !matches!(
                    pod.status
                        .as_ref()
                        .and_then(|status| status.phase.as_deref()),
                    Some("Succeeded" | "Failed")
                )
            })
    })
}

fn container_finished(pod: &Pod, container: &str, restarts: i32) -> bool {
    let Some(status) = pod.status.as_ref() else {
        return false;
    };
    if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
        return true;
    }
    status
        .init_container_statuses
        .iter()
        .chain(status.container_statuses.iter())
        .flatten()
        .find(|status| status.name == container)
        .is_some_and(|status| {
            status.restart_count > restarts
                || status
                    .state
                    .as_ref()
                    .is_some_and(|state| state.terminated.is_some())
        })
}

/// Whether `object` is one of `previous_uids`, is controlled by one (its pods), or is an Event about one.
fn left_by_earlier_run(object: &DynamicObject, previous_uids: &HashSet<String>) -> bool {
    if previous_uids.is_empty() {
        return false;
    }
    let metadata = &object.metadata;
    metadata
        .uid
        .as_ref()
        .is_some_and(|uid| previous_uids.contains(uid))
        || metadata
            .owner_references
            .iter()
            .flatten()
            .any(|owner| owner.controller == Some(true) && previous_uids.contains(&owner.uid))
        || object
            .data
            .pointer("/involvedObject/uid")
            .and_then(serde_json::Value::as_str)
            .is_some_and(|uid| previous_uids.contains(uid))
}

fn to_tracked(object: &DynamicObject) -> Result<TrackedObject, String> {
    let value = serde_json::to_value(object).map_err(|error| error.to_string())?;
    TrackedObject::from_value(value)
        .map_err(|error| format!("unreadable object {}: {error}", object.name_any()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deployment_needs_its_replica_sets_pods_and_events() {
        let watches = watches_for(
            Some("prod"),
            &api_resource::<k8s_openapi::api::apps::v1::Deployment>(),
        );
        let kinds: Vec<&str> = watches.iter().map(|(_, api)| api.kind.as_str()).collect();
        assert_eq!(kinds, ["Deployment", "Pod", "Event", "ReplicaSet"]);
        assert!(
            watches
                .iter()
                .all(|(namespace, _)| namespace.as_deref() == Some("prod"))
        );
    }

    #[test]
    fn objects_of_an_earlier_run_are_recognized_with_their_pods_and_events() {
        let object = |value: serde_json::Value| -> DynamicObject {
            serde_json::from_value(value).expect("a valid object")
        };
        let previous: HashSet<String> = HashSet::from(["old-job".to_owned()]);
        let old_job = object(json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "migrate", "uid": "old-job"}
        }));
        let new_job = object(json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "migrate", "uid": "new-job"}
        }));
        let old_pod = object(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "migrate-x", "uid": "pod-1", "ownerReferences": [
                {"apiVersion": "batch/v1", "kind": "Job", "name": "migrate", "uid": "old-job", "controller": true}
            ]}
        }));
        let old_event = object(json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "migrate.1", "uid": "event-1"},
            "involvedObject": {"kind": "Job", "name": "migrate", "uid": "old-job"}
        }));
        assert!(left_by_earlier_run(&old_job, &previous));
        assert!(left_by_earlier_run(&old_pod, &previous));
        assert!(left_by_earlier_run(&old_event, &previous));
        assert!(!left_by_earlier_run(&new_job, &previous));
        assert!(!left_by_earlier_run(&old_job, &HashSet::new()));
    }

    #[test]
    fn a_resource_is_released_once_every_watch_it_needs_has_listed() {
        let mut gate = ListGate::default();
        let (deployments, pods, jobs) = (gate.add_watch(), gate.add_watch(), gate.add_watch());
        let web = ResourceKey::new("apps/v1", "Deployment", Some("prod"), "web");
        let migrate = ResourceKey::new("batch/v1", "Job", Some("prod"), "migrate");
        gate.add_resource(web.clone(), BTreeSet::from([deployments, pods]));
        gate.add_resource(migrate.clone(), BTreeSet::from([jobs, pods]));
        assert!(gate.listed(pods).is_empty());
        assert_eq!(gate.listed(deployments), [web]);
        assert!(gate.listed(deployments).is_empty(), "released once");
        assert_eq!(gate.listed(jobs), [migrate]);
    }

    #[test]
    fn only_a_success_waits_for_the_last_lines_of_finished_containers() {
        assert_eq!(
            Stop::Verdict(Verdict::Succeeded).log_drain_grace(),
            LOG_DRAIN_GRACE
        );
        let failed = Verdict::Failed {
            reason: VerdictReason::CrashLoopBackOff,
            resource: ResourceKey::new("apps/v1", "Deployment", Some("prod"), "web"),
            message: "2 failures, 1 allowed".to_owned(),
            detail: Box::default(),
        };
        for stop in [Stop::Verdict(failed), Stop::TimedOut, Stop::Cancelled] {
            assert_eq!(stop.log_drain_grace(), Duration::ZERO);
        }
    }

    #[test]
    fn a_cluster_scoped_kind_needs_only_its_own_watch() {
        let crd = ApiResource {
            group: "apiextensions.k8s.io".to_owned(),
            version: "v1".to_owned(),
            api_version: "apiextensions.k8s.io/v1".to_owned(),
            kind: "CustomResourceDefinition".to_owned(),
            plural: "customresourcedefinitions".to_owned(),
        };
        let watches = watches_for(None, &crd);
        assert_eq!(watches.len(), 1);
        assert_eq!(watches[0].0, None);
    }
}
