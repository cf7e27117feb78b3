//! Behaviour of the decision core, rule by rule (DESIGN §5.1–§5.4).

use super::testkit::*;
use super::*;
use crate::domain::policy::{FailMode, PolicyDuration, TrackTerminationMode, TrackingPolicy};
use crate::domain::verdict::VerdictReason;

fn observe_all(
    tracker: &mut ResourceTracker,
    objects: impl IntoIterator<Item = TrackedObject>,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<Delta> {
    objects
        .into_iter()
        .flat_map(|object| tracker.observe(&object, now))
        .collect()
}

/// The status after observing `object` alone.
fn status_of(object: impl Into<TrackedObject>) -> ResourceStatus {
    let object = object.into();
    let mut tracker = tracker(&object);
    tracker.observe(&object, t(1));
    tracker.status().clone()
}

fn incident_deltas(deltas: &[Delta]) -> Vec<&Incident> {
    deltas
        .iter()
        .filter_map(|delta| match &delta.change {
            Change::Incident { incident, .. } => Some(incident),
            _ => None,
        })
        .collect()
}

fn failed_delta(deltas: &[Delta]) -> Option<&Failure> {
    deltas.iter().find_map(|delta| match &delta.change {
        Change::Failed { failure } => Some(failure),
        _ => None,
    })
}

fn policy(configure: impl FnOnce(&mut TrackingPolicy)) -> TrackingPolicy {
    let mut policy = TrackingPolicy::default();
    configure(&mut policy);
    policy
}

fn assert_waiting(status: &ResourceStatus, message: &str) {
    assert_eq!(status.state, State::Progressing, "{status:?}");
    assert_eq!(status.message, message);
}

fn assert_ready(status: &ResourceStatus, message: &str) {
    assert_eq!(status.state, State::Ready, "{status:?}");
    assert_eq!(status.message, message);
}

mod deployment_readiness {
    use super::*;

    #[test]
    fn waits_until_the_spec_update_is_observed() {
        let status = status_of(
            deployment("web")
                .generation(2)
                .observed(1)
                .updated(1)
                .available(1),
        );
        assert_waiting(
            &status,
            "Waiting for deployment spec update to be observed...",
        );
    }

    #[test]
    fn reports_each_kubectl_stage_in_order() {
        assert_waiting(
            &status_of(deployment("web").replicas(3).updated(1).available(1)),
            "Waiting for deployment \"web\" rollout to finish: 1 out of 3 new replicas have been updated...",
        );
        assert_waiting(
            &status_of(
                deployment("web")
                    .replicas(3)
                    .updated(3)
                    .total(4)
                    .available(3),
            ),
            "Waiting for deployment \"web\" rollout to finish: 1 old replicas are pending termination...",
        );
        assert_waiting(
            &status_of(deployment("web").replicas(3).updated(3).available(2)),
            "Waiting for deployment \"web\" rollout to finish: 2 of 3 updated replicas are available...",
        );
        let done = status_of(deployment("web").replicas(3).updated(3).available(3));
        assert_ready(&done, "deployment \"web\" successfully rolled out");
        assert_eq!(done.ready.as_deref(), Some("3/3"));
        assert_eq!(done.failures.as_deref(), Some("0/3 allowed"));
    }

    #[test]
    fn absent_status_fields_are_zero() {
        assert_waiting(
            &status_of(deployment("web").replicas(2)),
            "Waiting for deployment \"web\" rollout to finish: 0 out of 2 new replicas have been updated...",
        );
        assert_waiting(
            &status_of(deployment("web").no_status()),
            "Waiting for deployment spec update to be observed...",
        );
    }

    #[test]
    fn progress_deadline_exceeded_is_terminal() {
        let object: TrackedObject = deployment("web")
            .replicas(3)
            .updated(1)
            .progress_deadline_exceeded()
            .into();
        let mut tracker = tracker_with(&object, policy(|p| p.failures_allowed_per_replica = 100));
        let deltas = tracker.observe(&object, t(1));
        let failure = failed_delta(&deltas).expect("failed");
        assert_eq!(failure.kind, FailureKind::Terminal);
        assert_eq!(failure.reason, VerdictReason::ProgressDeadlineExceeded);
        assert_eq!(
            tracker.status().message,
            "deployment \"web\" exceeded its progress deadline"
        );
    }

    #[test]
    fn paused_is_ready_with_a_note() {
        let status = status_of(deployment("web").replicas(3).updated(1).paused());
        assert_ready(
            &status,
            "deployment \"web\" is paused: no rollout to wait for",
        );
    }
}

mod stateful_set_readiness {
    use super::*;

    #[test]
    fn waits_for_observation_and_ready_pods() {
        assert_waiting(
            &status_of(statefulset("db").replicas(3).observed(0)),
            "Waiting for statefulset spec update to be observed...",
        );
        assert_waiting(
            &status_of(statefulset("db").replicas(3).ready(1).updated(3)),
            "Waiting for 2 pods to be ready...",
        );
    }

    #[test]
    fn partitioned_roll_out() {
        assert_waiting(
            &status_of(
                statefulset("db")
                    .replicas(3)
                    .partition(1)
                    .ready(3)
                    .updated(1),
            ),
            "Waiting for partitioned roll out to finish: 1 out of 2 new pods have been updated...",
        );
        assert_ready(
            &status_of(
                statefulset("db")
                    .replicas(3)
                    .partition(1)
                    .ready(3)
                    .updated(2),
            ),
            "partitioned roll out complete: 2 new pods have been updated...",
        );
    }

    #[test]
    fn default_partition_zero_waits_for_every_pod() {
        assert_waiting(
            &status_of(statefulset("db").replicas(3).ready(3).updated(2)),
            "Waiting for partitioned roll out to finish: 2 out of 3 new pods have been updated...",
        );
        let done = status_of(statefulset("db").replicas(3).ready(3).updated(3));
        assert_ready(
            &done,
            "partitioned roll out complete: 3 new pods have been updated...",
        );
        assert_eq!(done.ready.as_deref(), Some("3/3"));
    }

    #[test]
    fn without_rolling_update_compares_revisions() {
        assert_waiting(
            &status_of(
                statefulset("db")
                    .without_rolling_update()
                    .replicas(3)
                    .ready(3)
                    .updated(2)
                    .revisions("db-1", "db-2"),
            ),
            "waiting for statefulset rolling update to complete 2 pods at revision db-2...",
        );
        assert_ready(
            &status_of(
                statefulset("db")
                    .without_rolling_update()
                    .replicas(3)
                    .ready(3)
                    .current(3)
                    .revisions("db-2", "db-2"),
            ),
            "statefulset rolling update complete 3 pods at revision db-2...",
        );
    }

    #[test]
    fn on_delete_is_ready_once_observed_with_a_note() {
        assert_ready(
            &status_of(statefulset("db").on_delete().replicas(3).ready(1)),
            "statefulset \"db\" uses the OnDelete strategy: pods change only when deleted",
        );
        assert_waiting(
            &status_of(statefulset("db").on_delete().observed(0)),
            "Waiting for statefulset spec update to be observed...",
        );
    }
}

mod daemon_set_readiness {
    use super::*;

    #[test]
    fn follows_kubectl() {
        assert_waiting(
            &status_of(daemonset("agent").generation(2).desired(3)),
            "Waiting for daemon set spec update to be observed...",
        );
        assert_waiting(
            &status_of(daemonset("agent").desired(3).updated(1).available(3)),
            "Waiting for daemon set \"agent\" rollout to finish: 1 out of 3 new pods have been updated...",
        );
        assert_waiting(
            &status_of(daemonset("agent").desired(3).updated(3).available(2)),
            "Waiting for daemon set \"agent\" rollout to finish: 2 of 3 updated pods are available...",
        );
        assert_ready(
            &status_of(daemonset("agent").desired(3).updated(3).available(3)),
            "daemon set \"agent\" successfully rolled out",
        );
        assert_ready(
            &status_of(daemonset("agent").on_delete().desired(3)),
            "daemon set \"agent\" uses the OnDelete strategy: pods change only when deleted",
        );
    }

    #[test]
    fn pods_of_an_older_template_generation_do_not_count() {
        let object: TrackedObject = daemonset("agent")
            .template_generation("2")
            .desired(1)
            .into();
        let mut tracker = tracker(&object);
        let old = pod("agent-old")
            .of("DaemonSet", "agent", "h1")
            .label("pod-template-generation", "1")
            .crash_loop(3, "x1");
        let new = pod("agent-new")
            .of("DaemonSet", "agent", "h2")
            .label("pod-template-generation", "2")
            .crash_loop(1, "y1");
        let deltas = observe_all(&mut tracker, [object, old.into(), new.into()], t(1));
        let incidents = incident_deltas(&deltas);
        assert_eq!(incidents.len(), 1);
        assert_eq!(incidents[0].detail.pod.as_deref(), Some("agent-new"));
    }
}

mod other_kinds {
    use super::*;

    fn from_json(value: serde_json::Value) -> TrackedObject {
        TrackedObject::from_value(value).expect("valid object")
    }

    #[test]
    fn jobs_complete_or_fail() {
        assert_ready(
            &status_of(job("migrate").succeeded(1).condition(
                "Complete",
                "CompletionsReached",
                "done",
            )),
            "job \"migrate\" completed",
        );
        let failed = status_of(job("migrate").backoff_limit(1).failed(2).condition(
            "Failed",
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
        ));
        assert_eq!(failed.state, State::Failed);
        assert_eq!(
            failed.message,
            "job \"migrate\" failed: BackoffLimitExceeded: Job has reached the specified backoff limit"
        );
        assert_eq!(failed.failures.as_deref(), Some("2/1 allowed"));
    }

    #[test]
    fn job_pod_failures_are_evidence_until_the_backoff_limit() {
        let running: TrackedObject = job("migrate").backoff_limit(3).active(1).failed(2).into();
        let mut tracker = tracker(&running);
        let deltas = observe_all(
            &mut tracker,
            [
                running,
                pod("migrate-a")
                    .of("Job", "migrate", "")
                    .phase("Failed")
                    .terminated(1, "a", 0)
                    .into(),
                pod("migrate-b")
                    .of("Job", "migrate", "")
                    .phase("Failed")
                    .terminated(1, "b", 0)
                    .into(),
            ],
            t(1),
        );
        assert!(incident_deltas(&deltas).len() >= 2);
        assert!(deltas.iter().all(|delta| !matches!(
            &delta.change,
            Change::Incident {
                allowance: Some(_),
                ..
            }
        )));
        assert_eq!(tracker.state(), State::Progressing);
        assert_eq!(tracker.status().failures.as_deref(), Some("2/3 allowed"));

        let failed: TrackedObject = job("migrate")
            .backoff_limit(3)
            .failed(4)
            .condition(
                "Failed",
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
            )
            .into();
        let failure = failed_delta(&tracker.observe(&failed, t(2)))
            .cloned()
            .expect("failed");
        assert_eq!(failure.reason, VerdictReason::BackoffLimitExceeded);
        assert_eq!(failure.kind, FailureKind::Terminal);
        assert_eq!(failure.evidence.pod.as_deref(), Some("migrate-b"));
    }

    #[test]
    fn job_pod_failures_seen_before_the_job_itself_are_evidence_only() {
        let failed: TrackedObject = job("migrate")
            .failed(1)
            .condition(
                "Failed",
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
            )
            .into();
        let mut tracker = tracker(&failed);
        // The pods watch delivered first: one failed pod, two incidents (exit code, pod failed).
        let deltas = observe_all(
            &mut tracker,
            [pod("migrate-a")
                .of("Job", "migrate", "")
                .phase("Failed")
                .terminated(1, "a", 0)
                .into()],
            t(1),
        );
        assert!(!incident_deltas(&deltas).is_empty());
        assert!(failed_delta(&deltas).is_none(), "{deltas:?}");
        let failure = failed_delta(&tracker.observe(&failed, t(2)))
            .cloned()
            .expect("failed");
        assert_eq!(failure.reason, VerdictReason::BackoffLimitExceeded);
    }

    #[test]
    fn a_job_seen_failed_before_its_pod_names_that_pod_as_evidence() {
        let running: TrackedObject = job("migrate").active(1).into();
        let mut tracker = tracker(&running);
        observe_all(
            &mut tracker,
            [
                running,
                pod("migrate-a")
                    .of("Job", "migrate", "")
                    .running(t(0), true)
                    .ready()
                    .into(),
            ],
            t(1),
        );
        let failed: TrackedObject = job("migrate")
            .failed(1)
            .condition(
                "Failed",
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
            )
            .into();
        let failure = failed_delta(&tracker.observe(&failed, t(2)))
            .cloned()
            .expect("failed");
        assert_eq!(failure.evidence.pod.as_deref(), Some("migrate-a"));
        assert_eq!(failure.evidence.container.as_deref(), Some("app"));
    }

    #[test]
    fn pods_services_claims_definitions_and_passive_kinds() {
        assert_ready(&status_of(pod("solo").ready()), "pod \"solo\" is ready");
        assert_ready(
            &status_of(pod("solo").phase("Succeeded")),
            "pod \"solo\" succeeded",
        );
        assert_eq!(status_of(pod("solo").phase("Failed")).state, State::Failed);

        let service = |spec: serde_json::Value, status: serde_json::Value| {
            status_of(from_json(serde_json::json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "web", "namespace": NAMESPACE},
                "spec": spec, "status": status
            })))
        };
        assert_eq!(
            service(
                serde_json::json!({"clusterIP": "10.0.0.1"}),
                serde_json::json!({})
            )
            .state,
            State::Ready
        );
        assert_eq!(
            service(
                serde_json::json!({"type": "LoadBalancer", "clusterIP": "10.0.0.1"}),
                serde_json::json!({})
            )
            .state,
            State::Progressing
        );
        assert_eq!(
            service(
                serde_json::json!({"type": "LoadBalancer", "clusterIP": "10.0.0.1"}),
                serde_json::json!({"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}})
            )
            .state,
            State::Ready
        );

        let claim = |phase: &str| {
            status_of(from_json(serde_json::json!({
                "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": "data", "namespace": NAMESPACE}, "status": {"phase": phase}
            })))
            .state
        };
        assert_eq!(claim("Pending"), State::Progressing);
        assert_eq!(claim("Bound"), State::Ready);

        let definition = |established: &str| {
            status_of(from_json(serde_json::json!({
                "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                "metadata": {"name": "widgets.example.com"},
                "spec": {"group": "example.com", "names": {"kind": "Widget", "plural": "widgets"},
                         "scope": "Namespaced", "versions": []},
                "status": {"conditions": [{"type": "Established", "status": established}]}
            })))
            .state
        };
        assert_eq!(definition("False"), State::Progressing);
        assert_eq!(definition("True"), State::Ready);

        let config = status_of(from_json(serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": NAMESPACE}
        })));
        assert_ready(&config, "configmap \"settings\" is present");
    }

    #[test]
    fn empty_custom_status_is_ready_only_after_settling() {
        let widget = from_json(serde_json::json!({
            "apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": "w", "namespace": NAMESPACE}
        }));
        let mut tracker = tracker(&widget);
        tracker.observe(&widget, t(1));
        assert_eq!(tracker.state(), State::Progressing);
        tracker.tick(t(1) + chrono::Duration::seconds(5));
        assert_eq!(tracker.state(), State::Progressing);
        let deltas =
            tracker.tick(t(1) + chrono::Duration::from_std(CUSTOM_RESOURCE_SETTLE).unwrap());
        assert!(
            deltas
                .iter()
                .any(|delta| matches!(delta.change, Change::Ready { .. }))
        );
        assert!(
            tracker.status().message.contains("reports no status"),
            "{:?}",
            tracker.status()
        );
    }

    #[test]
    fn pending_until_the_object_appears() {
        let object: TrackedObject = deployment("web").into();
        let mut tracker = tracker(&object);
        assert_eq!(tracker.state(), State::Pending);
        assert_eq!(
            tracker.status().message,
            "Waiting for Deployment \"web\" to appear..."
        );
        tracker.observe(&object, t(1));
        tracker.observe_deleted(&object, t(2));
        assert_eq!(tracker.state(), State::Pending);
        assert_eq!(tracker.status().message, "Deployment \"web\" was deleted");
    }
}

