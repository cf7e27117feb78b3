//! Job controller (pkg/controller/job): runs pods until `completions` succeeded, gives up after
//! `backoffLimit` failures or `activeDeadlineSeconds`, with the 1.31 interim conditions
//! (`SuccessCriteriaMet` / `FailureTarget`) before `Complete` / `Failed`.

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::InstantsByUid;
use super::pod_control::{PodControl, write_status};
use crate::control_loop::{Context, Reconciler, TransitionKind};
use crate::pod_util::{
    self, PodName, controller_reference, is_active, is_being_deleted, is_ready, is_terminal,
    owned_by, phase, pod_from_template, set_condition,
};
use crate::recorder::{EventSource, EventType, InvolvedObject};
use crate::store::timestamp;
use crate::store::{JOBS, PODS};

static SOURCE: EventSource = EventSource::controller("job-controller");
const CONDITION_TIMES: &[&str] = &["lastProbeTime"];
/// `DefaultJobPodFailureBackOff` and `MaxJobPodFailureBackOff` (simulated).
const FAILURE_BACK_OFF: Duration = Duration::from_secs(10);
const MAX_FAILURE_BACK_OFF: Duration = Duration::from_secs(600);

#[derive(Default)]
pub(crate) struct Controller {
    /// When the controller first saw each Job (its clock for activeDeadlineSeconds).
    started: InstantsByUid,
    /// Per Job: the failure count last seen and when it last grew (for the replacement back-off).
    failures: HashMap<String, (i64, Instant)>,
}

impl Reconciler for Controller {
    fn sync(&mut self, context: &Context) -> Option<Duration> {
        let (jobs, _) = context.store.list(&JOBS, None);
        let live = pod_util::uids(&jobs);
        self.started.retain(|uid| live.contains(uid));
        self.failures.retain(|uid, _| live.contains(uid.as_str()));
        let mut wake = None;
        for job in jobs.iter().filter(|job| !is_being_deleted(job)) {
            wake = pod_util::earliest(wake, self.sync_job(context, job));
        }
        wake
    }
}

/// Why a Job ends: the condition reason and message it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Succeeded,
    BackoffLimitExceeded,
    DeadlineExceeded,
}

impl Outcome {
    fn reason(self) -> &'static str {
        match self {
            Outcome::Succeeded => "CompletionsReached",
            Outcome::BackoffLimitExceeded => "BackoffLimitExceeded",
            Outcome::DeadlineExceeded => "DeadlineExceeded",
        }
    }

    fn message(self) -> &'static str {
        match self {
            Outcome::Succeeded => "Reached expected number of succeeded pods",
            Outcome::BackoffLimitExceeded => "Job has reached the specified backoff limit",
            Outcome::DeadlineExceeded => "Job was active longer than specified deadline",
        }
    }

    fn interim_condition(self) -> &'static str {
        if self == Outcome::Succeeded {
            "SuccessCriteriaMet"
        } else {
            "FailureTarget"
        }
    }

    fn final_condition(self) -> &'static str {
        if self == Outcome::Succeeded {
            "Complete"
        } else {
            "Failed"
        }
    }

    fn from_reason(reason: &str) -> Option<Outcome> {
        [
            Outcome::Succeeded,
            Outcome::BackoffLimitExceeded,
            Outcome::DeadlineExceeded,
        ]
        .into_iter()
        .find(|outcome| outcome.reason() == reason)
    }
}

fn condition_is_true<'a>(conditions: &'a [Value], kind: &str) -> Option<&'a Value> {
    conditions
        .iter()
        .find(|condition| condition["type"] == kind && condition["status"] == "True")
}

/// Back-off before replacing a failed pod: 10s doubling per failure, capped at 10 minutes.
pub(crate) fn failure_back_off(failures: i64) -> Duration {
    if failures <= 0 {
        return Duration::ZERO;
    }
    let exponent = (failures - 1).min(16) as u32;
    FAILURE_BACK_OFF
        .saturating_mul(2u32.pow(exponent))
        .min(MAX_FAILURE_BACK_OFF)
}

