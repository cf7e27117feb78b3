//! One pod's simulated life on its node: sandbox, image pulls, container starts, readiness (and
//! readiness probes), exits with restarts and CrashLoopBackOff back-off, logs, and termination with
//! grace ending in a terminal phase and the final delete (kubelet 1.27+).

use std::convert::Infallible;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use chrono::Utc;
use futures::future::join_all;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::{Instant, sleep, sleep_until};

use super::config;
use super::status::{
    self, ContainerState, ContainerStatus, RestartPolicy, Termination, go_duration,
};
use crate::behavior::{Behavior, ImagePull, NUL_PLACEHOLDER, RESTART_COUNT_PLACEHOLDER};
use crate::control_loop::{Context, TransitionKind};
use crate::pod_util;
use crate::recorder::{EventSource, EventType, InvolvedObject};
use crate::store::timestamp;
use crate::store::{DeleteOptions, NODES, PODS};

/// Simulated time from binding to a running sandbox (pod IP assigned).
const SANDBOX_DELAY: Duration = Duration::from_millis(100);
/// Simulated time an image pull takes.
const PULL_TIME: Duration = Duration::from_millis(500);
/// How long `ErrImagePull` shows before the kubelet reports `ImagePullBackOff`.
const PULL_ERROR_SHOWN: Duration = Duration::from_secs(1);
/// kubelet back-off: `backOffPeriod` and `MaxContainerBackOff`.
const BACK_OFF_START: Duration = Duration::from_secs(10);
const BACK_OFF_MAX: Duration = Duration::from_secs(300);
/// A container that ran this long resets its back-off (2 × MaxContainerBackOff).
const BACK_OFF_RESET: Duration = Duration::from_secs(600);
/// Readiness probe period while terminating when the container declares no probe.
const TERMINATING_PROBE_PERIOD: Duration = Duration::from_secs(1);
/// How long an init container without a behaviour runs before it completes (simulated).
const INIT_RUNTIME: Duration = Duration::from_millis(500);
/// How often the kubelet retries a pod whose ConfigMaps/Secrets are missing (simulated).
const CONFIG_RETRY: Duration = Duration::from_secs(10);
/// Exit code of a process stopped by SIGTERM / killed by SIGKILL at the end of the grace period.
const SIGTERM_EXIT: i32 = 143;
const SIGKILL_EXIT: i32 = 137;
/// Periodic work never runs more often than this, whatever the time scale.
const MIN_TICK: Duration = Duration::from_millis(1);

struct PodState {
    containers: Vec<ContainerStatus>,
    init_containers: Vec<ContainerStatus>,
    pod_ip: Option<String>,
    sandbox_ready: bool,
    terminating: bool,
    was_ready: bool,
}

/// Which container of the pod: an init container or a regular one, by index in its spec list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    Init(usize),
    Main(usize),
}

impl Slot {
    fn spec_field(self) -> &'static str {
        match self {
            Slot::Init(_) => "initContainers",
            Slot::Main(_) => "containers",
        }
    }

    fn index(self) -> usize {
        match self {
            Slot::Init(index) | Slot::Main(index) => index,
        }
    }

    /// `involvedObject.fieldPath` of events about this container.
    fn field_path(self, name: &str) -> String {
        format!("spec.{}{{{name}}}", self.spec_field())
    }
}

impl PodState {
    fn container(&mut self, slot: Slot) -> &mut ContainerStatus {
        match slot {
            Slot::Init(index) => &mut self.init_containers[index],
            Slot::Main(index) => &mut self.containers[index],
        }
    }
}

struct PodRun {
    context: Context,
    pod: Value,
    namespace: String,
    name: String,
    uid: String,
    source: EventSource,
    host_ip: String,
    start_time: String,
    restart_policy: RestartPolicy,
    state: Mutex<PodState>,
}