mod incidents {
    use super::*;

    /// A Deployment `web` (1 replica, rolling out) with its current ReplicaSet `web-new` (revision 2)
    /// and old ReplicaSet `web-old` (revision 1).
    fn web_rollout(policy: TrackingPolicy) -> ResourceTracker {
        let object: TrackedObject = deployment("web").updated(0).total(1).into();
        let mut tracker = tracker_with(&object, policy);
        observe_all(
            &mut tracker,
            [
                object,
                replica_set("web", "old", 1),
                replica_set("web", "new", 2),
            ],
            t(1),
        );
        tracker
    }

    fn new_pod(name: &str) -> PodBuilder {
        pod(name).of_replica_set("web", "new")
    }

    #[test]
    fn an_incident_seen_in_twenty_updates_counts_once() {
        let mut tracker = web_rollout(policy(|p| p.failures_allowed_per_replica = 5));
        let mut deltas = Vec::new();
        for second in 0..20 {
            let update: TrackedObject = new_pod("web-new-a").waiting("ImagePullBackOff", 0).into();
            deltas.extend(tracker.observe(&update, t(2 + second)));
        }
        assert_eq!(incident_deltas(&deltas).len(), 1);
        assert_eq!(tracker.incidents().len(), 1);
        assert_eq!(tracker.status().failures.as_deref(), Some("1/5 allowed"));
    }

    #[test]
    fn events_older_than_tracking_start_are_ignored() {
        let mut tracker = web_rollout(TrackingPolicy::default());
        let old: TrackedObject = event("FailedCreate", "ReplicaSet", "web-new")
            .message("Error creating: pods \"web-new-x\" is forbidden: exceeded quota")
            .at(t(-60))
            .into();
        assert!(tracker.observe(&old, t(2)).is_empty());
        assert!(tracker.incidents().is_empty());

        let fresh: TrackedObject = event("FailedCreate", "ReplicaSet", "web-new")
            .at(t(2))
            .into();
        let deltas = tracker.observe(&fresh, t(2));
        assert_eq!(incident_deltas(&deltas).len(), 1);
        assert!(
            deltas
                .iter()
                .any(|delta| matches!(delta.change, Change::K8sEvent { .. }))
        );
    }

    #[test]
    fn the_same_event_object_counts_once_even_when_its_count_grows() {
        let mut tracker = web_rollout(policy(|p| p.failures_allowed_per_replica = 5));
        let mut deltas = Vec::new();
        for count in 1..=3 {
            let repeated: TrackedObject = event("FailedCreate", "ReplicaSet", "web-new")
                .count(count)
                .into();
            deltas.extend(tracker.observe(&repeated, t(2)));
        }
        assert_eq!(incident_deltas(&deltas).len(), 1);
        let relayed = deltas
            .iter()
            .filter(|delta| matches!(delta.change, Change::K8sEvent { .. }))
            .count();
        assert_eq!(relayed, 3, "each new occurrence is relayed");
        assert!(
            tracker
                .observe(
                    &event("FailedCreate", "ReplicaSet", "web-new")
                        .count(3)
                        .into(),
                    t(3)
                )
                .is_empty()
        );
    }