impl Controller {
    fn sync_job(&mut self, context: &Context, job: &Value) -> Option<Duration> {
        let namespace = pod_util::namespace(job);
        let name = pod_util::name(job);
        let uid = pod_util::uid(job).to_owned();
        let mut conditions: Vec<Value> = job["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if condition_is_true(&conditions, "Complete").is_some()
            || condition_is_true(&conditions, "Failed").is_some()
        {
            return None;
        }
        if job["spec"]["suspend"] == json!(true) {
            return None;
        }
        let involved = || InvolvedObject::of(&JOBS, job);
        let completions = pod_util::int_at(job, "/spec/completions", 1);
        let parallelism = pod_util::int_at(job, "/spec/parallelism", 1);
        let backoff_limit = pod_util::int_at(job, "/spec/backoffLimit", 6);
        let on_failure = job["spec"]["template"]["spec"]["restartPolicy"] == "OnFailure";
        let start_time = job["status"]["startTime"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| timestamp(Utc::now()));
        let started = self.started.get(&uid).unwrap_or_else(|| {
            self.started.set(&uid, Instant::now());
            Instant::now()
        });

        let (pods, _) = context.store.list(&PODS, Some(namespace));
        let owned = owned_by(&pods, job);
        let succeeded = owned.iter().filter(|pod| phase(pod) == "Succeeded").count() as i64;
        let failed = owned.iter().filter(|pod| phase(pod) == "Failed").count() as i64;
        let restarts: i64 = owned
            .iter()
            .filter(|pod| is_active(pod))
            .flat_map(|pod| {
                pod["status"]["containerStatuses"]
                    .as_array()
                    .into_iter()
                    .flatten()
            })
            .map(|status| status["restartCount"].as_i64().unwrap_or(0))
            .sum();
        let failures_seen = self
            .failures
            .entry(uid.clone())
            .or_insert((0, Instant::now()));
        if failed > failures_seen.0 {
            *failures_seen = (failed, Instant::now());
        }
        let last_failure = failures_seen.1;

        let interim = ["SuccessCriteriaMet", "FailureTarget"]
            .into_iter()
            .find_map(|kind| condition_is_true(&conditions, kind))
            .and_then(|condition| {
                Outcome::from_reason(condition["reason"].as_str().unwrap_or_default())
            });
        let deadline = job["spec"]["activeDeadlineSeconds"]
            .as_i64()
            .map(|seconds| context.scaled(Duration::from_secs(seconds.max(0) as u64)));
        let outcome = interim.or_else(|| {
            if failed > backoff_limit || (on_failure && failed + restarts > backoff_limit) {
                Some(Outcome::BackoffLimitExceeded)
            } else if deadline.is_some_and(|deadline| started.elapsed() >= deadline) {
                Some(Outcome::DeadlineExceeded)
            } else if succeeded >= completions {
                Some(Outcome::Succeeded)
            } else {
                None
            }
        });

        let pods = PodControl {
            context,
            source: &SOURCE,
            owner_resource: &JOBS,
            owner: job,
        };
        let delete = |pod: &Value| pods.delete(pod);
        let mut wake = None;
        let mut completion_time = None;
        let active: Vec<&Value> = owned.iter().copied().filter(|pod| is_active(pod)).collect();
        if let Some(outcome) = outcome {
            active.iter().for_each(|pod| delete(pod));
            // 1.31 delays the terminal condition until no pod is left running or terminating.
            let delay_terminal = context.options.kube_version.minor >= 31;
            if delay_terminal {
                set_condition(
                    &mut conditions,
                    outcome.interim_condition(),
                    "True",
                    outcome.reason(),
                    outcome.message(),
                    CONDITION_TIMES,
                );
            }
            let (pods, _) = context.store.list(&PODS, Some(namespace));
            let still_running = owned_by(&pods, job).iter().any(|pod| !is_terminal(pod));
            if !delay_terminal || !still_running {
                set_condition(
                    &mut conditions,
                    outcome.final_condition(),
                    "True",
                    outcome.reason(),
                    outcome.message(),
                    CONDITION_TIMES,
                );
                if outcome == Outcome::Succeeded {
                    completion_time = Some(timestamp(Utc::now()));
                    context.recorder.record(
                        &SOURCE,
                        involved(),
                        EventType::Normal,
                        "Completed",
                        "Job completed",
                    );
                } else {
                    context.recorder.record(
                        &SOURCE,
                        involved(),
                        EventType::Warning,
                        outcome.reason(),
                        outcome.message(),
                    );
                }
                context.control.notify(
                    TransitionKind::JobFinished {
                        succeeded: outcome == Outcome::Succeeded,
                    },
                    namespace,
                    name,
                );
            }
        } else {
            let want = parallelism.min(completions - succeeded).max(0);
            let active_count = active.len() as i64;
            let back_off = failure_back_off(failed);
            let ready_at = last_failure + context.scaled(back_off);
            if active_count < want && Instant::now() < ready_at {
                wake = Some(ready_at - Instant::now());
            } else if active_count < want {
                for _ in active_count..want {
                    self.create_pod(context, job);
                }
            } else if active_count > want {
                active
                    .iter()
                    .rev()
                    .take((active_count - want) as usize)
                    .for_each(|pod| delete(pod));
            }
            if let Some(deadline) = deadline {
                wake = pod_util::earliest(wake, Some(deadline.saturating_sub(started.elapsed())));
            }
        }

        let (pods, _) = context.store.list(&PODS, Some(namespace));
        let owned = owned_by(&pods, job);
        let active_now = owned.iter().filter(|pod| is_active(pod)).count() as i64;
        let mut status = json!({
            "startTime": start_time,
            "ready": owned.iter().filter(|pod| is_active(pod) && is_ready(pod)).count(),
            "terminating": owned.iter().filter(|pod| is_being_deleted(pod) && !is_terminal(pod)).count(),
            "uncountedTerminatedPods": {},
        });
        for (field, value) in [
            ("active", active_now),
            (
                "succeeded",
                owned.iter().filter(|pod| phase(pod) == "Succeeded").count() as i64,
            ),
            (
                "failed",
                owned.iter().filter(|pod| phase(pod) == "Failed").count() as i64,
            ),
        ] {
            if value > 0 {
                status[field] = json!(value);
            }
        }
        if !conditions.is_empty() {
            status["conditions"] = json!(conditions);
        }
        if let Some(at) = completion_time {
            status["completionTime"] = json!(at);
        }
        write_status(context, &JOBS, job, status);
        wake
    }

    fn create_pod(&self, context: &Context, job: &Value) {
        let uid = pod_util::uid(job).to_owned();
        let name = pod_util::name(job).to_owned();
        let pod = pod_from_template(
            &job["spec"]["template"],
            pod_util::namespace(job),
            controller_reference(&JOBS, job),
            PodName::Generated(&name),
            &[
                ("batch.kubernetes.io/controller-uid", uid.clone()),
                ("batch.kubernetes.io/job-name", name.clone()),
                ("controller-uid", uid),
                ("job-name", name.clone()),
            ],
        );
        PodControl {
            context,
            source: &SOURCE,
            owner_resource: &JOBS,
            owner: job,
        }
        .create(pod);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_back_off_doubles_from_ten_seconds_to_ten_minutes() {
        assert_eq!(failure_back_off(0), Duration::ZERO);
        assert_eq!(failure_back_off(1), Duration::from_secs(10));
        assert_eq!(failure_back_off(2), Duration::from_secs(20));
        assert_eq!(failure_back_off(4), Duration::from_secs(80));
        assert_eq!(failure_back_off(7), Duration::from_secs(600));
        assert_eq!(failure_back_off(60), Duration::from_secs(600));
    }

    #[test]
    fn outcomes_round_trip_through_their_reason() {
        for outcome in [
            Outcome::Succeeded,
            Outcome::BackoffLimitExceeded,
            Outcome::DeadlineExceeded,
        ] {
            assert_eq!(Outcome::from_reason(outcome.reason()), Some(outcome));
        }
        assert_eq!(Outcome::BackoffLimitExceeded.final_condition(), "Failed");
        assert_eq!(Outcome::Succeeded.interim_condition(), "SuccessCriteriaMet");
    }
}