pub(super) async fn run(
    context: Context,
    pod: Value,
    mut updates: watch::Receiver<Option<Value>>,
    ip_index: u32,
) {
    let run = PodRun::new(context, pod);
    if pod_util::is_terminal(&run.pod) {
        // Finished before this kubelet saw it (e.g. written through the API): only the final delete is left.
        if wait_for_deletion(&mut updates).await.is_some() {
            run.remove();
        }
        return;
    }
    let behaviors_of = |slot: fn(usize) -> Slot, field: &str| -> Vec<Behavior> {
        run.container_specs(field)
            .iter()
            .enumerate()
            .map(|(index, container)| run.behavior_of(container, slot(index)))
            .collect()
    };
    let init_behaviors = behaviors_of(Slot::Init, "initContainers");
    let behaviors = behaviors_of(Slot::Main, "containers");
    run.write_status();
    let life = async {
        run.mount_volumes().await;
        sleep(run.scaled(SANDBOX_DELAY)).await;
        run.update(|state| {
            state.sandbox_ready = true;
            state.pod_ip = Some(format!(
                "10.244.{}.{}",
                (ip_index / 250) % 256,
                ip_index % 250 + 2
            ));
        });
        // Init containers run one after the other; one that fails for good (restartPolicy Never)
        // leaves the pod Failed.
        for (index, behavior) in init_behaviors.iter().enumerate() {
            if !run.run_container(Slot::Init(index), behavior).await {
                std::future::pending::<()>().await;
            }
        }
        join_all(
            behaviors
                .iter()
                .enumerate()
                .map(|(index, behavior)| run.run_container(Slot::Main(index), behavior)),
        )
        .await;
        // Every container finished for good: the pod stays, terminal, until deleted.
        std::future::pending::<()>().await;
    };
    let deleted = tokio::select! {
        _ = life => None,
        deleted = wait_for_deletion(&mut updates) => deleted,
    };
    if deleted.is_some() {
        tokio::select! {
            _ = run.terminate(&behaviors) => {}
            // Force-deleted meanwhile: nothing left to report.
            _ = wait_for_removal(&mut updates) => {}
        }
    }
    run.context.readiness.forget(&run.uid);
}

/// The pod once it has a deletionTimestamp, or None when it left the store without one.
async fn wait_for_deletion(updates: &mut watch::Receiver<Option<Value>>) -> Option<Value> {
    loop {
        match &*updates.borrow_and_update() {
            None => return None,
            Some(pod) if pod_util::is_being_deleted(pod) => return Some(pod.clone()),
            Some(_) => {}
        }
        if updates.changed().await.is_err() {
            return None;
        }
    }
}

async fn wait_for_removal(updates: &mut watch::Receiver<Option<Value>>) {
    while updates.borrow_and_update().is_some() {
        if updates.changed().await.is_err() {
            return;
        }
    }
}