    /// The kubelet's folded `Unhealthy` Event about `pod`'s container `app`: `count` failures so
    /// far, the latest at `at`.
    fn readiness_probe_failed(
        pod: &str,
        count: i32,
        at: chrono::DateTime<chrono::Utc>,
    ) -> TrackedObject {
        event("Unhealthy", "Pod", pod)
            .field_path("spec.containers{app}")
            .message("Readiness probe failed: HTTP probe failed with statuscode: 503")
            .count(count)
            .at(at)
            .into()
    }

    #[test]
    fn a_terminating_pods_readiness_failures_are_ignored() {
        let mut tracker = web_rollout(TrackingPolicy::default());
        let unready = |name| new_pod(name).readiness_probe(0, 10, 3).running(t(0), false);
        let terminating: TrackedObject = unready("web-new-a").terminating().into();
        let deltas = observe_all(
            &mut tracker,
            [terminating, readiness_probe_failed("web-new-a", 12, t(120))],
            t(120),
        );
        assert!(incident_deltas(&deltas).is_empty());
        assert!(
            deltas
                .iter()
                .all(|delta| !matches!(delta.change, Change::K8sEvent { .. }))
        );

        let deltas = observe_all(
            &mut tracker,
            [
                unready("web-new-b").into(),
                readiness_probe_failed("web-new-b", 13, t(121)),
            ],
            t(121),
        );
        let incidents = incident_deltas(&deltas);
        assert_eq!(incidents.len(), 1);
        assert_eq!(incidents[0].reason, VerdictReason::ReadinessProbeFailed);
    }

    #[test]
    fn a_container_not_ready_yet_is_progress_however_long_it_takes() {
        let unready: TrackedObject = new_pod("web-new-a")
            .readiness_probe(0, 1, 3)
            .running(t(0), false)
            .into();
        let mut tracker = web_rollout(TrackingPolicy::default());
        let mut deltas = tracker.observe(&unready, t(2));
        deltas.extend(tracker.tick(t(200)));
        assert!(incident_deltas(&deltas).is_empty());
        assert_eq!(tracker.state(), State::Progressing);
    }

    #[test]
    fn readiness_failures_count_only_when_reported_past_the_window() {
        // initialDelaySeconds 10 + periodSeconds 5 × failureThreshold 3 = 25s.
        let unready: TrackedObject = new_pod("web-new-a")
            .readiness_probe(10, 5, 3)
            .running(t(0), false)
            .into();
        let mut tracker = web_rollout(TrackingPolicy::default());
        tracker.observe(&unready, t(20));
        let inside = readiness_probe_failed("web-new-a", 3, t(25));
        assert!(incident_deltas(&tracker.observe(&inside, t(25))).is_empty());
        assert!(
            incident_deltas(&tracker.tick(t(40))).is_empty(),
            "time alone is no evidence"
        );
        let past = readiness_probe_failed("web-new-a", 4, t(26));
        let incidents = tracker.observe(&past, t(26));
        let incidents = incident_deltas(&incidents);
        assert_eq!(incidents.len(), 1);
        assert_eq!(
            incidents[0].message,
            "container \"app\" failed its readiness probe 26s after starting (Readiness probe \
             failed: HTTP probe failed with statuscode: 503), past its 25s window"
        );
        let again = readiness_probe_failed("web-new-a", 5, t(31));
        assert!(
            incident_deltas(&tracker.observe(&again, t(31))).is_empty(),
            "one incident per container instance"
        );

        let mut patient = web_rollout(policy(|p| {
            p.ignore_readiness_probe_fails_for.insert(
                "app".to_owned(),
                PolicyDuration(std::time::Duration::from_secs(60)),
            );
        }));
        patient.observe(&unready, t(20));
        let inside = readiness_probe_failed("web-new-a", 10, t(60));
        assert!(incident_deltas(&patient.observe(&inside, t(60))).is_empty());
        let past = readiness_probe_failed("web-new-a", 11, t(61));
        assert_eq!(incident_deltas(&patient.observe(&past, t(61))).len(), 1);
    }

    #[test]
    fn whole_second_timestamps_never_shrink_the_readiness_window() {
        // Window 3s (period 1 × threshold 3). The container really started at 0.9s, recorded as
        // 0s; its probes failed at 0.9, 1.9, 2.9 (recorded 2s) and passed at 3.9. The last failure
        // is 2s after the recorded start: inside the window. A failure recorded at 3s (really
        // 3.0–3.99s after a start in 0–0.99s) may still lie inside it; only 4s is certainly past.
        let started = t(0) + chrono::Duration::milliseconds(900);
        let unready = || {
            new_pod("web-new-a")
                .readiness_probe(0, 1, 3)
                .running(started, false)
        };
        let mut tracker = web_rollout(policy(|p| p.failures_allowed_per_replica = 0));
        let mut deltas = observe_all(
            &mut tracker,
            [
                unready().into(),
                readiness_probe_failed("web-new-a", 3, t(2) + chrono::Duration::milliseconds(900)),
            ],
            t(3),
        );
        deltas.extend(tracker.observe(
            &readiness_probe_failed("web-new-a", 4, t(3) + chrono::Duration::milliseconds(999)),
            t(4),
        ));
        assert!(incident_deltas(&deltas).is_empty(), "{deltas:#?}");
        assert_ne!(tracker.state(), State::Failed);

        let deltas = tracker.observe(&readiness_probe_failed("web-new-a", 5, t(4)), t(5));
        assert_eq!(incident_deltas(&deltas).len(), 1);
        assert_eq!(tracker.state(), State::Failed);
    }

    #[test]
    fn a_restarted_container_is_not_blamed_for_its_previous_instance_probe_failures() {
        let mut tracker = web_rollout(TrackingPolicy::default());
        let restarted: TrackedObject = new_pod("web-new-a")
            .readiness_probe(0, 1, 3)
            .restarted_after_crash(1, "first", t(50))
            .into();
        let deltas = observe_all(
            &mut tracker,
            [restarted, readiness_probe_failed("web-new-a", 30, t(40))],
            t(51),
        );
        assert!(
            incident_deltas(&deltas)
                .iter()
                .all(|incident| incident.reason != VerdictReason::ReadinessProbeFailed),
            "{deltas:#?}"
        );
    }

    #[test]
    fn readiness_lost_after_being_ready_is_evidence_past_the_window() {
        // Started long ago and was ready (the pod was Ready after it started); NotReady since t(100).
        let flapping = |since| -> TrackedObject {
            new_pod("web-new-a")
                .readiness_probe(0, 10, 3)
                .running(t(-3600), false)
                .unready_since(since)
                .into()
        };
        let mut tracker = web_rollout(TrackingPolicy::default());
        let incidents = tracker.observe(&flapping(t(100)), t(110));
        let incidents = incident_deltas(&incidents);
        assert_eq!(incidents.len(), 1);
        assert!(
            incidents[0]
                .message
                .contains("turned not ready 3700s after starting"),
            "{}",
            incidents[0].message
        );

        // NotReady since the container's own start: it never was ready, that is no evidence.
        let mut tracker = web_rollout(TrackingPolicy::default());
        let never_ready: TrackedObject = new_pod("web-new-a")
            .readiness_probe(0, 10, 3)
            .running(t(5), false)
            .unready_since(t(5))
            .into();
        let mut deltas = tracker.observe(&never_ready, t(200));
        deltas.extend(tracker.tick(t(300)));
        assert!(incident_deltas(&deltas).is_empty());
    }

    #[test]
    fn old_revision_pods_never_count() {
        let mut tracker = web_rollout(TrackingPolicy::default());
        let old: TrackedObject = pod("web-old-a")
            .of_replica_set("web", "old")
            .crash_loop(5, "o5")
            .into();
        assert!(incident_deltas(&tracker.observe(&old, t(2))).is_empty());
        let new: TrackedObject = new_pod("web-new-a").crash_loop(1, "n1").into();
        assert_eq!(incident_deltas(&tracker.observe(&new, t(3))).len(), 1);
    }

    #[test]
    fn pods_count_only_once_the_resource_and_its_new_spec_are_observed() {
        // Right after an upgrade the pods' watch may deliver the previous revision's pods before
        // the Deployment arrives, and the controller may not have created the new ReplicaSet yet:
        // the newest one is still the previous revision's, whose crash loop is not this deploy's.
        let upgraded: TrackedObject = deployment("web").generation(2).observed(1).into();
        let mut tracker = tracker_with(&upgraded, TrackingPolicy::default());
        let old: TrackedObject = pod("web-old-a")
            .of_replica_set("web", "old")
            .crash_loop(5, "o5")
            .into();
        assert!(incident_deltas(&tracker.observe(&old, t(1))).is_empty());
        observe_all(&mut tracker, [upgraded, replica_set("web", "old", 1)], t(2));
        assert!(incident_deltas(&tracker.observe(&old, t(2))).is_empty());
        assert!(tracker.incidents().is_empty());

        let observed: TrackedObject = deployment("web").generation(2).observed(2).into();
        observe_all(&mut tracker, [observed, replica_set("web", "new", 2)], t(3));
        assert!(incident_deltas(&tracker.observe(&old, t(4))).is_empty());
        let new: TrackedObject = new_pod("web-new-a").crash_loop(1, "n1").into();
        assert_eq!(incident_deltas(&tracker.observe(&new, t(5))).len(), 1);
    }

