//! Pod status as the kubelet writes it: phase (`getPhase`), conditions and container statuses, computed
//! from the simulated container states.

use serde_json::{Value, json};

/// What a container is doing now.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum ContainerState {
    Waiting {
        reason: String,
        message: Option<String>,
    },
    Running {
        started_at: String,
    },
    Terminated(Termination),
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Termination {
    pub exit_code: i32,
    pub started_at: String,
    pub finished_at: String,
    /// The instance that ended: `lastState` keeps naming it after the restart's new container.
    pub container_id: String,
}

impl Termination {
    pub fn reason(&self) -> &'static str {
        if self.exit_code == 0 {
            "Completed"
        } else {
            "Error"
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "exitCode": self.exit_code,
            "reason": self.reason(),
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
            "containerID": self.container_id,
        })
    }
}

#[derive(Clone, Debug)]
pub(crate) struct ContainerStatus {
    pub name: String,
    pub image: String,
    pub state: ContainerState,
    pub last_termination: Option<Termination>,
    pub ready: bool,
    pub started: bool,
    pub restart_count: u32,
    /// Empty until the first instance is created.
    pub container_id: String,
}

impl ContainerStatus {
    pub fn new(name: &str, image: &str) -> Self {
        Self {
            name: name.to_owned(),
            image: image.to_owned(),
            state: ContainerState::Waiting {
                reason: "ContainerCreating".to_owned(),
                message: None,
            },
            last_termination: None,
            ready: false,
            started: false,
            restart_count: 0,
            container_id: String::new(),
        }
    }

    fn to_json(&self) -> Value {
        let state = match &self.state {
            ContainerState::Waiting { reason, message } => {
                let mut waiting = json!({"reason": reason});
                if let Some(message) = message {
                    waiting["message"] = json!(message);
                }
                json!({"waiting": waiting})
            }
            ContainerState::Running { started_at } => json!({"running": {"startedAt": started_at}}),
            ContainerState::Terminated(termination) => {
                json!({"terminated": termination.to_json()})
            }
        };
        let last_state = match &self.last_termination {
            Some(termination) => json!({"terminated": termination.to_json()}),
            None => json!({}),
        };
        let mut status = json!({
            "name": self.name,
            "image": self.image,
            "imageID": image_id(&self.image),
            "ready": self.ready,
            "started": self.started,
            "restartCount": self.restart_count,
            "state": state,
            "lastState": last_state,
        });
        if !self.container_id.is_empty() {
            status["containerID"] = json!(self.container_id);
        }
        status
    }
}