fn new_container_id() -> String {
    format!(
        "containerd://{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

fn now_text() -> String {
    timestamp(Utc::now())
}

/// The message a failing probe reports, by handler type (pkg/probe).
fn probe_failure(probe: &Value, pod_ip: &str) -> String {
    if probe["httpGet"].is_object() {
        "HTTP probe failed with statuscode: 503".to_owned()
    } else if let Some(port) = probe["tcpSocket"]["port"].as_i64() {
        format!("dial tcp {pod_ip}:{port}: connect: connection refused")
    } else if probe["grpc"].is_object() {
        "service unhealthy (responded with \"NOT_SERVING\")".to_owned()
    } else {
        "command exited with non-zero status 1".to_owned()
    }
}

impl PodRun {
    fn new(context: Context, pod: Value) -> Self {
        let node = pod["spec"]["nodeName"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let host_ip = context
            .store
            .get(&NODES, None, &node)
            .and_then(|node| {
                node["status"]["addresses"]
                    .as_array()?
                    .iter()
                    .find(|address| address["type"] == "InternalIP")
                    .and_then(|address| address["address"].as_str().map(str::to_owned))
            })
            .unwrap_or_else(|| "10.0.0.1".to_owned());
        let statuses = |field: &str| -> Vec<ContainerStatus> {
            pod["spec"][field]
                .as_array()
                .into_iter()
                .flatten()
                .map(|container| {
                    ContainerStatus::new(
                        container["name"].as_str().unwrap_or_default(),
                        container["image"].as_str().unwrap_or_default(),
                    )
                })
                .collect()
        };
        let init_containers = statuses("initContainers");
        let mut containers = statuses("containers");
        if !init_containers.is_empty() {
            for container in &mut containers {
                container.state = ContainerState::Waiting {
                    reason: "PodInitializing".into(),
                    message: None,
                };
            }
        }
        let state = PodState {
            containers,
            init_containers,
            pod_ip: None,
            sandbox_ready: false,
            terminating: false,
            was_ready: false,
        };
        Self {
            namespace: pod_util::namespace(&pod).to_owned(),
            name: pod_util::name(&pod).to_owned(),
            uid: pod_util::uid(&pod).to_owned(),
            source: EventSource::kubelet(&node),
            host_ip,
            start_time: pod["status"]["startTime"]
                .as_str()
                .map_or_else(now_text, str::to_owned),
            restart_policy: RestartPolicy::of(&pod),
            state: Mutex::new(state),
            context,
            pod,
        }
    }

    fn scaled(&self, simulated: Duration) -> Duration {
        self.context.scaled(simulated)
    }

    fn tick(&self, simulated: Duration) -> Duration {
        self.scaled(simulated).max(MIN_TICK)
    }

    fn container_specs(&self, field: &str) -> Vec<Value> {
        self.pod["spec"][field]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    fn pod_ip(&self) -> String {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pod_ip
            .clone()
            .unwrap_or_default()
    }

    fn container_name(&self, slot: Slot) -> String {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .container(slot)
            .name
            .clone()
    }

    /// The container's behaviour; an invalid annotation is reported on the pod and ignored.
    fn behavior_of(&self, container: &Value, slot: Slot) -> Behavior {
        let annotations = self.pod["metadata"]["annotations"]
            .as_object()
            .map(|annotations| {
                annotations
                    .iter()
                    .filter_map(|(key, value)| Some((key.clone(), value.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        let name = container["name"].as_str().unwrap_or_default();
        Behavior::for_container(&annotations, name).unwrap_or_else(|error| {
            self.event(
                Some(&slot.field_path(name)),
                EventType::Warning,
                "InvalidBehavior",
                format!("{error}; the container runs with the default behaviour"),
            );
            Behavior::default()
        })
    }

    /// An event about the pod, or about one container when `field_path` names it.
    fn event(
        &self,
        field_path: Option<&str>,
        event_type: EventType,
        reason: &str,
        message: String,
    ) {
        let mut involved = InvolvedObject::of(&PODS, &self.pod);
        if let Some(field_path) = field_path {
            involved = involved.with_field_path(field_path.to_owned());
        }
        self.context
            .recorder
            .record(&self.source, involved, event_type, reason, message);
    }

    fn notify(&self, kind: TransitionKind) {
        self.context
            .control
            .notify(kind, &self.namespace, &self.name);
    }

    fn log(&self, slot: Slot, line: &str) {
        let (name, restart_count) = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            let container = state.container(slot);
            (container.name.clone(), container.restart_count)
        };
        let line = line
            .replace(RESTART_COUNT_PLACEHOLDER, &restart_count.to_string())
            .replace(NUL_PLACEHOLDER, "\0");
        self.context
            .logs
            .append(&self.namespace, &self.name, &name, restart_count, &line);
    }

    fn update(&self, change: impl FnOnce(&mut PodState)) {
        change(&mut self.state.lock().unwrap_or_else(PoisonError::into_inner));
        self.write_status();
    }

    fn update_container(&self, slot: Slot, change: impl FnOnce(&mut ContainerStatus)) {
        self.update(|state| change(state.container(slot)));
    }

    /// Writes the pod status computed from the simulated state (a no-op write when nothing changed).
    fn write_status(&self) {
        let (phase, computed, containers, init_containers, pod_ip, ready) = {
            let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            let phase = status::phase(
                &state.init_containers,
                &state.containers,
                self.restart_policy,
                state.terminating,
            );
            let computed = status::conditions(
                &state.init_containers,
                &state.containers,
                phase,
                state.sandbox_ready,
            );
            let ready = computed
                .iter()
                .any(|(kind, ready, ..)| *kind == "Ready" && *ready);
            (
                phase,
                computed,
                status::container_statuses(&state.containers),
                (!state.init_containers.is_empty())
                    .then(|| status::container_statuses(&state.init_containers)),
                state.pod_ip.clone(),
                ready,
            )
        };
        let now = now_text();
        let result =
            self.context
                .store
                .modify(&PODS, Some(&self.namespace), &self.name, |object| {
                    if pod_util::uid(object) != self.uid {
                        return;
                    }
                    let status = &mut object["status"];
                    if !status.is_object() {
                        *status = json!({});
                    }
                    let conditions =
                        status::merge_conditions(&status["conditions"], &computed, &now);
                    status["phase"] = json!(phase);
                    status["conditions"] = conditions;
                    status["hostIP"] = json!(self.host_ip);
                    status["hostIPs"] = json!([{"ip": self.host_ip}]);
                    if let Some(ip) = &pod_ip {
                        status["podIP"] = json!(ip);
                        status["podIPs"] = json!([{"ip": ip}]);
                    }
                    status["startTime"] = json!(self.start_time);
                    status["containerStatuses"] = containers;
                    if let Some(init) = init_containers {
                        status["initContainerStatuses"] = init;
                    }
                    if !status["qosClass"].is_string() {
                        status["qosClass"] = json!("BestEffort");
                    }
                });
        if let Err(error) = result {
            tracing::debug!(%error, pod = self.name, "pod status not written");
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.was_ready != ready {
            state.was_ready = ready;
            drop(state);
            self.context.readiness.set_ready(&self.uid, ready);
            self.notify(if ready {
                TransitionKind::PodReady
            } else {
                TransitionKind::PodNotReady
            });
        }
    }

    /// Waits while the pod's configMap/secret volumes are missing (`FailedMount`, retried).
    async fn mount_volumes(&self) {
        while let Some(error) = config::missing_volume_source(&self.context.store, &self.pod) {
            self.event(None, EventType::Warning, "FailedMount", error);
            sleep(self.tick(CONFIG_RETRY)).await;
        }
    }

    /// Waits while the container references a missing ConfigMap/Secret (`CreateContainerConfigError`).
    async fn wait_for_config(&self, slot: Slot, path: &str, spec: &Value) {
        while let Some(error) =
            config::missing_env_source(&self.context.store, &self.namespace, spec)
        {
            self.update_container(slot, |container| {
                container.state = ContainerState::Waiting {
                    reason: "CreateContainerConfigError".into(),
                    message: Some(error.clone()),
                };
            });
            self.event(
                Some(path),
                EventType::Warning,
                "Failed",
                format!("Error: {error}"),
            );
            sleep(self.tick(CONFIG_RETRY)).await;
        }
    }

    /// Runs one container until it is done for good: true when it ended successfully (an init
    /// container that completed), false when it failed without restart.
    async fn run_container(&self, slot: Slot, behavior: &Behavior) -> bool {
        let spec = self
            .container_specs(slot.spec_field())
            .swap_remove(slot.index());
        let name = self.container_name(slot);
        let path = slot.field_path(&name);
        self.update_container(slot, |container| {
            container.state = ContainerState::Waiting {
                reason: "ContainerCreating".into(),
                message: None,
            };
        });
        let image = spec["image"].as_str().unwrap_or_default().to_owned();
        if !config::valid_image_reference(&image) {
            let message = format!(
                "Failed to apply default image tag \"{image}\": couldn't parse image name \"{image}\": invalid reference format"
            );
            self.update_container(slot, |container| {
                container.state = ContainerState::Waiting {
                    reason: "InvalidImageName".into(),
                    message: Some(message.clone()),
                };
            });
            self.event(Some(&path), EventType::Warning, "InspectFailed", message);
            self.event(
                Some(&path),
                EventType::Warning,
                "Failed",
                "Error: InvalidImageName".to_owned(),
            );
            self.notify(TransitionKind::ImagePullFailing { container: name });
            return std::future::pending().await;
        }
        match behavior.image_pull {
            ImagePull::Never => {
                let message =
                    format!("Container image \"{image}\" is not present with pull policy of Never");
                self.update_container(slot, |container| {
                    container.state = ContainerState::Waiting {
                        reason: "ErrImageNeverPull".into(),
                        message: Some(message.clone()),
                    };
                });
                self.event(
                    Some(&path),
                    EventType::Warning,
                    "ErrImageNeverPull",
                    message,
                );
                self.event(
                    Some(&path),
                    EventType::Warning,
                    "Failed",
                    "Error: ErrImageNeverPull".to_owned(),
                );
                self.notify(TransitionKind::ImagePullFailing { container: name });
                return std::future::pending().await;
            }
            ImagePull::Fail => match self.fail_pulls(slot, &name, &path, &image).await {},
            ImagePull::Succeed => {
                self.event(
                    Some(&path),
                    EventType::Normal,
                    "Pulling",
                    format!("Pulling image \"{image}\""),
                );
                sleep(self.scaled(PULL_TIME)).await;
                let took = format!("{}ms", PULL_TIME.as_millis());
                self.event(
                    Some(&path),
                    EventType::Normal,
                    "Pulled",
                    format!("Successfully pulled image \"{image}\" in {took} ({took} including waiting). Image size: 18273645 bytes."),
                );
            }
        }
        let mut back_off: Option<Duration> = None;
        let mut starts = 0;
        loop {
            self.wait_for_config(slot, &path, &spec).await;
            sleep(self.scaled(behavior.start_delay)).await;
            starts += 1;
            let started_at = now_text();
            let started = Instant::now();
            let container_id = new_container_id();
            self.update_container(slot, |container| {
                if starts > 1 {
                    container.restart_count += 1;
                }
                container.container_id.clone_from(&container_id);
                container.state = ContainerState::Running {
                    started_at: started_at.clone(),
                };
                container.started = true;
                container.ready = false;
            });
            // Created container: <name> from 1.32 (kubelet events reworded).
            let created = if self.context.options.kube_version.minor >= 32 {
                format!("Created container: {name}")
            } else {
                format!("Created container {name}")
            };
            self.event(Some(&path), EventType::Normal, "Created", created);
            self.event(
                Some(&path),
                EventType::Normal,
                "Started",
                format!("Started container {name}"),
            );
            let exit_code = self.run_instance(slot, behavior, &spec, starts).await;
            let termination = Termination {
                exit_code,
                started_at,
                finished_at: now_text(),
                container_id,
            };
            self.update_container(slot, |container| {
                container.state = ContainerState::Terminated(termination.clone());
                container.ready = false;
                container.started = false;
            });
            // A completed init container is done whatever the restart policy.
            let init_done = matches!(slot, Slot::Init(_)) && exit_code == 0;
            if init_done || !self.restart_policy.restarts_after(exit_code) {
                return exit_code == 0;
            }
            if started.elapsed() >= self.scaled(BACK_OFF_RESET) {
                back_off = None;
            }
            // doBackOff: the first restart is immediate, then 10s doubling up to 5m.
            match back_off {
                None => back_off = Some(BACK_OFF_START),
                Some(delay) => {
                    let pod = format!("{}_{}({})", self.name, self.namespace, self.uid);
                    let message = format!(
                        "back-off {} restarting failed container={name} pod={pod}",
                        go_duration(delay)
                    );
                    self.update_container(slot, |container| {
                        container.last_termination = Some(termination.clone());
                        container.state = ContainerState::Waiting {
                            reason: "CrashLoopBackOff".into(),
                            message: Some(message),
                        };
                    });
                    self.event(
                        Some(&path),
                        EventType::Warning,
                        "BackOff",
                        format!("Back-off restarting failed container {name} in pod {pod}"),
                    );
                    self.notify(TransitionKind::CrashLoopBackOff {
                        container: name.clone(),
                    });
                    sleep(self.scaled(delay)).await;
                    back_off = Some((delay * 2).min(BACK_OFF_MAX));
                }
            }
            self.update_container(slot, |container| {
                container.last_termination = Some(termination)
            });
            self.event(
                Some(&path),
                EventType::Normal,
                "Pulled",
                format!("Container image \"{image}\" already present on machine"),
            );
        }
    }

    /// Pull failures forever: ErrImagePull, then ImagePullBackOff with the kubelet's back-off.
    async fn fail_pulls(&self, slot: Slot, name: &str, path: &str, image: &str) -> Infallible {
        let mut delay = BACK_OFF_START;
        loop {
            self.event(
                Some(path),
                EventType::Normal,
                "Pulling",
                format!("Pulling image \"{image}\""),
            );
            sleep(self.scaled(PULL_TIME)).await;
            let error = format!(
                "rpc error: code = NotFound desc = failed to pull and unpack image \"{image}\": failed to resolve reference \"{image}\": not found"
            );
            self.event(
                Some(path),
                EventType::Warning,
                "Failed",
                format!("Failed to pull image \"{image}\": {error}"),
            );
            self.event(
                Some(path),
                EventType::Warning,
                "Failed",
                "Error: ErrImagePull".to_owned(),
            );
            self.update_container(slot, |container| {
                container.state = ContainerState::Waiting {
                    reason: "ErrImagePull".into(),
                    message: Some(error),
                };
            });
            sleep(self.scaled(PULL_ERROR_SHOWN)).await;
            let back_off = format!("Back-off pulling image \"{image}\"");
            self.event(Some(path), EventType::Normal, "BackOff", back_off.clone());
            self.event(
                Some(path),
                EventType::Warning,
                "Failed",
                "Error: ImagePullBackOff".to_owned(),
            );
            self.update_container(slot, |container| {
                container.state = ContainerState::Waiting {
                    reason: "ImagePullBackOff".into(),
                    message: Some(back_off),
                };
            });
            self.notify(TransitionKind::ImagePullFailing {
                container: name.to_owned(),
            });
            sleep(self.scaled(delay)).await;
            delay = (delay * 2).min(BACK_OFF_MAX);
        }
    }

    /// One running instance: readiness (through the readiness probe's schedule when it has one), log
    /// lines, and its exit code when it exits by itself (never returns otherwise).
    async fn run_instance(&self, slot: Slot, behavior: &Behavior, spec: &Value, start: u32) -> i32 {
        let name = spec["name"].as_str().unwrap_or_default();
        let path = slot.field_path(name);
        let path = path.as_str();
        let started = Instant::now();
        // An init container without a behaviour completes after a moment; readiness does not apply.
        let is_init = matches!(slot, Slot::Init(_));
        let exit = behavior
            .exit_of_start(start)
            .or(is_init.then_some((INIT_RUNTIME, 0)))
            .map(|(after, code)| (started + self.scaled(after), code));
        let probe = spec["readinessProbe"]
            .is_object()
            .then(|| &spec["readinessProbe"]);
        let seconds = |field: &str, default: u64| {
            probe
                .and_then(|probe| probe[field].as_u64())
                .unwrap_or(default)
        };
        let period = self.tick(Duration::from_secs(seconds("periodSeconds", 10)));
        let ready_at = (!behavior.never_ready && !is_init)
            .then(|| started + self.scaled(behavior.ready_after()));
        let mut next_check = match probe {
            Some(_) => {
                Some(started + self.scaled(Duration::from_secs(seconds("initialDelaySeconds", 0))))
            }
            None => ready_at,
        };
        let log_every = behavior.log_every.map(|every| self.tick(every));
        let mut next_log = behavior.log.as_ref().map(|_| started);
        let liveness = spec["livenessProbe"]
            .is_object()
            .then(|| &spec["livenessProbe"]);
        let liveness_failing_from = behavior
            .fail_liveness_after
            .filter(|_| liveness.is_some())
            .map(|after| started + self.scaled(after));
        let probe_seconds =
            |probe: &Value, field: &str, default: u64| probe[field].as_u64().unwrap_or(default);
        let mut next_liveness = liveness_failing_from.and(liveness).map(|probe| {
            started
                + self.scaled(Duration::from_secs(probe_seconds(
                    probe,
                    "initialDelaySeconds",
                    0,
                )))
        });
        let mut liveness_failures = 0;
        loop {
            let next = [exit.map(|(at, _)| at), next_check, next_log, next_liveness]
                .into_iter()
                .flatten()
                .min();
            let Some(next) = next else {
                return std::future::pending().await;
            };
            sleep_until(next).await;
            let now = Instant::now();
            // A line due before the exit was written before it, however late this task wakes up.
            if let (Some(at), Some(text)) = (next_log, &behavior.log)
                && now >= at
                && exit.is_none_or(|(exit_at, _)| at <= exit_at)
            {
                self.log(slot, text);
                next_log = log_every.map(|every| at + every);
            }
            if let Some((at, code)) = exit
                && now >= at
            {
                return code;
            }
            if next_check.is_some_and(|at| now >= at) {
                if ready_at.is_some_and(|at| now >= at) {
                    self.update_container(slot, |container| container.ready = true);
                    next_check = None;
                } else if let Some(probe) = probe {
                    let pod_ip = self.pod_ip();
                    self.event(
                        Some(path),
                        EventType::Warning,
                        "Unhealthy",
                        format!("Readiness probe failed: {}", probe_failure(probe, &pod_ip)),
                    );
                    next_check = next_check.map(|at| at + period);
                } else {
                    next_check = ready_at;
                }
            }
            if let (Some(at), Some(probe), Some(failing_from)) =
                (next_liveness, liveness, liveness_failing_from)
                && now >= at
            {
                if now >= failing_from {
                    liveness_failures += 1;
                    let pod_ip = self.pod_ip();
                    self.event(
                        Some(path),
                        EventType::Warning,
                        "Unhealthy",
                        format!("Liveness probe failed: {}", probe_failure(probe, &pod_ip)),
                    );
                    if liveness_failures >= probe_seconds(probe, "failureThreshold", 3) {
                        self.event(
                            Some(path),
                            EventType::Normal,
                            "Killing",
                            format!("Container {name} failed liveness probe, will be restarted"),
                        );
                        return SIGKILL_EXIT;
                    }
                }
                next_liveness = Some(
                    at + self.tick(Duration::from_secs(probe_seconds(
                        probe,
                        "periodSeconds",
                        10,
                    ))),
                );
            }
        }
    }

    /// Graceful termination: Killing events, optional readiness loss, containers stop after their
    /// termination delay (SIGKILL at the end of the grace period), terminal phase, final delete.
    async fn terminate(&self, behaviors: &[Behavior]) {
        let grace_seconds = self
            .context
            .store
            .get(&PODS, Some(&self.namespace), &self.name)
            .filter(|pod| pod_util::uid(pod) == self.uid)
            .and_then(|pod| pod["metadata"]["deletionGracePeriodSeconds"].as_u64())
            .or_else(|| self.pod["spec"]["terminationGracePeriodSeconds"].as_u64())
            .unwrap_or(30);
        let grace = self.scaled(Duration::from_secs(grace_seconds));
        let running: Vec<usize> = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.terminating = true;
            let now = now_text();
            for init in &mut state.init_containers {
                if let ContainerState::Running { started_at } = &init.state {
                    let termination = Termination {
                        exit_code: SIGTERM_EXIT,
                        started_at: started_at.clone(),
                        finished_at: now.clone(),
                        container_id: init.container_id.clone(),
                    };
                    init.state = ContainerState::Terminated(termination);
                }
            }
            for container in &mut state.containers {
                // A container waiting for its restart is not restarted any more.
                if let (ContainerState::Waiting { .. }, Some(last)) =
                    (&container.state, &container.last_termination)
                {
                    container.state = ContainerState::Terminated(last.clone());
                }
            }
            (0..state.containers.len())
                .filter(|index| {
                    matches!(
                        state.containers[*index].state,
                        ContainerState::Running { .. }
                    )
                })
                .collect()
        };
        if running.is_empty() {
            self.write_status();
            self.remove();
            return;
        }
        for index in &running {
            let slot = Slot::Main(*index);
            let name = self.container_name(slot);
            self.event(
                Some(&slot.field_path(&name)),
                EventType::Normal,
                "Killing",
                format!("Stopping container {name}"),
            );
        }
        let unready = |behavior: &Behavior| {
            behavior.not_ready_while_terminating || behavior.fail_readiness_while_terminating
        };
        self.update(|state| {
            for index in &running {
                if unready(&behaviors[*index]) {
                    state.containers[*index].ready = false;
                }
            }
        });
        let probes_fail = async {
            // (fieldPath of the container, its probe, the probe's period)
            let failing: Vec<(String, Value, Duration)> = running
                .iter()
                .filter(|index| behaviors[**index].fail_readiness_while_terminating)
                .map(|index| {
                    let slot = Slot::Main(*index);
                    let spec = self.container_specs("containers").swap_remove(*index);
                    let period = spec["readinessProbe"]["periodSeconds"]
                        .as_u64()
                        .map_or(TERMINATING_PROBE_PERIOD, Duration::from_secs);
                    (
                        slot.field_path(&self.container_name(slot)),
                        spec["readinessProbe"].clone(),
                        self.tick(period),
                    )
                })
                .collect();
            let Some(period) = failing.iter().map(|(_, _, period)| *period).min() else {
                return std::future::pending().await;
            };
            let pod_ip = self.pod_ip();
            loop {
                for (path, probe, _) in &failing {
                    self.event(
                        Some(path),
                        EventType::Warning,
                        "Unhealthy",
                        format!("Readiness probe failed: {}", probe_failure(probe, &pod_ip)),
                    );
                }
                sleep(period).await;
            }
        };
        let stop_all = async {
            let began = Instant::now();
            let mut stops: Vec<(Duration, usize, i32)> = running
                .iter()
                .map(|index| {
                    let delay = self.scaled(behaviors[*index].termination_delay());
                    if delay >= grace {
                        (grace, *index, SIGKILL_EXIT)
                    } else {
                        (delay, *index, SIGTERM_EXIT)
                    }
                })
                .collect();
            stops.sort();
            for (after, index, exit_code) in stops {
                sleep_until(began + after).await;
                self.update_container(Slot::Main(index), |container| {
                    let started_at = match &container.state {
                        ContainerState::Running { started_at } => started_at.clone(),
                        _ => now_text(),
                    };
                    container.state = ContainerState::Terminated(Termination {
                        exit_code,
                        started_at,
                        finished_at: now_text(),
                        container_id: container.container_id.clone(),
                    });
                    container.ready = false;
                    container.started = false;
                });
            }
        };
        tokio::select! {
            _ = stop_all => {}
            _ = probes_fail => {}
        }
        self.remove();
    }

    /// The kubelet's final delete (grace 0, uid precondition) once the containers are gone.
    fn remove(&self) {
        let options = DeleteOptions {
            precondition_uid: Some(self.uid.clone()),
            ..DeleteOptions::immediate()
        };
        if let Err(error) =
            self.context
                .store
                .delete(&PODS, Some(&self.namespace), &self.name, options)
        {
            tracing::debug!(%error, pod = self.name, "final pod delete failed");
        }
        self.context.readiness.forget(&self.uid);
    }
}