    #[test]
    fn one_restart_within_an_allowance_of_one_is_fine() {
        let mut tracker = web_rollout(TrackingPolicy::default());
        let sequence: Vec<TrackedObject> = vec![
            new_pod("web-new-a").running(t(1), false).into(),
            new_pod("web-new-a").terminated(1, "first", 0).into(),
            new_pod("web-new-a").crash_loop(1, "first").into(),
            new_pod("web-new-a")
                .crash_loop(1, "first")
                .running(t(20), true)
                .into(),
            deployment("web").updated(1).available(1).into(),
        ];
        let deltas = observe_all(&mut tracker, sequence, t(20));
        assert_eq!(incident_deltas(&deltas).len(), 1);
        assert!(failed_delta(&deltas).is_none());
        assert_eq!(tracker.state(), State::Ready);
        assert_eq!(tracker.status().failures.as_deref(), Some("1/1 allowed"));
    }

    #[test]
    fn one_restart_fails_with_an_allowance_of_zero() {
        let mut tracker = web_rollout(policy(|p| p.failures_allowed_per_replica = 0));
        let deltas = tracker.observe(&new_pod("web-new-a").terminated(1, "first", 0).into(), t(5));
        let failure = failed_delta(&deltas).expect("failed");
        assert_eq!(failure.kind, FailureKind::AllowanceExceeded);
        assert_eq!(failure.reason, VerdictReason::CrashLoopBackOff);
        assert_eq!(
            failure.message,
            "1 failures, 0 allowed: container \"app\" crashed once (exit code 1, last: Error)"
        );
        let detail = &failure.detail;
        assert_eq!(
            (
                detail.pod.as_deref(),
                detail.container.as_deref(),
                detail.exit_code,
                detail.termination_reason.as_deref()
            ),
            (Some("web-new-a"), Some("app"), Some(1), Some("Error"))
        );
        // Ready afterwards changes nothing: the deploy has already failed.
        tracker.observe(&deployment("web").updated(1).available(1).into(), t(30));
        assert_eq!(tracker.state(), State::Failed);
    }

    #[test]
    fn a_crash_beyond_the_allowance_fails_even_when_readiness_is_reached_in_the_same_pass() {
        let mut tracker = web_rollout(policy(|p| p.failures_allowed_per_replica = 0));
        tracker.observe(&deployment("web").updated(1).available(1).into(), t(5));
        assert_eq!(tracker.state(), State::Ready);
        let crashed_then_ready: TrackedObject = new_pod("web-new-a")
            .restarted_after_crash(1, "c1", t(4))
            .running(t(4), true)
            .into();
        let deltas = tracker.observe(&crashed_then_ready, t(6));
        assert_eq!(incident_deltas(&deltas).len(), 1);
        assert_eq!(tracker.state(), State::Failed);
        assert_eq!(
            failed_delta(&deltas).map(|failure| failure.reason),
            Some(VerdictReason::CrashLoopBackOff)
        );

        let mut hopeful = web_rollout(policy(|p| {
            p.failures_allowed_per_replica = 0;
            p.fail_mode = FailMode::HopeUntilEndOfDeployProcess;
        }));
        hopeful.observe(&deployment("web").updated(1).available(1).into(), t(5));
        hopeful.observe(&crashed_then_ready, t(6));
        assert_eq!(hopeful.state(), State::Ready, "ready again is recovery");
    }

    #[test]
    fn crash_loop_beyond_the_allowance_fails_with_the_previous_instance() {
        let mut tracker = web_rollout(TrackingPolicy::default());
        let backoff: TrackedObject = event("BackOff", "Pod", "web-new-a")
            .message(
                "Back-off restarting failed container app in pod web-new-a_prod(uid-web-new-a)",
            )
            .into();
        observe_all(
            &mut tracker,
            [new_pod("web-new-a").crash_loop(1, "c1").into(), backoff],
            t(10),
        );
        assert_eq!(tracker.state(), State::Progressing);
        let deltas = tracker.observe(&new_pod("web-new-a").crash_loop(2, "c2").into(), t(40));
        let failure = failed_delta(&deltas).expect("failed");
        assert_eq!(failure.reason, VerdictReason::CrashLoopBackOff);
        assert_eq!(failure.evidence.pod.as_deref(), Some("web-new-a"));
        assert_eq!(failure.evidence.container.as_deref(), Some("app"));
        assert!(failure.evidence.previous_instance);
        assert_eq!(failure.evidence.events.len(), 1);
        assert_eq!(failure.evidence.events[0].reason, "BackOff");
        assert!(failure.evidence.log_lines.is_empty());
        assert_eq!(tracker.status().failures.as_deref(), Some("2/1 allowed"));
    }

    #[test]
    fn a_crash_read_before_the_restart_shows_the_crashed_instance_itself() {
        let mut tracker = web_rollout(policy(|p| p.failures_allowed_per_replica = 0));
        let deltas = tracker.observe(&new_pod("web-new-a").terminated(1, "c0", 0).into(), t(5));
        let failure = failed_delta(&deltas).expect("failed");
        assert!(
            !failure.evidence.previous_instance,
            "the crashed instance is still the current one: {failure:?}"
        );
    }

    #[test]
    fn a_crash_judged_during_back_off_shows_the_previous_instance() {
        // The crash was seen as `terminated`, but the verdict comes (no activity) while the
        // container waits to restart: its log is the previous instance's.
        let mut tracker = web_rollout(policy(|p| {
            p.fail_mode = FailMode::IgnoreAndContinueDeployProcess;
            p.no_activity_timeout = PolicyDuration(std::time::Duration::from_secs(30));
        }));
        observe_all(
            &mut tracker,
            [
                new_pod("web-new-a").terminated(1, "c1", 1).into(),
                new_pod("web-new-a").crash_loop(1, "c1").into(),
            ],
            t(5),
        );
        let deltas = tracker.tick(t(40));
        let failure = failed_delta(&deltas).expect("failed");
        assert_eq!(failure.reason, VerdictReason::NoActivityTimeout);
        assert_eq!(failure.evidence.container.as_deref(), Some("app"));
        assert!(failure.evidence.previous_instance, "{failure:?}");
    }

    #[test]
    fn a_crash_judged_after_the_restart_shows_the_previous_instance() {
        let mut tracker = web_rollout(policy(|p| {
            p.fail_mode = FailMode::IgnoreAndContinueDeployProcess;
            p.no_activity_timeout = PolicyDuration(std::time::Duration::from_secs(30));
        }));
        observe_all(
            &mut tracker,
            [
                new_pod("web-new-a").terminated(1, "c0", 0).into(),
                new_pod("web-new-a").running(t(6), false).restarts(1).into(),
            ],
            t(6),
        );
        let deltas = tracker.tick(t(40));
        let failure = failed_delta(&deltas).expect("failed");
        assert!(failure.evidence.previous_instance, "{failure:?}");
    }

    #[test]
    fn container_creation_errors_are_incidents() {
        for reason in [
            "CreateContainerConfigError",
            "CreateContainerError",
            "RunContainerError",
        ] {
            let mut tracker = web_rollout(policy(|p| p.failures_allowed_per_replica = 0));
            let deltas = tracker.observe(&new_pod("web-new-a").waiting(reason, 0).into(), t(5));
            let failure = failed_delta(&deltas).expect("failed");
            assert_eq!(failure.kind, FailureKind::AllowanceExceeded, "{reason}");
            assert_eq!(
                Some(failure.reason),
                VerdictReason::of_waiting_container(reason)
            );
        }
    }

    #[test]
    fn an_evicted_pod_is_an_incident() {
        let mut tracker = web_rollout(TrackingPolicy::default());
        let evicted: TrackedObject = new_pod("web-new-a")
            .phase("Failed")
            .reason("Evicted")
            .into();
        let incidents = incident_deltas(&tracker.observe(&evicted, t(5))).len();
        assert_eq!(incidents, 1);
        let incident = &tracker.incidents()[0];
        assert_eq!(incident.reason, VerdictReason::PodFailed);
        assert_eq!(incident.detail.original_reason.as_deref(), Some("Evicted"));
    }

    #[test]
    fn crashes_are_told_apart_by_restart_count_without_container_ids() {
        let mut tracker = web_rollout(policy(|p| p.failures_allowed_per_replica = 5));
        let sequence: Vec<TrackedObject> = vec![
            new_pod("web-new-a")
                .terminated(1, "x", 0)
                .without_container_ids()
                .into(),
            new_pod("web-new-a")
                .crash_loop(1, "x")
                .without_container_ids()
                .into(),
            new_pod("web-new-a")
                .terminated(1, "y", 1)
                .without_container_ids()
                .into(),
            new_pod("web-new-a")
                .crash_loop(2, "y")
                .without_container_ids()
                .into(),
        ];
        observe_all(&mut tracker, sequence, t(5));
        assert_eq!(tracker.incidents().len(), 2);
    }

    #[test]
    fn a_crash_first_seen_after_its_restart_counts_once() {
        let mut tracker = web_rollout(policy(|p| p.failures_allowed_per_replica = 0));
        let deltas = tracker.observe(
            &new_pod("web-new-a")
                .restarted_after_crash(1, "c1", t(3))
                .into(),
            t(4),
        );
        let failure = failed_delta(&deltas).expect("failed");
        assert_eq!(failure.reason, VerdictReason::CrashLoopBackOff);
        assert!(failure.evidence.previous_instance);
        // The same dead instance, later crash looping: no second incident.
        tracker.observe(&new_pod("web-new-a").crash_loop(1, "c1").into(), t(5));
        assert_eq!(tracker.incidents().len(), 1);
    }

    #[test]
    fn a_crash_that_ended_before_tracking_began_is_history() {
        let mut tracker = web_rollout(policy(|p| p.failures_allowed_per_replica = 0));
        let deltas = tracker.observe(
            &new_pod("web-new-a")
                .restarted_after_crash(1, "c1", t(-30))
                .into(),
            t(4),
        );
        assert!(incident_deltas(&deltas).is_empty());
        assert!(tracker.incidents().is_empty());
    }