/// A stable fake digest per image, so that `imageID` looks like the real thing.
fn image_id(image: &str) -> String {
    let repository = image.split('@').next().unwrap_or(image);
    let repository = repository
        .rsplit_once(':')
        .filter(|(_, tag)| !tag.contains('/'))
        .map_or(repository, |(name, _)| name);
    let digest: String = (0..8u32)
        .map(|round| {
            let seed = image.bytes().fold(0x811c_9dc5_u32 ^ round, |hash, byte| {
                (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
            });
            format!("{seed:08x}")
        })
        .collect();
    format!("{repository}@sha256:{digest}")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

impl RestartPolicy {
    pub fn of(pod: &Value) -> Self {
        match pod["spec"]["restartPolicy"].as_str() {
            Some("Never") => RestartPolicy::Never,
            Some("OnFailure") => RestartPolicy::OnFailure,
            _ => RestartPolicy::Always,
        }
    }

    pub fn restarts_after(self, exit_code: i32) -> bool {
        match self {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => exit_code != 0,
            RestartPolicy::Never => false,
        }
    }
}

fn completed(container: &ContainerStatus) -> bool {
    matches!(&container.state, ContainerState::Terminated(termination) if termination.exit_code == 0)
}

/// `getPhase` (pkg/kubelet/kubelet_pods.go).
pub(crate) fn phase(
    init_containers: &[ContainerStatus],
    containers: &[ContainerStatus],
    restart_policy: RestartPolicy,
    pod_is_terminal: bool,
) -> &'static str {
    if !pod_is_terminal && !init_containers.iter().all(completed) {
        let init_failed = init_containers.iter().any(|container| {
            matches!(&container.state, ContainerState::Terminated(termination) if termination.exit_code != 0)
        });
        return if init_failed && restart_policy == RestartPolicy::Never {
            "Failed"
        } else {
            "Pending"
        };
    }
    let mut waiting = 0;
    let mut running = 0;
    let mut stopped = 0;
    let mut succeeded = 0;
    for container in containers {
        match &container.state {
            ContainerState::Running { .. } => running += 1,
            ContainerState::Terminated(termination) => {
                stopped += 1;
                if termination.exit_code == 0 {
                    succeeded += 1;
                }
            }
            ContainerState::Waiting { .. } if container.last_termination.is_some() => stopped += 1,
            ContainerState::Waiting { .. } => waiting += 1,
        }
    }
    if waiting > 0 {
        return "Pending";
    }
    if running > 0 {
        return "Running";
    }
    if stopped == 0 {
        return "Pending";
    }
    if pod_is_terminal {
        return if stopped == succeeded {
            "Succeeded"
        } else {
            "Failed"
        };
    }
    match restart_policy {
        RestartPolicy::Always => "Running",
        _ if stopped == succeeded => "Succeeded",
        RestartPolicy::Never => "Failed",
        RestartPolicy::OnFailure => "Running",
    }
}

/// Kubelet-owned conditions (pkg/kubelet/status/generate.go), in the kubelet's order; `PodScheduled`
/// is left as the scheduler wrote it.
pub(crate) fn conditions(
    init_containers: &[ContainerStatus],
    containers: &[ContainerStatus],
    phase: &str,
    sandbox_ready: bool,
) -> Vec<(&'static str, bool, Option<&'static str>, Option<String>)> {
    let incomplete: Vec<&str> = init_containers
        .iter()
        .filter(|container| !completed(container))
        .map(|container| container.name.as_str())
        .collect();
    let initialized = if incomplete.is_empty() {
        ("Initialized", true, None, None)
    } else {
        let message = format!(
            "containers with incomplete status: [{}]",
            incomplete.join(" ")
        );
        (
            "Initialized",
            false,
            Some("ContainersNotInitialized"),
            Some(message),
        )
    };
    let unready: Vec<&str> = containers
        .iter()
        .filter(|container| !container.ready)
        .map(|container| container.name.as_str())
        .collect();
    let terminal = matches!(phase, "Succeeded" | "Failed");
    let (ready, reason, message) = if terminal {
        (false, Some("PodCompleted"), None)
    } else if unready.is_empty() {
        (true, None, None)
    } else {
        (
            false,
            Some("ContainersNotReady"),
            Some(format!(
                "containers with unready status: [{}]",
                unready.join(" ")
            )),
        )
    };
    vec![
        (
            "PodReadyToStartContainers",
            sandbox_ready && !terminal,
            None,
            None,
        ),
        initialized,
        ("Ready", ready, reason, message.clone()),
        ("ContainersReady", ready, reason, message),
    ]
}

/// Merges freshly computed conditions into the pod's list, keeping `lastTransitionTime` of unchanged
/// statuses and leaving other conditions (PodScheduled, readiness gates) alone.
pub(crate) fn merge_conditions(
    existing: &Value,
    computed: &[(&'static str, bool, Option<&'static str>, Option<String>)],
    now: &str,
) -> Value {
    let existing = existing.as_array().cloned().unwrap_or_default();
    let mut merged: Vec<Value> = Vec::new();
    for (kind, status, reason, message) in computed {
        let status_text = if *status { "True" } else { "False" };
        let previous = existing.iter().find(|condition| condition["type"] == *kind);
        let transition = previous
            .filter(|condition| condition["status"] == status_text)
            .map(|condition| condition["lastTransitionTime"].clone())
            .unwrap_or_else(|| json!(now));
        let mut condition = json!({"type": kind, "status": status_text, "lastProbeTime": null, "lastTransitionTime": transition});
        if let Some(reason) = reason {
            condition["reason"] = json!(reason);
        }
        if let Some(message) = message {
            condition["message"] = json!(message);
        }
        merged.push(condition);
    }
    for condition in existing {
        if !computed.iter().any(|(kind, ..)| condition["type"] == *kind) {
            merged.push(condition);
        }
    }
    json!(merged)
}

pub(crate) fn container_statuses(containers: &[ContainerStatus]) -> Value {
    let mut sorted: Vec<&ContainerStatus> = containers.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    json!(
        sorted
            .into_iter()
            .map(ContainerStatus::to_json)
            .collect::<Vec<_>>()
    )
}

/// Go's `time.Duration.String()` for whole seconds: `10s`, `1m20s`, `5m0s`.
pub(crate) fn go_duration(duration: std::time::Duration) -> String {
    let seconds = duration.as_secs();
    if seconds < 60 {
        format!("{seconds}s")
    } else {
        format!("{}m{}s", seconds / 60, seconds % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(state: ContainerState, last: bool) -> ContainerStatus {
        let termination = Termination {
            exit_code: 1,
            started_at: String::new(),
            finished_at: String::new(),
            container_id: String::new(),
        };
        ContainerStatus {
            last_termination: last.then_some(termination),
            ..ContainerStatus::new("c", "nginx:1")
        }
        .with_state(state)
    }

    impl ContainerStatus {
        fn with_state(mut self, state: ContainerState) -> Self {
            self.state = state;
            self
        }
    }

    #[test]
    fn last_state_names_the_instance_that_ended_not_its_replacement() {
        let mut restarted = container(
            ContainerState::Running {
                started_at: String::new(),
            },
            true,
        );
        if let Some(ended) = restarted.last_termination.as_mut() {
            ended.container_id = "containerd://first".into();
        }
        restarted.container_id = "containerd://second".into();
        let status = restarted.to_json();
        assert_eq!(status["containerID"], "containerd://second");
        assert_eq!(
            status["lastState"]["terminated"]["containerID"],
            "containerd://first"
        );
    }

    fn exited(code: i32) -> ContainerState {
        ContainerState::Terminated(Termination {
            exit_code: code,
            started_at: String::new(),
            finished_at: String::new(),
            container_id: String::new(),
        })
    }

    #[test]
    fn phase_follows_get_phase() {
        let creating = ContainerState::Waiting {
            reason: "ContainerCreating".into(),
            message: None,
        };
        let running = ContainerState::Running {
            started_at: String::new(),
        };
        assert_eq!(
            phase(
                &[],
                &[container(creating.clone(), false)],
                RestartPolicy::Always,
                false
            ),
            "Pending"
        );
        assert_eq!(
            phase(
                &[],
                &[container(running.clone(), false)],
                RestartPolicy::Always,
                false
            ),
            "Running"
        );
        // a crash-looping container waits with a previous termination: still Running
        let back_off = ContainerState::Waiting {
            reason: "CrashLoopBackOff".into(),
            message: None,
        };
        assert_eq!(
            phase(
                &[],
                &[container(back_off, true)],
                RestartPolicy::Always,
                false
            ),
            "Running"
        );
        assert_eq!(
            phase(
                &[],
                &[container(exited(0), false)],
                RestartPolicy::Never,
                false
            ),
            "Succeeded"
        );
        assert_eq!(
            phase(
                &[],
                &[container(exited(2), false)],
                RestartPolicy::Never,
                false
            ),
            "Failed"
        );
        assert_eq!(
            phase(
                &[],
                &[container(exited(2), false)],
                RestartPolicy::OnFailure,
                false
            ),
            "Running"
        );
        // a deleted pod is terminal whatever the restart policy (1.27+)
        assert_eq!(
            phase(
                &[],
                &[container(exited(143), false)],
                RestartPolicy::Always,
                true
            ),
            "Failed"
        );
        assert_eq!(
            phase(
                &[],
                &[container(exited(0), false)],
                RestartPolicy::Always,
                true
            ),
            "Succeeded"
        );
        // one container still creating keeps the pod Pending
        assert_eq!(
            phase(
                &[],
                &[container(running, false), container(creating, false)],
                RestartPolicy::Always,
                false
            ),
            "Pending"
        );
    }

    #[test]
    fn init_containers_keep_the_pod_pending_until_completed() {
        let mut init = ContainerStatus::new("migrate", "app:1");
        let web = ContainerStatus::new("web", "nginx:1");
        assert_eq!(
            phase(
                &[init.clone()],
                std::slice::from_ref(&web),
                RestartPolicy::Always,
                false
            ),
            "Pending"
        );
        let computed = conditions(&[init.clone()], std::slice::from_ref(&web), "Pending", true);
        assert_eq!(
            computed[1],
            (
                "Initialized",
                false,
                Some("ContainersNotInitialized"),
                Some("containers with incomplete status: [migrate]".to_owned())
            )
        );
        init.state = exited(1);
        assert_eq!(
            phase(
                &[init.clone()],
                std::slice::from_ref(&web),
                RestartPolicy::Never,
                false
            ),
            "Failed"
        );
        assert_eq!(
            phase(
                &[init.clone()],
                std::slice::from_ref(&web),
                RestartPolicy::Always,
                false
            ),
            "Pending"
        );
        init.state = exited(0);
        assert_eq!(
            conditions(&[init], &[web], "Pending", true)[1],
            ("Initialized", true, None, None)
        );
    }

    #[test]
    fn conditions_name_unready_containers_and_complete_pods() {
        let mut web = ContainerStatus::new("web", "nginx:1");
        let sidecar = ContainerStatus::new("sidecar", "envoy:1");
        web.ready = true;
        let computed = conditions(&[], &[web.clone(), sidecar], "Running", true);
        assert_eq!(
            computed[2],
            (
                "Ready",
                false,
                Some("ContainersNotReady"),
                Some("containers with unready status: [sidecar]".to_owned())
            )
        );
        assert_eq!(
            conditions(&[], &[web.clone()], "Running", true)[2],
            ("Ready", true, None, None)
        );
        assert_eq!(
            conditions(&[], &[web], "Failed", true)[3].2,
            Some("PodCompleted")
        );
    }

    #[test]
    fn merging_keeps_transition_times_and_foreign_conditions() {
        let existing = json!([
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": "t0"},
            {"type": "Ready", "status": "False", "lastTransitionTime": "t0"},
        ]);
        let merged = merge_conditions(
            &existing,
            &[
                ("Ready", false, Some("ContainersNotReady"), None),
                ("Initialized", true, None, None),
            ],
            "t1",
        );
        assert_eq!(merged[0]["lastTransitionTime"], "t0");
        assert_eq!(merged[1]["lastTransitionTime"], "t1");
        assert_eq!(merged[2]["type"], "PodScheduled");
    }

    #[test]
    fn statuses_are_sorted_and_image_ids_keep_the_repository() {
        let statuses = container_statuses(&[
            ContainerStatus::new("web", "nginx:1.25"),
            ContainerStatus::new("app", "ghcr.io/x/app:2"),
        ]);
        assert_eq!(statuses[0]["name"], "app");
        assert!(
            statuses[0]["imageID"]
                .as_str()
                .unwrap()
                .starts_with("ghcr.io/x/app@sha256:")
        );
        assert_eq!(
            statuses[1]["state"]["waiting"]["reason"],
            "ContainerCreating"
        );
        assert_eq!(
            statuses[1]["imageID"].as_str().unwrap().len(),
            "nginx@sha256:".len() + 64
        );
    }

    #[test]
    fn go_durations_print_like_go() {
        assert_eq!(go_duration(std::time::Duration::from_secs(10)), "10s");
        assert_eq!(go_duration(std::time::Duration::from_secs(80)), "1m20s");
        assert_eq!(go_duration(std::time::Duration::from_secs(300)), "5m0s");
    }
}