    #[test]
    fn allowance_is_per_replica_times_replicas() {
        let object: TrackedObject = deployment("web").replicas(3).into();
        let mut tracker = tracker(&object);
        tracker.observe(&object, t(1));
        for (index, name) in ["a", "b", "c"].into_iter().enumerate() {
            let crashing: TrackedObject = pod(&format!("web-h-{name}"))
                .of_replica_set("web", "h")
                .crash_loop(1, name)
                .into();
            tracker.observe(&crashing, t(2 + index as i64));
        }
        assert_eq!(tracker.state(), State::Progressing);
        assert_eq!(tracker.status().failures.as_deref(), Some("3/3 allowed"));
        tracker.observe(
            &pod("web-h-a")
                .of_replica_set("web", "h")
                .crash_loop(2, "a2")
                .into(),
            t(9),
        );
        assert_eq!(tracker.state(), State::Failed);
    }

    #[test]
    fn image_pull_back_off_exhausts_the_allowance() {
        let mut tracker = web_rollout(TrackingPolicy::default());
        let deltas = observe_all(
            &mut tracker,
            [
                new_pod("web-new-a").waiting("ErrImagePull", 0).into(),
                new_pod("web-new-a").waiting("ImagePullBackOff", 0).into(),
            ],
            t(5),
        );
        let failure = failed_delta(&deltas).expect("failed");
        assert_eq!(failure.reason, VerdictReason::ImagePullBackOff);
        assert_eq!(failure.kind, FailureKind::AllowanceExceeded);
    }

    #[test]
    fn images_that_can_never_be_pulled_are_terminal() {
        for reason in ["ErrImageNeverPull", "InvalidImageName"] {
            let mut tracker = web_rollout(policy(|p| p.failures_allowed_per_replica = 10));
            let deltas = tracker.observe(&new_pod("web-new-a").waiting(reason, 0).into(), t(5));
            let failure = failed_delta(&deltas).expect("failed");
            assert_eq!(failure.kind, FailureKind::Terminal, "{reason}");
            assert_eq!(
                Some(failure.reason),
                VerdictReason::of_waiting_container(reason)
            );
        }
    }

    #[test]
    fn failed_scheduling_is_a_warning_only() {
        let mut tracker = web_rollout(policy(|p| p.failures_allowed_per_replica = 0));
        let pending: TrackedObject = new_pod("web-new-a").phase("Pending").into();
        let scheduling: TrackedObject = event("FailedScheduling", "Pod", "web-new-a")
            .message("0/3 nodes are available: 3 Insufficient cpu.")
            .into();
        let deltas = observe_all(&mut tracker, [pending, scheduling], t(5));
        assert!(incident_deltas(&deltas).is_empty());
        assert!(deltas.iter().any(|delta| matches!(
            &delta.change,
            Change::Warning { reason, pod: Some(pod), .. } if reason == "FailedScheduling" && pod == "web-new-a"
        )));
        assert_eq!(tracker.state(), State::Progressing);
    }

    #[test]
    fn pod_status_is_reported_only_when_it_changes() {
        let mut tracker = web_rollout(TrackingPolicy::default());
        let pod_statuses = |deltas: &[Delta]| -> Vec<PodSummary> {
            deltas
                .iter()
                .filter_map(|delta| match &delta.change {
                    Change::PodStatus { pod } => Some(pod.clone()),
                    _ => None,
                })
                .collect()
        };
        let first = tracker.observe(
            &new_pod("web-new-a").waiting("ContainerCreating", 0).into(),
            t(2),
        );
        let summaries = pod_statuses(&first);
        assert_eq!(summaries.len(), 1);
        assert_eq!(summaries[0].reason.as_deref(), Some("ContainerCreating"));
        assert_eq!(summaries[0].ready, "0/1");
        assert!(summaries[0].current_revision);
        let same = tracker.observe(
            &new_pod("web-new-a").waiting("ContainerCreating", 0).into(),
            t(3),
        );
        assert!(pod_statuses(&same).is_empty());
        let running = tracker.observe(&new_pod("web-new-a").running(t(4), true).into(), t(4));
        assert_eq!(pod_statuses(&running)[0].ready, "1/1");
        let old = tracker.observe(
            &pod("web-old-a")
                .of_replica_set("web", "old")
                .terminating()
                .into(),
            t(5),
        );
        let old = pod_statuses(&old);
        assert!(!old[0].current_revision && old[0].terminating);
    }

    #[test]
    fn events_about_a_pod_seen_later_are_replayed_when_it_arrives() {
        let mut tracker = web_rollout(TrackingPolicy::default());
        let scheduling: TrackedObject = event("FailedScheduling", "Pod", "web-new-a").into();
        assert!(tracker.observe(&scheduling, t(5)).is_empty());
        let deltas = tracker.observe(&new_pod("web-new-a").phase("Pending").into(), t(6));
        assert!(deltas.iter().any(|delta| matches!(
            &delta.change,
            Change::Warning { reason, .. } if reason == "FailedScheduling"
        )));
        // Replayed once only.
        let again = tracker.observe(&new_pod("web-new-a").phase("Pending").into(), t(7));
        assert!(again.is_empty(), "{again:?}");
    }

    #[test]
    fn events_about_a_pod_seen_before_its_replica_set_are_replayed_when_it_becomes_current() {
        // The watches deliver in any order: here the pod, then an Event about it, and only then the
        // ReplicaSet that makes it a current pod.
        let rollout: TrackedObject = deployment("web").revision(2).updated(0).into();
        let mut tracker = tracker_with(&rollout, TrackingPolicy::default());
        tracker.observe(&rollout, t(1));
        tracker.observe(&new_pod("web-new-a").phase("Pending").into(), t(2));
        let pulling: TrackedObject = event("Pulling", "Pod", "web-new-a").into();
        let before = tracker.observe(&pulling, t(3));
        assert!(relayed_reasons(&before).is_empty(), "{before:?}");

        let deltas = tracker.observe(&replica_set("web", "new", 2), t(4));
        assert_eq!(relayed_reasons(&deltas), ["Pulling"], "{deltas:?}");
        let again = tracker.observe(&replica_set("web", "old", 1), t(5));
        assert!(
            relayed_reasons(&again).is_empty(),
            "replayed once: {again:?}"
        );
    }

    fn relayed_reasons(deltas: &[Delta]) -> Vec<&str> {
        deltas
            .iter()
            .filter_map(|delta| match &delta.change {
                Change::K8sEvent { event, .. } => Some(event.reason.as_str()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn failed_create_on_the_current_replica_set_counts() {
        let mut tracker = web_rollout(policy(|p| p.failures_allowed_per_replica = 0));
        let quota: TrackedObject = event("FailedCreate", "ReplicaSet", "web-new")
            .message("Error creating: pods \"web-new-x\" is forbidden: exceeded quota: compute")
            .into();
        let deltas = tracker.observe(&quota, t(5));
        assert_eq!(
            failed_delta(&deltas).map(|f| f.reason.as_str()),
            Some("FailedCreate")
        );
    }
}

mod stateful_set_recreation {
    use super::*;

    #[test]
    fn recreating_failed_pod_and_failed_delete_not_found_never_count() {
        let rolling: TrackedObject = statefulset("jenkins")
            .replicas(1)
            .ready(0)
            .updated(0)
            .revisions("jenkins-1", "jenkins-2")
            .into();
        let mut tracker = tracker_with(&rolling, policy(|p| p.failures_allowed_per_replica = 0));
        let mut deleted_pod = pod("jenkins-0")
            .of("StatefulSet", "jenkins", "jenkins-1")
            .terminating()
            .phase("Failed")
            .terminated(143, "old", 0);
        deleted_pod = deleted_pod.uid("uid-jenkins-0-old");
        let deltas = observe_all(
            &mut tracker,
            [
                rolling,
                deleted_pod.into(),
                event("RecreatingFailedPod", "StatefulSet", "jenkins")
                    .message("StatefulSet prod/jenkins is recreating failed Pod jenkins-0")
                    .into(),
                event("FailedDelete", "StatefulSet", "jenkins")
                    .message("delete Pod jenkins-0 in StatefulSet jenkins failed error: pods \"jenkins-0\" not found")
                    .into(),
            ],
            t(10),
        );
        assert!(incident_deltas(&deltas).is_empty());
        let relayed: Vec<&EventSummary> = deltas
            .iter()
            .filter_map(|delta| match &delta.change {
                Change::K8sEvent { event, level } => {
                    assert_eq!(*level, Level::Info);
                    Some(event)
                }
                _ => None,
            })
            .collect();
        assert_eq!(relayed.len(), 2);
        assert!(relayed.iter().all(|event| event.ignored_because.is_some()));

        let ready: TrackedObject = statefulset("jenkins")
            .replicas(1)
            .ready(1)
            .updated(1)
            .revisions("jenkins-2", "jenkins-2")
            .into();
        let replacement: TrackedObject = pod("jenkins-0")
            .uid("uid-jenkins-0-new")
            .of("StatefulSet", "jenkins", "jenkins-2")
            .ready()
            .into();
        observe_all(&mut tracker, [replacement, ready], t(20));
        assert_eq!(tracker.state(), State::Ready);
        assert!(tracker.incidents().is_empty());
    }

    #[test]
    fn only_pods_at_the_update_revision_count() {
        let rolling: TrackedObject = statefulset("db")
            .replicas(2)
            .ready(1)
            .updated(1)
            .revisions("db-1", "db-2")
            .into();
        let mut tracker = tracker_with(&rolling, policy(|p| p.failures_allowed_per_replica = 0));
        tracker.observe(&rolling, t(1));
        let old: TrackedObject = pod("db-0")
            .of("StatefulSet", "db", "db-1")
            .crash_loop(4, "o")
            .into();
        assert!(incident_deltas(&tracker.observe(&old, t(2))).is_empty());
        let new: TrackedObject = pod("db-1")
            .of("StatefulSet", "db", "db-2")
            .crash_loop(1, "n")
            .into();
        assert_eq!(incident_deltas(&tracker.observe(&new, t(3))).len(), 1);
        assert_eq!(tracker.state(), State::Failed);
    }

    #[test]
    fn other_failed_deletes_and_failed_creates_are_judged_normally() {
        let object: TrackedObject = statefulset("db").replicas(1).into();
        let mut tracker = tracker_with(&object, policy(|p| p.failures_allowed_per_replica = 0));
        tracker.observe(&object, t(1));
        let forbidden: TrackedObject = event("FailedCreate", "StatefulSet", "db")
            .message("create Pod db-0 in StatefulSet db failed error: pods \"db-0\" is forbidden")
            .into();
        let deltas = tracker.observe(&forbidden, t(2));
        assert_eq!(incident_deltas(&deltas).len(), 1);
        assert_eq!(tracker.state(), State::Failed);
    }
}

mod fail_modes {
    use super::*;

    struct Deploy {
        tracker: DeployTracker,
    }

    fn resource(name: &str, policy: TrackingPolicy) -> ResourceTracker {
        ResourceTracker::new(key("Deployment", name), policy, t(0))
    }

    fn mode(fail_mode: FailMode) -> TrackingPolicy {
        policy(|p| p.fail_mode = fail_mode)
    }

    impl Deploy {
        fn new(resources: Vec<ResourceTracker>) -> Self {
            Deploy {
                tracker: DeployTracker::new(resources),
            }
        }

        fn progressing(&mut self, name: &str, at: i64) -> &mut Self {
            self.tracker
                .observe(&deployment(name).updated(0).into(), t(at));
            self
        }

        fn ready(&mut self, name: &str, at: i64) -> &mut Self {
            self.tracker
                .observe(&deployment(name).updated(1).available(1).into(), t(at));
            self
        }

        /// Two crashes of one pod: beyond the default allowance of 1.
        fn crash_twice(&mut self, name: &str, at: i64) -> &mut Self {
            for (offset, instance) in ["c1", "c2"].into_iter().enumerate() {
                let crashing: TrackedObject = pod(&format!("{name}-h-a"))
                    .of_replica_set(name, "h")
                    .crash_loop(offset as i32 + 1, instance)
                    .into();
                self.tracker.observe(&crashing, t(at + offset as i64));
            }
            self
        }

        fn state(&self, name: &str) -> State {
            self.tracker
                .resources()
                .iter()
                .find(|resource| resource.key().name == name)
                .map(ResourceTracker::state)
                .expect("tracked")
        }

        fn verdict(&self) -> Option<&Verdict> {
            self.tracker.verdict()
        }
    }

    fn failed_on(verdict: Option<&Verdict>, name: &str) -> bool {
        matches!(verdict, Some(Verdict::Failed { resource, .. }) if resource.name == name)
    }

    #[test]
    fn fail_whole_deploy_fails_at_once() {
        let mut deploy = Deploy::new(vec![
            resource("api", TrackingPolicy::default()),
            resource("web", TrackingPolicy::default()),
        ]);
        deploy
            .progressing("api", 1)
            .progressing("web", 1)
            .crash_twice("web", 2);
        let Some(Verdict::Failed {
            reason,
            resource,
            message,
            ..
        }) = deploy.verdict()
        else {
            panic!("expected a failure, got {:?}", deploy.verdict());
        };
        assert_eq!(*reason, VerdictReason::CrashLoopBackOff);
        assert_eq!(resource.name, "web");
        assert!(message.starts_with("2 failures, 1 allowed"), "{message}");
        let report = deploy.tracker.report();
        let web = report
            .resources
            .iter()
            .find(|r| r.resource.name == "web")
            .unwrap();
        assert_eq!(web.incidents.len(), 2);
        assert!(web.failure.as_ref().unwrap().evidence.previous_instance);
    }

    #[test]
    fn hope_recovers_while_others_roll_out() {
        let mut deploy = Deploy::new(vec![
            resource("api", mode(FailMode::HopeUntilEndOfDeployProcess)),
            resource("web", TrackingPolicy::default()),
        ]);
        deploy
            .progressing("api", 1)
            .progressing("web", 1)
            .crash_twice("api", 2);
        assert_eq!(deploy.state("api"), State::Failed);
        assert_eq!(deploy.verdict(), None);
        deploy.ready("api", 10);
        assert_eq!(deploy.state("api"), State::Ready);
        deploy.ready("web", 11);
        assert_eq!(deploy.verdict(), Some(&Verdict::Succeeded));
    }

    #[test]
    fn hope_fails_once_everything_else_has_settled() {
        let mut deploy = Deploy::new(vec![
            resource("api", mode(FailMode::HopeUntilEndOfDeployProcess)),
            resource("web", TrackingPolicy::default()),
        ]);
        deploy
            .progressing("api", 1)
            .progressing("web", 1)
            .crash_twice("api", 2);
        assert_eq!(deploy.verdict(), None);
        deploy.ready("web", 10);
        assert!(failed_on(deploy.verdict(), "api"), "{:?}", deploy.verdict());
    }

    #[test]
    fn hope_with_nothing_else_to_wait_for_fails_at_once() {
        let mut deploy = Deploy::new(vec![resource(
            "api",
            mode(FailMode::HopeUntilEndOfDeployProcess),
        )]);
        deploy.progressing("api", 1).crash_twice("api", 2);
        assert!(failed_on(deploy.verdict(), "api"));
    }

    #[test]
    fn hope_waits_for_the_others_even_after_a_terminal_signal() {
        let mut deploy = Deploy::new(vec![
            resource("api", mode(FailMode::HopeUntilEndOfDeployProcess)),
            resource("web", TrackingPolicy::default()),
        ]);
        deploy.progressing("web", 1);
        deploy
            .tracker
            .observe(&deployment("api").progress_deadline_exceeded().into(), t(2));
        assert_eq!(deploy.state("api"), State::Failed);
        assert_eq!(deploy.verdict(), None);
        deploy.ready("web", 3);
        let Some(Verdict::Failed { reason, .. }) = deploy.verdict() else {
            panic!("expected a failure, got {:?}", deploy.verdict());
        };
        assert_eq!(*reason, VerdictReason::ProgressDeadlineExceeded);
    }

    #[test]
    fn ignore_turns_incidents_into_warnings_but_still_waits_for_ready() {
        let mut deploy = Deploy::new(vec![resource(
            "api",
            mode(FailMode::IgnoreAndContinueDeployProcess),
        )]);
        deploy.progressing("api", 1).crash_twice("api", 2);
        let more: TrackedObject = pod("api-h-a")
            .of_replica_set("api", "h")
            .crash_loop(3, "c3")
            .into();
        let deltas = deploy.tracker.observe(&more, t(5));
        assert!(deltas.iter().any(|delta| matches!(
            delta.change,
            Change::Incident {
                level: Level::Warning,
                count: 3,
                allowance: Some(1),
                ..
            }
        )));
        assert_eq!(deploy.state("api"), State::Progressing);
        assert_eq!(deploy.verdict(), None);
        deploy.ready("api", 10);
        assert_eq!(deploy.verdict(), Some(&Verdict::Succeeded));
    }

    #[test]
    fn ignore_still_fails_on_a_terminal_signal() {
        let mut deploy = Deploy::new(vec![resource(
            "api",
            mode(FailMode::IgnoreAndContinueDeployProcess),
        )]);
        deploy
            .tracker
            .observe(&deployment("api").progress_deadline_exceeded().into(), t(1));
        assert!(failed_on(deploy.verdict(), "api"));
    }

    #[test]
    fn non_blocking_resources_are_not_waited_for() {
        let mut deploy = Deploy::new(vec![
            resource(
                "cache",
                policy(|p| p.track_termination_mode = TrackTerminationMode::NonBlocking),
            ),
            resource("web", TrackingPolicy::default()),
        ]);
        deploy.progressing("cache", 1).progressing("web", 1);
        assert_eq!(deploy.verdict(), None);
        deploy.ready("web", 2);
        assert_eq!(deploy.verdict(), Some(&Verdict::Succeeded));
        assert_eq!(deploy.state("cache"), State::Progressing);
    }

    #[test]
    fn non_blocking_failures_still_fail_a_running_deploy() {
        let mut deploy = Deploy::new(vec![
            resource(
                "cache",
                policy(|p| p.track_termination_mode = TrackTerminationMode::NonBlocking),
            ),
            resource("web", TrackingPolicy::default()),
        ]);
        deploy
            .progressing("cache", 1)
            .progressing("web", 1)
            .crash_twice("cache", 2);
        assert!(failed_on(deploy.verdict(), "cache"));
    }

    #[test]
    fn an_empty_deploy_succeeds() {
        assert_eq!(
            DeployTracker::new(Vec::new()).verdict(),
            Some(&Verdict::Succeeded)
        );
    }
}

mod no_activity {
    use super::*;

    #[test]
    fn a_resource_without_progress_fails_after_the_timeout() {
        let object: TrackedObject = deployment("web").replicas(2).updated(2).available(1).into();
        let mut tracker = tracker(&object);
        tracker.observe(&object, t(0));
        assert!(tracker.tick(t(239)).is_empty());
        let deltas = tracker.tick(t(240));
        let failure = failed_delta(&deltas).expect("failed");
        assert_eq!(failure.kind, FailureKind::NoActivity);
        assert_eq!(failure.reason, VerdictReason::NoActivityTimeout);
        assert_eq!(
            failure.message,
            "no activity for 4m: Waiting for deployment \"web\" rollout to finish: 1 of 2 updated replicas are available..."
        );
    }

    #[test]
    fn any_status_change_restarts_the_clock() {
        let mut tracker = tracker(&deployment("web").into());
        tracker.observe(&deployment("web").replicas(2).updated(1).into(), t(0));
        tracker.observe(&deployment("web").replicas(2).updated(2).into(), t(100));
        assert_eq!(tracker.tick(t(300)).len(), 0);
        assert_eq!(tracker.state(), State::Progressing);
        tracker.tick(t(340));
        assert_eq!(tracker.state(), State::Failed);
    }

    #[test]
    fn the_timeout_comes_from_the_policy() {
        let object: TrackedObject = deployment("web").replicas(2).into();
        let mut tracker = tracker_with(
            &object,
            policy(|p| p.no_activity_timeout = PolicyDuration(std::time::Duration::from_secs(30))),
        );
        tracker.observe(&object, t(0));
        tracker.tick(t(30));
        assert_eq!(tracker.state(), State::Failed);
    }

    #[test]
    fn the_clock_starts_with_tracking_not_with_the_deploy() {
        // Tracking since t(0), the deploy's start; helm and its hooks ran for 5 minutes.
        let object: TrackedObject = deployment("web").replicas(2).into();
        let mut tracker = tracker(&object);
        assert!(tracker.tick(t(300)).is_empty());
        tracker.tick(t(539));
        assert_eq!(tracker.state(), State::Pending);
        tracker.tick(t(540));
        assert_eq!(tracker.state(), State::Failed);
    }

    #[test]
    fn a_ready_resource_never_times_out() {
        let object: TrackedObject = deployment("web").updated(1).available(1).into();
        let mut tracker = tracker(&object);
        tracker.observe(&object, t(0));
        tracker.tick(t(10_000));
        assert_eq!(tracker.state(), State::Ready);
    }
}

mod initial_lists {
    use super::*;

    fn ready_delta(deltas: &[Delta]) -> bool {
        deltas
            .iter()
            .any(|delta| matches!(delta.change, Change::Ready { .. }))
    }

    fn complete_web() -> [TrackedObject; 2] {
        [
            deployment("web").updated(1).available(1).into(),
            replica_set("web", "h", 1),
        ]
    }

    fn awaiting(policy: TrackingPolicy) -> ResourceTracker {
        ResourceTracker::new(key("Deployment", "web"), policy, t(0)).awaiting_initial_lists()
    }

    #[test]
    fn a_complete_resource_is_ready_only_once_its_watches_have_listed() {
        let mut tracker = awaiting(TrackingPolicy::default());
        let deltas = observe_all(&mut tracker, complete_web(), t(1));
        assert!(!ready_delta(&deltas));
        assert!(!tracker.has_settled());
        assert_waiting(
            tracker.status(),
            "deployment \"web\" successfully rolled out (waiting for the first list of its related objects)",
        );
        assert!(ready_delta(&tracker.initial_lists_done(t(1))));
        assert_ready(
            tracker.status(),
            "deployment \"web\" successfully rolled out",
        );
        assert!(tracker.initial_lists_done(t(2)).is_empty(), "once only");
    }

    #[test]
    fn a_crash_listed_after_the_complete_resource_still_fails_it() {
        let mut tracker = awaiting(policy(|p| p.failures_allowed_per_replica = 0));
        let crashed: TrackedObject = pod("web-h-a")
            .of_replica_set("web", "h")
            .restarted_after_crash(1, "c1", t(0))
            .into();
        let [web, set] = complete_web();
        let deltas = observe_all(&mut tracker, [web, set, crashed], t(1));
        let failure = failed_delta(&deltas).expect("failed before the lists are complete");
        assert_eq!(failure.kind, FailureKind::AllowanceExceeded);
        assert_eq!(failure.evidence.pod.as_deref(), Some("web-h-a"));
        tracker.initial_lists_done(t(1));
        assert_eq!(tracker.state(), State::Failed);
    }

    #[test]
    fn the_deploy_succeeds_only_once_every_resource_has_its_lists() {
        let resource = |name: &str| {
            ResourceTracker::new(key("Deployment", name), TrackingPolicy::default(), t(0))
                .awaiting_initial_lists()
        };
        let mut deploy = DeployTracker::new(vec![resource("api"), resource("web")]);
        for name in ["api", "web"] {
            deploy.observe(&deployment(name).updated(1).available(1).into(), t(1));
        }
        deploy.initial_lists_done(&key("Deployment", "api"), t(1));
        assert_eq!(deploy.verdict(), None);
        deploy.initial_lists_done(&key("Deployment", "web"), t(1));
        assert_eq!(deploy.verdict(), Some(&Verdict::Succeeded));
    }

    #[test]
    fn a_hopeful_failure_is_not_final_before_the_lists() {
        let hope = policy(|p| {
            p.fail_mode = FailMode::HopeUntilEndOfDeployProcess;
            p.failures_allowed_per_replica = 0;
        });
        let mut deploy = DeployTracker::new(vec![awaiting(hope)]);
        deploy.observe(&deployment("web").into(), t(1));
        deploy.observe(&replica_set("web", "h", 1), t(1));
        deploy.observe(
            &pod("web-h-a")
                .of_replica_set("web", "h")
                .crash_loop(1, "c1")
                .into(),
            t(1),
        );
        assert_eq!(deploy.resources()[0].state(), State::Failed);
        assert_eq!(deploy.verdict(), None, "the Deployment may turn out ready");
        deploy.initial_lists_done(&key("Deployment", "web"), t(1));
        assert!(matches!(deploy.verdict(), Some(Verdict::Failed { .. })));
    }

    #[test]
    fn pod_events_of_the_start_second_listed_at_the_start_are_evidence_of_that_pod_only() {
        let started = t(0) + chrono::TimeDelta::milliseconds(600);
        let no_allowance = policy(|p| p.failures_allowed_per_replica = 0);
        let mut tracker = ResourceTracker::new(key("Deployment", "web"), no_allowance, started)
            .awaiting_initial_lists();
        let pull_failed = |pod: &str| -> TrackedObject {
            event("Failed", "Pod", pod)
                .message("Failed to pull image \"registry.example/web:2\"")
                .at(t(0))
                .into()
        };
        let listed = [
            deployment("web").updated(0).total(1).into(),
            replica_set("web", "old", 1),
            replica_set("web", "new", 2),
            pull_failed("web-new-a"),
            pull_failed("web-new-b"),
        ];
        for object in &listed {
            assert!(
                incident_deltas(&tracker.observe(object, t(1))).is_empty(),
                "listed Events of the start's second count for nothing"
            );
        }
        let deltas = tracker.observe(
            &pod("web-new-a")
                .of_replica_set("web", "new")
                .waiting("ErrImagePull", 0)
                .into(),
            t(1),
        );
        let failure = failed_delta(&deltas).expect("failed");
        let reasons: Vec<(&str, &str)> = failure
            .evidence
            .events
            .iter()
            .map(|event| (event.involved_name.as_str(), event.reason.as_str()))
            .collect();
        assert_eq!(reasons, [("web-new-a", "Failed")]);
    }

    #[test]
    fn events_of_the_start_second_listed_at_the_start_are_history() {
        let started = t(0) + chrono::TimeDelta::milliseconds(600);
        let mut tracker =
            ResourceTracker::new(key("Deployment", "web"), TrackingPolicy::default(), started)
                .awaiting_initial_lists();
        observe_all(&mut tracker, [deployment("web").updated(0).into()], t(1));
        let scaled = |count| -> TrackedObject {
            event("ScalingReplicaSet", "Deployment", "web")
                .at(t(0))
                .count(count)
                .into()
        };
        assert!(
            tracker.observe(&scaled(1), t(1)).is_empty(),
            "listed: history"
        );
        let later: TrackedObject = event("FailedCreate", "Deployment", "web").at(t(1)).into();
        assert_eq!(incident_deltas(&tracker.observe(&later, t(1))).len(), 1);
        tracker.initial_lists_done(t(1));

        assert!(tracker.observe(&scaled(1), t(2)).is_empty(), "re-listed");
        let recurred = tracker.observe(&scaled(2), t(2));
        assert!(
            recurred.iter().any(
                |delta| matches!(&delta.change, Change::K8sEvent { event, .. } if event.count == 2)
            ),
            "a recurrence is news: {recurred:?}"
        );
        let after_the_lists: TrackedObject =
            event("Unhealthy", "Deployment", "web").at(t(0)).into();
        assert!(
            !tracker.observe(&after_the_lists, t(2)).is_empty(),
            "an Event first seen after the lists is this deploy's"
        );
        let older: TrackedObject = event("Killing", "Deployment", "web").at(t(-1)).into();
        assert!(tracker.observe(&older, t(2)).is_empty());
    }
}

mod custom_resource_rules {
    use serde_json::json;

    use crate::tracker::core::readiness::{Progress, assess};
    use serde_json::Value;

    use super::*;
    use crate::domain::policy::TrackingPolicy;
    use crate::tracker::core::object::TrackedObject;
    use crate::tracker::core::testkit::t;
    use crate::tracker::core::{
        CUSTOM_RESOURCE_SETTLE, ConditionSpec, CustomResourceRuleSpec, CustomResourceRules,
        FailureKind, ResourceTracker, State,
    };

    fn widget(status: Value) -> TrackedObject {
        TrackedObject::from_value(json!({
            "apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": "w", "namespace": "prod", "generation": 1}, "status": status
        }))
        .unwrap()
    }

    fn condition(type_: &str, status: &str, since: &str) -> Value {
        json!({"type": type_, "status": status, "reason": format!("{type_}Reason"),
               "lastTransitionTime": since})
    }

    fn rules(terminal: bool) -> CustomResourceRules {
        let matching = |condition: &str| ConditionSpec {
            condition: condition.to_owned(),
            status: "True".to_owned(),
        };
        CustomResourceRules::from_specs(vec![CustomResourceRuleSpec {
            group: "example.com".to_owned(),
            kind: "Widget".to_owned(),
            ready_when: vec![matching("Available")],
            failed_when: vec![matching("Degraded")],
            terminal: Some(terminal),
            ..CustomResourceRuleSpec::default()
        }])
        .unwrap()
    }

    fn tracker(terminal: bool) -> ResourceTracker {
        ResourceTracker::new(widget(Value::Null).key(), TrackingPolicy::default(), t(0))
            .with_custom_rules(&rules(terminal))
    }

    #[test]
    fn configured_conditions_decide_readiness_instead_of_ready() {
        let mut tracker = tracker(true);
        // The generic reading would call this ready; the rule waits for Available.
        tracker.observe(
            &widget(json!({"conditions": [condition("Ready", "True", "a")]})),
            t(1),
        );
        assert_eq!(tracker.state(), State::Progressing);
        assert_eq!(
            tracker.status().message,
            "Waiting for widget \"w\": Available=True..."
        );
        tracker.observe(
            &widget(json!({"conditions": [condition("Available", "True", "b")]})),
            t(2),
        );
        assert_eq!(tracker.state(), State::Ready);
    }

    #[test]
    fn an_empty_status_is_not_ready_under_a_rule_even_after_the_settle_window() {
        let mut tracker = tracker(true);
        tracker.observe(&widget(json!({})), t(1));
        tracker.tick(t(1) + CUSTOM_RESOURCE_SETTLE * 3);
        assert_eq!(tracker.state(), State::Progressing);
    }

    #[test]
    fn a_terminal_failure_condition_fails_at_once() {
        let mut tracker = tracker(true);
        tracker.observe(
            &widget(json!({"conditions": [condition("Degraded", "True", "a")]})),
            t(1),
        );
        assert_eq!(tracker.state(), State::Failed);
        let failure = tracker.failure().expect("failure");
        assert_eq!(failure.kind, FailureKind::Terminal);
        assert_eq!(failure.reason, VerdictReason::CustomResourceFailed);
        assert_eq!(
            failure.detail.original_reason.as_deref(),
            Some("DegradedReason")
        );
        assert_eq!(
            failure.message,
            "widget \"w\" is Degraded=True: DegradedReason"
        );
    }

    #[test]
    fn a_non_terminal_failure_condition_is_an_incident_per_transition() {
        let mut tracker = tracker(false);
        let degraded =
            |since| widget(json!({"conditions": [condition("Degraded", "True", since)]}));
        for _ in 0..3 {
            tracker.observe(&degraded("a"), t(1));
        }
        assert_eq!(tracker.incidents().len(), 1, "re-reading adds nothing");
        assert_eq!(tracker.state(), State::Progressing, "1 incident allowed");
        tracker.observe(
            &widget(json!({"conditions": [condition("Degraded", "False", "b")]})),
            t(2),
        );
        tracker.observe(&degraded("c"), t(3));
        assert_eq!(tracker.state(), State::Failed);
        let failure = tracker.failure().expect("failure");
        assert_eq!(failure.kind, FailureKind::AllowanceExceeded);
        assert_eq!(failure.reason, VerdictReason::CustomResourceFailed);
        assert_eq!(
            failure.detail.original_reason.as_deref(),
            Some("DegradedReason")
        );
    }

    #[test]
    fn a_rule_with_failure_phases_only_keeps_the_generic_readiness() {
        let rules = CustomResourceRules::from_specs(vec![CustomResourceRuleSpec {
            group: "example.com".to_owned(),
            kind: "Widget".to_owned(),
            failed_phases: vec!["Broken".to_owned()],
            ..CustomResourceRuleSpec::default()
        }])
        .unwrap();
        let rule = rules.get("example.com", "Widget");
        let read = |status: Value| assess(&widget(status), rule).progress;
        assert_eq!(
            read(json!({"phase": "broken"})),
            Progress::Failed {
                reason: VerdictReason::CustomResourceFailed,
                original: Some("broken".to_owned())
            }
        );
        // "Failed" is no longer a generic failure word for this kind: the rule decides failures.
        assert_eq!(read(json!({"phase": "Failed"})), Progress::Waiting);
        assert_eq!(read(json!({"phase": "Running"})), Progress::Done);
        assert_eq!(read(Value::Null), Progress::Settling);
    }
}

/// A quorum read of the resource when tracking starts, and watches that may lag behind it.
mod fresh_view {
    use super::*;

    fn with_uid(builder: JobBuilder, uid: &str) -> TrackedObject {
        let mut job = builder.build();
        job.metadata.uid = Some(uid.to_owned());
        TrackedObject::from(job)
    }

    fn complete_migration() -> JobBuilder {
        job("migrate")
            .succeeded(1)
            .condition("Complete", "CompletionsReached", "done")
    }

    #[test]
    fn a_lagging_watch_cannot_take_the_view_back_to_an_older_generation() {
        let upgraded: TrackedObject = deployment("web").generation(2).observed(1).into();
        let mut tracker = tracker(&upgraded);
        tracker.observe_current(Some(&upgraded), t(1));
        // What a watch lagging behind still holds: the previous generation, fully rolled out.
        let stale: TrackedObject = deployment("web").updated(1).available(1).into();
        observe_all(&mut tracker, [stale, replica_set("web", "h1", 1)], t(2));
        assert_eq!(
            tracker.state(),
            State::Progressing,
            "{:?}",
            tracker.status()
        );
        let rolled_out: TrackedObject = deployment("web")
            .generation(2)
            .observed(2)
            .updated(1)
            .available(1)
            .into();
        tracker.observe(&rolled_out, t(3));
        assert_eq!(tracker.state(), State::Ready, "{:?}", tracker.status());
    }

    #[test]
    fn an_object_that_predates_the_read_is_never_taken_for_the_current_one() {
        let current = with_uid(job("migrate").active(1), "new");
        let mut tracker = tracker(&current);
        tracker.observe_current(Some(&current), t(1));
        // A watch still showing the Job helm replaced: complete, under another uid.
        let previous = with_uid(complete_migration(), "old");
        tracker.observe(&previous, t(2));
        assert_eq!(
            tracker.state(),
            State::Progressing,
            "{:?}",
            tracker.status()
        );
        tracker.observe_deleted(&previous, t(3));
        tracker.observe(&previous, t(4));
        assert_eq!(
            tracker.state(),
            State::Progressing,
            "{:?}",
            tracker.status()
        );
        tracker.observe(&with_uid(complete_migration(), "new"), t(5));
        assert_eq!(tracker.state(), State::Ready, "{:?}", tracker.status());
    }

    #[test]
    fn a_read_replaces_what_the_watches_showed_of_an_older_object() {
        let previous = with_uid(complete_migration(), "old");
        let mut tracker = tracker(&previous);
        tracker.observe(&previous, t(1));
        let current = with_uid(job("migrate").active(1), "new");
        tracker.observe_current(Some(&current), t(2));
        assert_eq!(
            tracker.state(),
            State::Progressing,
            "{:?}",
            tracker.status()
        );
        tracker.observe(&previous, t(3));
        assert_eq!(
            tracker.state(),
            State::Progressing,
            "{:?}",
            tracker.status()
        );
    }

    #[test]
    fn without_a_read_an_object_recreated_under_its_name_replaces_the_old_one() {
        let previous = with_uid(complete_migration(), "old");
        let mut tracker = tracker(&previous);
        tracker.observe(&previous, t(1));
        tracker.observe_deleted(&previous, t(2));
        let current = with_uid(job("migrate").active(1), "new");
        tracker.observe(&current, t(3));
        assert_eq!(
            tracker.state(),
            State::Progressing,
            "{:?}",
            tracker.status()
        );
        tracker.observe(&previous, t(4));
        assert_eq!(
            tracker.state(),
            State::Progressing,
            "the deleted one never comes back"
        );
    }

    #[test]
    fn pods_count_once_the_replica_set_of_the_deployments_revision_is_seen() {
        let web: TrackedObject = deployment("web").revision(2).into();
        let mut tracker = tracker_with(&web, policy(|p| p.failures_allowed_per_replica = 0));
        tracker.observe_current(Some(&web), t(1));
        // The ReplicaSets' watch lags: only the previous revision, whose pod crash-loops.
        let crashing: TrackedObject = pod("web-h1-a")
            .of_replica_set("web", "h1")
            .crash_loop(3, "c1")
            .into();
        let deltas = observe_all(&mut tracker, [replica_set("web", "h1", 1), crashing], t(2));
        assert!(incident_deltas(&deltas).is_empty(), "{deltas:?}");
        assert_eq!(tracker.current_pods().count(), 0);
        let healthy: TrackedObject = pod("web-h2-a")
            .of_replica_set("web", "h2")
            .running(t(1), true)
            .into();
        observe_all(&mut tracker, [replica_set("web", "h2", 2), healthy], t(3));
        let current: Vec<&str> = tracker.current_pods().map(pods::pod_name).collect();
        assert_eq!(current, ["web-h2-a"]);
        assert_ne!(tracker.state(), State::Failed, "{:?}", tracker.status());
    }
}
