//! One tracked resource: everything observed about it, folded into a [`ResourceStatus`] and deltas.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use k8s_openapi::api::apps::v1::{ControllerRevision, ReplicaSet};
use k8s_openapi::api::core::v1::{Event, Pod};

use super::custom_rules::{CustomResourceRule, CustomResourceRules};
use super::k8s_events::{self, EventClass};
use super::object::TrackedObject;
use super::pods::{self, CurrentRevision, ProbeFailure, ProbeFailures};
use super::readiness::{self, Allowance, Progress, Readiness};
use super::time::elapsed;
use super::{
    Change, Delta, EventSummary, Evidence, Failure, FailureKind, Incident, Level, PodSummary,
    ResourceKey, ResourceStatus, State,
};
use crate::domain::policy::{FailMode, TrackTerminationMode, TrackingPolicy};
use crate::domain::verdict::{VerdictDetail, VerdictReason};

/// How long a custom resource's status must stay empty before we take it as ready.
pub const CUSTOM_RESOURCE_SETTLE: Duration = Duration::from_secs(10);
/// Recent events kept as evidence for a failure report.
const EVIDENCE_EVENTS: usize = 20;
/// Events about pods not seen yet, kept until the pod arrives.
const EARLY_POD_EVENTS: usize = 64;
/// Events attached to one failure.
const EVIDENCE_EVENTS_PER_FAILURE: usize = 10;

/// Follows one resource. Feed it everything observed (the resource, its ReplicaSets or
/// ControllerRevisions, pods, events); it keeps what belongs to it and ignores the rest.
#[derive(Debug, Clone)]
pub struct ResourceTracker {
    key: ResourceKey,
    policy: TrackingPolicy,
    /// How a custom resource of this kind is read, when configuration says so.
    custom_rule: Option<CustomResourceRule>,
    started_at: DateTime<Utc>,
    object: Option<TrackedObject>,
    was_deleted: bool,
    /// A quorum read of the resource itself has come in ([`Self::observe_current`]): what watches
    /// show under another uid predates it, unless the read object has been seen deleted since.
    read_current: bool,
    /// Uids of objects under the resource's name seen deleted: a lagging watch may still show
    /// them, never to be taken back.
    gone_uids: HashSet<String>,
    replica_sets: BTreeMap<String, ReplicaSet>,
    revisions: BTreeMap<String, ControllerRevision>,
    pods: BTreeMap<String, Pod>,
    pod_summaries: HashMap<String, PodSummary>,
    /// The latest readiness probe failure the kubelet reported, per pod and container.
    probe_failures: ProbeFailures,
    incidents: Vec<Incident>,
    seen_incidents: HashSet<String>,
    relayed_events: HashMap<String, i32>,
    /// Events listed at the start whose last occurrence falls in the start's second, by identity,
    /// with their count: they may be the previous deploy's, so only a recurrence counts.
    history_events: HashMap<String, i32>,
    /// The watches feeding this tracker have not all delivered their first list: what it knows may
    /// be partial (a pod's crash not read yet), so it may fail but not be ready.
    initial_lists_pending: bool,
    recent_events: VecDeque<EventSummary>,
    /// Pod Events of the start's second listed at the start: never relayed or counted (they may
    /// be the previous deploy's), but evidence when that very pod fails (an image pull failing
    /// while helm still ran).
    start_second_pod_events: VecDeque<EventSummary>,
    early_pod_events: VecDeque<Event>,
    terminal_incident: Option<Incident>,
    failure: Option<Failure>,
    inactive: bool,
    empty_status_since: Option<DateTime<Utc>>,
    /// The last status change; `None` until the first observation or tick. Not `started_at`: helm
    /// and its hooks may run long before tracking begins, and that is no inactivity.
    last_activity: Option<DateTime<Utc>>,
    status: ResourceStatus,
}

impl ResourceTracker {
    /// `started_at` is when tracking began: Events older than it are history, not evidence.
    pub fn new(key: ResourceKey, policy: TrackingPolicy, started_at: DateTime<Utc>) -> Self {
        let status = ResourceStatus {
            state: State::Pending,
            message: waiting_to_appear(&key),
            ready: None,
            failures: None,
            incidents: 0,
        };
        ResourceTracker {
            key,
            policy,
            custom_rule: None,
            started_at,
            object: None,
            was_deleted: false,
            read_current: false,
            gone_uids: HashSet::new(),
            replica_sets: BTreeMap::new(),
            revisions: BTreeMap::new(),
            pods: BTreeMap::new(),
            pod_summaries: HashMap::new(),
            probe_failures: ProbeFailures::new(),
            incidents: Vec::new(),
            seen_incidents: HashSet::new(),
            relayed_events: HashMap::new(),
            history_events: HashMap::new(),
            initial_lists_pending: false,
            recent_events: VecDeque::new(),
            start_second_pod_events: VecDeque::new(),
            early_pod_events: VecDeque::new(),
            terminal_incident: None,
            failure: None,
            inactive: false,
            empty_status_since: None,
            last_activity: None,
            status,
        }
    }

    /// Reads the resource by the configured rule of its kind, if there is one (custom resources).
    #[must_use]
    pub fn with_custom_rules(mut self, rules: &CustomResourceRules) -> Self {
        self.custom_rule = rules.for_resource(&self.key).cloned();
        self
    }

    /// Fed by watches that have not listed yet: not ready before [`Self::initial_lists_done`] (a
    /// failure can still be decided), and Events of the start's second seen before then are taken as
    /// history. Without it, everything is taken as observed (`rollcall explain`, fixtures).
    #[must_use]
    pub fn awaiting_initial_lists(mut self) -> Self {
        self.initial_lists_pending = true;
        self
    }

    /// Every watch feeding this tracker has delivered its first complete list: it now judges with
    /// the complete picture.
    pub fn initial_lists_done(&mut self, now: DateTime<Utc>) -> Vec<Delta> {
        if !self.initial_lists_pending {
            return Vec::new();
        }
        self.initial_lists_pending = false;
        self.refresh(now)
    }

    /// Whether the deploy may stop waiting for it: ready, or failed with the complete picture read.
    pub fn has_settled(&self) -> bool {
        match self.status.state {
            State::Ready => true,
            State::Failed => !self.initial_lists_pending,
            State::Pending | State::Progressing => false,
        }
    }

    pub fn key(&self) -> &ResourceKey {
        &self.key
    }

    pub fn policy(&self) -> &TrackingPolicy {
        &self.policy
    }

    pub fn status(&self) -> &ResourceStatus {
        &self.status
    }

    pub fn state(&self) -> State {
        self.status.state
    }

    /// The failure behind a `failed` state.
    pub fn failure(&self) -> Option<&Failure> {
        self.failure.as_ref()
    }

    pub fn incidents(&self) -> &[Incident] {
        &self.incidents
    }

    /// Whether the deploy waits for this resource (`track-termination-mode`).
    pub fn is_blocking(&self) -> bool {
        self.policy.track_termination_mode == TrackTerminationMode::WaitUntilResourceReady
    }

    /// The current revision's pods that are not terminating: the only ones whose state counts.
    pub fn current_pods(&self) -> impl Iterator<Item = &Pod> {
        let current = self.current_revision();
        self.pods
            .values()
            .filter(move |pod| !pods::is_terminating(pod) && current.includes(pod))
    }

    /// Takes in an added or modified object of any kind.
    pub fn observe(&mut self, object: &TrackedObject, now: DateTime<Utc>) -> Vec<Delta> {
        let owner_uid = self.owner_uid();
        let mut relevant = false;
        if object.key() == self.key {
            if !self.is_newer(object) {
                return Vec::new();
            }
            self.object = Some(object.clone());
            self.was_deleted = false;
            relevant = true;
        }
        match object {
            TrackedObject::Event(event) => return self.observe_event(event, now),
            TrackedObject::Pod(pod) => return self.observe_pod(pod, now),
            TrackedObject::ReplicaSet(set)
                if pods::belongs_to(&self.key, owner_uid.as_deref(), &set.metadata) =>
            {
                self.replica_sets
                    .insert(pods::object_key(&set.metadata), (**set).clone());
                relevant = true;
            }
            TrackedObject::ControllerRevision(revision)
                if pods::belongs_to(&self.key, owner_uid.as_deref(), &revision.metadata) =>
            {
                self.revisions
                    .insert(pods::object_key(&revision.metadata), (**revision).clone());
                relevant = true;
            }
            _ => {}
        }
        if relevant {
            let mut deltas = self.refresh(now);
            deltas.extend(self.replay_early_pod_events(now));
            deltas
        } else {
            Vec::new()
        }
    }

    /// Takes in a deleted object of any kind.
    pub fn observe_deleted(&mut self, object: &TrackedObject, now: DateTime<Utc>) -> Vec<Delta> {
        let metadata = object.metadata();
        let removed = if object.key() == self.key {
            if let Some(uid) = &metadata.uid {
                self.gone_uids.insert(uid.clone());
            }
            let current = self.owner_uid();
            if current.is_some() && metadata.uid.is_some() && current != metadata.uid {
                // An older object under the same name, gone before the current one came.
                return Vec::new();
            }
            self.object = None;
            self.was_deleted = true;
            true
        } else {
            let key = pods::object_key(metadata);
            match object {
                TrackedObject::Pod(_) => {
                    self.pod_summaries.remove(&key);
                    self.probe_failures.retain(|(pod, _), _| *pod != key);
                    self.pods.remove(&key).is_some()
                }
                TrackedObject::ReplicaSet(_) => self.replica_sets.remove(&key).is_some(),
                TrackedObject::ControllerRevision(_) => self.revisions.remove(&key).is_some(),
                _ => false,
            }
        };
        if removed {
            self.last_activity = Some(now);
            self.refresh(now)
        } else {
            Vec::new()
        }
    }

    /// Takes in the resource as a quorum read found it (`None`: absent) once helm has applied it:
    /// the freshness fence for watches that may lag behind. What they showed before under another
    /// uid, or at an older generation, is replaced; what they show later must be newer than this.
    pub fn observe_current(
        &mut self,
        object: Option<&TrackedObject>,
        now: DateTime<Utc>,
    ) -> Vec<Delta> {
        self.read_current = true;
        let read_uid = object.and_then(|object| object.metadata().uid.clone());
        if let Some(shown) = self
            .owner_uid()
            .filter(|shown| Some(shown) != read_uid.as_ref())
        {
            // The watches showed an object that is gone by now.
            self.gone_uids.insert(shown);
            self.object = None;
            self.was_deleted = true;
        }
        if let Some(object) = object.filter(|object| self.is_newer(object)) {
            self.object = Some(object.clone());
            self.was_deleted = false;
        }
        self.forget_unrelated();
        let mut deltas = self.refresh(now);
        deltas.extend(self.replay_early_pod_events(now));
        deltas
    }

    /// Whether an observation of the resource itself may replace the current view: a resource's
    /// view never goes back (a watch lagging behind shows what a quorum read or a faster watch
    /// already superseded).
    fn is_newer(&self, object: &TrackedObject) -> bool {
        let metadata = object.metadata();
        if metadata
            .uid
            .as_ref()
            .is_some_and(|uid| self.gone_uids.contains(uid))
        {
            return false;
        }
        let Some(current) = &self.object else {
            return true;
        };
        let current = current.metadata();
        match (&current.uid, &metadata.uid) {
            // Another object under the same name: a recreation, unless a quorum read showed the
            // current one (then this one is older: the current one has not been seen deleted).
            (Some(ours), Some(theirs)) if ours != theirs => !self.read_current,
            // The same object: its generation only grows.
            _ => metadata.generation.unwrap_or(0) >= current.generation.unwrap_or(0),
        }
    }

    /// Drops the children recorded for an object that is no longer the current one.
    fn forget_unrelated(&mut self) {
        let owner = self.owner_uid();
        let key = &self.key;
        self.replica_sets
            .retain(|_, set| pods::belongs_to(key, owner.as_deref(), &set.metadata));
        self.revisions
            .retain(|_, revision| pods::belongs_to(key, owner.as_deref(), &revision.metadata));
        let gone: Vec<String> = self
            .pods
            .iter()
            .filter(|(_, pod)| !pods::belongs_to(key, owner.as_deref(), &pod.metadata))
            .map(|(uid, _)| uid.clone())
            .collect();
        for uid in gone {
            self.pods.remove(&uid);
            self.pod_summaries.remove(&uid);
            self.probe_failures.retain(|(pod, _), _| *pod != uid);
        }
    }

    pub fn observe_pod(&mut self, pod: &Pod, now: DateTime<Utc>) -> Vec<Delta> {
        if !pods::belongs_to(&self.key, self.owner_uid().as_deref(), &pod.metadata) {
            return Vec::new();
        }
        if self.key.kind == "Pod" {
            self.object = Some(TrackedObject::from(pod.clone()));
            self.was_deleted = false;
        }
        let key = pods::object_key(&pod.metadata);
        self.pods.insert(key.clone(), pod.clone());
        let summary = pods::summarize(pod, self.current_revision().includes(pod));
        let mut deltas = Vec::new();
        if self.pod_summaries.get(&key) != Some(&summary) {
            self.last_activity = Some(now);
            self.pod_summaries.insert(key, summary.clone());
            deltas.push(self.delta(Change::PodStatus { pod: summary }));
        }
        deltas.extend(self.refresh(now));
        deltas.extend(self.replay_early_pod_events(now));
        deltas
    }

    /// Events, pods and the workload's revisions come from different watches: what was said about
    /// a pod before it was known to be a current one is replayed once it is (when the pod arrives,
    /// or when the ReplicaSet or workload that makes it current does).
    fn replay_early_pod_events(&mut self, now: DateTime<Utc>) -> Vec<Delta> {
        let mut deltas = Vec::new();
        for event in std::mem::take(&mut self.early_pod_events) {
            // Most kept events are about pods not seen yet (or another resource's): cheap to keep.
            if !self.pods.values().any(|pod| is_about(&event, pod)) {
                self.early_pod_events.push_back(event);
            } else if self.event_subject(&event).is_some() {
                deltas.extend(self.observe_event(&event, now));
            } else if self.may_be_about_a_future_current_pod(&event) {
                self.early_pod_events.push_back(event);
            }
        }
        deltas
    }

    pub fn observe_event(&mut self, event: &Event, now: DateTime<Utc>) -> Vec<Delta> {
        let identity = k8s_events::identity(event);
        let occurrences = k8s_events::occurrences(event);
        match self.event_age(event) {
            EventAge::Older => return Vec::new(),
            EventAge::StartSecond if self.initial_lists_pending => {
                self.history_events.insert(identity, occurrences);
                if event.involved_object.kind.as_deref() == Some("Pod") {
                    if self.start_second_pod_events.len() == EVIDENCE_EVENTS {
                        self.start_second_pod_events.pop_front();
                    }
                    let summary = k8s_events::summarize(event, &k8s_events::classify(event));
                    self.start_second_pod_events.push_back(summary);
                }
                return Vec::new();
            }
            EventAge::StartSecond | EventAge::Later => {}
        }
        if self
            .history_events
            .get(&identity)
            .is_some_and(|listed| *listed >= occurrences)
        {
            return Vec::new();
        }
        let Some(pod) = self.event_subject(event) else {
            if self.may_be_about_a_future_current_pod(event) {
                if self.early_pod_events.len() == EARLY_POD_EVENTS {
                    self.early_pod_events.pop_front();
                }
                self.early_pod_events.push_back(event.clone());
            }
            return Vec::new();
        };
        let previously = self.relayed_events.insert(identity.clone(), occurrences);
        if previously.is_some_and(|relayed| relayed >= occurrences) {
            return Vec::new();
        }
        let class = k8s_events::classify(event);
        let summary = k8s_events::summarize(event, &class);
        self.note_probe_failure(event, &summary);
        if self.recent_events.len() == EVIDENCE_EVENTS {
            self.recent_events.pop_front();
        }
        self.recent_events.push_back(summary.clone());
        let warning = summary.type_ == "Warning" && !matches!(class, EventClass::Benign(_));
        let mut deltas = vec![self.delta(Change::K8sEvent {
            event: summary.clone(),
            level: if warning { Level::Warning } else { Level::Info },
        })];
        let first_time = previously.is_none();
        match class {
            EventClass::Incident(reason) => {
                let original_reason = (summary.reason != reason.as_str()).then_some(summary.reason);
                let incident = Incident {
                    reason,
                    message: summary.message,
                    detail: VerdictDetail {
                        pod,
                        original_reason,
                        ..VerdictDetail::default()
                    },
                    previous_instance: false,
                    observed_at: now,
                };
                let readiness = self.readiness(now);
                let allowance = self.allowance(&readiness);
                self.record(
                    format!("event/{identity}"),
                    incident,
                    false,
                    allowance,
                    now,
                    &mut deltas,
                );
            }
            EventClass::Warning if first_time => deltas.push(self.delta(Change::Warning {
                reason: summary.reason,
                message: summary.message,
                pod,
            })),
            _ => {}
        }
        deltas.extend(self.refresh(now));
        deltas
    }

    /// Keeps a readiness probe failure the kubelet reported about a current pod: the evidence a
    /// readiness incident needs (each bump of the folded Event is a new failure, at its new time).
    fn note_probe_failure(&mut self, event: &Event, summary: &EventSummary) {
        let Some((pod, container)) = self.current_pods().find_map(|pod| {
            let container = pods::readiness_probe_failure(event, pod)?;
            is_about(event, pod).then(|| (pods::object_key(&pod.metadata), container))
        }) else {
            return;
        };
        let Some(at) = summary.at else {
            return;
        };
        let failure = ProbeFailure {
            at,
            message: summary.message.clone(),
        };
        self.probe_failures
            .entry((pod, container))
            .and_modify(|latest| {
                if failure.at >= latest.at {
                    *latest = failure.clone();
                }
            })
            .or_insert(failure);
    }

    /// Lets time pass: the custom-resource settle window and the no-activity timeout are judged
    /// here as well as on every observation.
    pub fn tick(&mut self, now: DateTime<Utc>) -> Vec<Delta> {
        let settled = matches!(self.status.state, State::Ready | State::Failed);
        let quiet_since = *self.last_activity.get_or_insert(now);
        if !settled && elapsed(quiet_since, now) >= self.policy.no_activity_timeout.0 {
            self.inactive = true;
        }
        self.refresh(now)
    }

    /// Event timestamps have whole seconds: an Event of the start's second may be this deploy's or
    /// the previous one's.
    fn event_age(&self, event: &Event) -> EventAge {
        let start_second = self.started_at.trunc_subsecs(0);
        match k8s_events::last_seen(event) {
            Some(at) if at < start_second => EventAge::Older,
            Some(at) if at < start_second + chrono::TimeDelta::seconds(1) => EventAge::StartSecond,
            _ => EventAge::Later,
        }
    }

    /// A pod event with no current pod to be about may still be about one: its pod has not
    /// arrived yet, or has, before the workload's current revision is known.
    fn may_be_about_a_future_current_pod(&self, event: &Event) -> bool {
        let involved = &event.involved_object;
        involved.kind.as_deref() == Some("Pod")
            && pods::same_namespace(self.key.namespace.as_deref(), involved.namespace.as_deref())
            && (matches!(self.current_revision(), CurrentRevision::Unknown)
                || !self.pods.values().any(|pod| is_about(event, pod)))
    }

    fn owner_uid(&self) -> Option<String> {
        self.object
            .as_ref()
            .and_then(|object| object.metadata().uid.clone())
    }

    fn delta(&self, change: Change) -> Delta {
        Delta {
            resource: self.key.clone(),
            change,
        }
    }

    fn current_revision(&self) -> CurrentRevision {
        match &self.object {
            Some(object) => CurrentRevision::of(object, &self.replica_sets, &self.revisions),
            // Until a workload is seen, the pods that arrive first may be its previous revision's.
            None if matches!(
                self.key.kind.as_str(),
                "Deployment" | "StatefulSet" | "DaemonSet"
            ) =>
            {
                CurrentRevision::Unknown
            }
            None => CurrentRevision::Any,
        }
    }

    /// What an event is about, if it is ours: `Some(None)` for the resource (or its current
    /// ReplicaSet), `Some(Some(pod))` for one of its current pods.
    fn event_subject(&self, event: &Event) -> Option<Option<String>> {
        let involved = &event.involved_object;
        if !pods::same_namespace(self.key.namespace.as_deref(), involved.namespace.as_deref())
            && self.key.namespace.is_some()
        {
            return None;
        }
        let kind = involved.kind.as_deref().unwrap_or_default();
        let name = involved.name.as_deref().unwrap_or_default();
        if kind == self.key.kind && name == self.key.name {
            let uid = self.owner_uid();
            return match (uid.as_deref(), involved.uid.as_deref()) {
                (Some(ours), Some(theirs)) if ours != theirs => None,
                _ => Some(None),
            };
        }
        match kind {
            "ReplicaSet" if self.key.kind == "Deployment" => match self.current_revision() {
                CurrentRevision::ReplicaSet(current) => (current == name).then_some(None),
                _ => pods::is_replica_set_of(&self.key.name, name).then_some(None),
            },
            "Pod" => self
                .current_pods()
                .find(|pod| is_about(event, pod))
                .map(|pod| Some(pods::pod_name(pod).to_owned())),
            _ => None,
        }
    }

    fn readiness(&mut self, now: DateTime<Utc>) -> Readiness {
        let Some(object) = &self.object else {
            let mut waiting = Readiness::new(
                Progress::Waiting,
                if self.was_deleted {
                    format!("{} {:?} was deleted", self.key.kind, self.key.name)
                } else {
                    waiting_to_appear(&self.key)
                },
            );
            waiting.allowance = Allowance::before_seen(&self.key.kind);
            return waiting;
        };
        let mut readiness = readiness::assess(object, self.custom_rule.as_ref());
        if readiness.progress == Progress::Settling {
            let since = *self.empty_status_since.get_or_insert(now);
            if elapsed(since, now) >= CUSTOM_RESOURCE_SETTLE {
                readiness.progress = Progress::Done;
                readiness.message = format!(
                    "{} {:?} reports no status; taken as ready after {}s without change",
                    self.key.kind.to_lowercase(),
                    self.key.name,
                    CUSTOM_RESOURCE_SETTLE.as_secs()
                );
            } else {
                readiness.progress = Progress::Waiting;
            }
        } else {
            self.empty_status_since = None;
        }
        readiness
    }

    /// The allowance of incidents, `None` when incidents are evidence only (Jobs).
    fn allowance(&self, readiness: &Readiness) -> Option<u32> {
        match readiness.allowance {
            Allowance::PerReplica { replicas } => Some(
                self.policy
                    .failures_allowed_per_replica
                    .saturating_mul(replicas),
            ),
            Allowance::Backoff { .. } => None,
        }
    }

    fn record(
        &mut self,
        id: String,
        incident: Incident,
        terminal: bool,
        allowance: Option<u32>,
        now: DateTime<Utc>,
        deltas: &mut Vec<Delta>,
    ) {
        if !self.seen_incidents.insert(id) {
            return;
        }
        if terminal && self.terminal_incident.is_none() {
            self.terminal_incident = Some(incident.clone());
        }
        self.incidents.push(incident.clone());
        self.last_activity = Some(now);
        let count = u32::try_from(self.incidents.len()).unwrap_or(u32::MAX);
        let beyond = terminal || allowance.is_some_and(|allowed| count > allowed);
        let level = if beyond && self.policy.fail_mode != FailMode::IgnoreAndContinueDeployProcess {
            Level::Error
        } else {
            Level::Warning
        };
        deltas.push(self.delta(Change::Incident {
            incident,
            count,
            allowance,
            level,
        }));
    }

    /// Recomputes incidents, readiness, failure and status; returns what changed.
    fn refresh(&mut self, now: DateTime<Utc>) -> Vec<Delta> {
        let mut deltas = Vec::new();
        let readiness = self.readiness(now);
        let allowance = self.allowance(&readiness);
        let candidates: Vec<pods::Candidate> = self
            .current_pods()
            .flat_map(|pod| {
                pods::incidents(
                    pod,
                    &self.policy,
                    &self.probe_failures,
                    self.started_at,
                    now,
                )
            })
            .collect();
        for candidate in candidates {
            self.record(
                candidate.id,
                candidate.incident,
                candidate.terminal,
                allowance,
                now,
                &mut deltas,
            );
        }
        if let Some(signal) = &readiness.signal {
            let incident = Incident {
                reason: VerdictReason::CustomResourceFailed,
                message: signal.message.clone(),
                detail: VerdictDetail::original(signal.reason.clone()),
                previous_instance: false,
                observed_at: now,
            };
            self.record(
                signal.id.clone(),
                incident,
                false,
                allowance,
                now,
                &mut deltas,
            );
        }
        let sticky = self.policy.fail_mode == FailMode::FailWholeDeployProcessImmediately;
        if sticky && self.failure.is_none() {
            // Failing immediately means as soon as the allowance is exceeded: an incident seen in
            // the same pass as readiness (a crash noticed after its restart) still fails it.
            self.failure = self.detect_failure(&readiness, allowance);
        }
        let state = if self.failure.is_some() && sticky {
            State::Failed
        } else if readiness.progress == Progress::Done && !self.initial_lists_pending {
            // Ready again (HopeUntilEndOfDeployProcess recovery): what failed before no longer matters.
            self.failure = None;
            self.terminal_incident = None;
            self.inactive = false;
            State::Ready
        } else if let Some(failure) = self.detect_failure(&readiness, allowance) {
            if self.failure.is_none() {
                self.failure = Some(failure);
            }
            State::Failed
        } else {
            self.failure = None;
            if self.object.is_some() {
                State::Progressing
            } else {
                State::Pending
            }
        };
        let count = u32::try_from(self.incidents.len()).unwrap_or(u32::MAX);
        let failures = readiness.ready.and_then(|_| match readiness.allowance {
            Allowance::PerReplica { .. } => {
                allowance.map(|allowed| format!("{count}/{allowed} allowed"))
            }
            Allowance::Backoff { failed, limit } => Some(format!("{failed}/{limit} allowed")),
        });
        let status = ResourceStatus {
            state,
            message: match (&self.failure, state) {
                (Some(failure), State::Failed) => failure.message.clone(),
                (_, State::Progressing) if readiness.progress == Progress::Done => format!(
                    "{} (waiting for the first list of its related objects)",
                    readiness.message
                ),
                _ => readiness.message,
            },
            ready: readiness
                .ready
                .map(|(ready, desired)| format!("{ready}/{desired}")),
            failures,
            incidents: count,
        };
        if status != self.status {
            let previous = self.status.state;
            self.status = status.clone();
            self.last_activity = Some(now);
            deltas.push(self.delta(Change::Status {
                status: status.clone(),
            }));
            if state != previous {
                match (state, &self.failure) {
                    (State::Ready, _) => deltas.push(self.delta(Change::Ready {
                        message: status.message,
                    })),
                    (State::Failed, Some(failure)) => deltas.push(self.delta(Change::Failed {
                        failure: failure.clone(),
                    })),
                    _ => {}
                }
            }
        }
        deltas
    }

    fn detect_failure(&self, readiness: &Readiness, allowance: Option<u32>) -> Option<Failure> {
        let last_incident = self.incidents.last();
        if let Progress::Failed { reason, original } = &readiness.progress {
            let evidence = self.evidence(last_incident);
            return Some(Failure {
                kind: FailureKind::Terminal,
                reason: *reason,
                message: readiness.message.clone(),
                detail: VerdictDetail {
                    original_reason: original.clone(),
                    ..failing_container(&evidence)
                },
                evidence,
            });
        }
        if let Some(incident) = &self.terminal_incident {
            return Some(Failure {
                kind: FailureKind::Terminal,
                reason: incident.reason,
                message: incident.message.clone(),
                detail: incident.detail.clone(),
                evidence: self.evidence(Some(incident)),
            });
        }
        let count = self.incidents.len();
        if self.policy.fail_mode != FailMode::IgnoreAndContinueDeployProcess
            && let (Some(allowed), Some(incident)) = (allowance, last_incident)
            && count > allowed as usize
        {
            return Some(Failure {
                kind: FailureKind::AllowanceExceeded,
                reason: incident.reason,
                message: format!(
                    "{count} failures, {allowed} allowed: {}",
                    self.describe_incidents_like(incident)
                ),
                detail: incident.detail.clone(),
                evidence: self.evidence(Some(incident)),
            });
        }
        if self.inactive {
            let evidence = self.evidence(last_incident);
            return Some(Failure {
                kind: FailureKind::NoActivity,
                reason: VerdictReason::NoActivityTimeout,
                message: format!(
                    "no activity for {}: {}",
                    self.policy.no_activity_timeout, readiness.message
                ),
                detail: failing_container(&evidence),
                evidence,
            });
        }
        None
    }

    /// What `incident` and the incidents like it say together: for crashes, how often the
    /// container crashed and how its last instance ended.
    fn describe_incidents_like(&self, incident: &Incident) -> String {
        if incident.reason != VerdictReason::CrashLoopBackOff {
            return incident.message.clone();
        }
        let container = incident.detail.container.as_deref().unwrap_or_default();
        let crashes = self
            .incidents
            .iter()
            .filter(|other| {
                other.reason == VerdictReason::CrashLoopBackOff
                    && other.detail.container == incident.detail.container
            })
            .count();
        let times = if crashes == 1 { "once" } else { "times" };
        let crashes = if crashes == 1 {
            String::new()
        } else {
            format!("{crashes} ")
        };
        let how = match (
            &incident.detail.exit_code,
            &incident.detail.termination_reason,
        ) {
            (Some(code), Some(reason)) => format!(" (exit code {code}, last: {reason})"),
            (Some(code), None) => format!(" (exit code {code})"),
            _ => String::new(),
        };
        format!("container {container:?} crashed {crashes}{times}{how}")
    }

    /// The pod and container to show, and the Events about them (or about the resource itself).
    fn evidence(&self, incident: Option<&Incident>) -> Evidence {
        let (pod, container, previous_instance) = match incident {
            Some(incident) => (
                incident.detail.pod.clone(),
                incident.detail.container.clone(),
                // Judged on the pod as it is now: the log is read now, not when the incident was seen.
                self.current_pods()
                    .find(|pod| Some(pods::pod_name(pod)) == incident.detail.pod.as_deref())
                    .map_or(incident.previous_instance, |pod| {
                        pods::logs_of_previous_instance(pod, incident)
                    }),
            ),
            None => self
                .current_pods()
                .find_map(|pod| {
                    let status = pod.status.as_ref()?;
                    let container = status
                        .container_statuses
                        .iter()
                        .flatten()
                        .find(|container| !container.ready)?;
                    Some((
                        Some(pods::pod_name(pod).to_owned()),
                        Some(container.name.clone()),
                        false,
                    ))
                })
                .or_else(|| self.newest_job_pod())
                .unwrap_or((None, None, false)),
        };
        let about_us = |event: &&EventSummary| match &pod {
            Some(pod) => event.involved_name == *pod || event.involved_kind != "Pod",
            None => event.involved_kind != "Pod",
        };
        let of_the_failing_pod = |event: &&EventSummary| pod.as_ref() == Some(&event.involved_name);
        let related: Vec<EventSummary> = self
            .start_second_pod_events
            .iter()
            .filter(of_the_failing_pod)
            .chain(self.recent_events.iter().filter(about_us))
            .cloned()
            .collect();
        let skip = related.len().saturating_sub(EVIDENCE_EVENTS_PER_FAILURE);
        Evidence {
            pod,
            container,
            previous_instance,
            events: related.into_iter().skip(skip).collect(),
            log_lines: Vec::new(),
        }
    }
}

impl ResourceTracker {
    /// A failed Job's newest pod and its first container: the Job and its pods come from different
    /// watches, so the Job may be seen failed while the pod that failed it still looks running.
    fn newest_job_pod(&self) -> Option<(Option<String>, Option<String>, bool)> {
        if self.key.kind != "Job" {
            return None;
        }
        let pod = self
            .current_pods()
            .max_by_key(|pod| pod.metadata.creation_timestamp.clone())?;
        let container = pod.spec.as_ref()?.containers.first()?;
        Some((
            Some(pods::pod_name(pod).to_owned()),
            Some(container.name.clone()),
            false,
        ))
    }
}

/// The pod and container a failure report points at, as the detail of its verdict.
fn failing_container(evidence: &Evidence) -> VerdictDetail {
    VerdictDetail {
        pod: evidence.pod.clone(),
        container: evidence.container.clone(),
        ..VerdictDetail::default()
    }
}

/// When an Event last happened, relative to the start of tracking.
enum EventAge {
    /// Before the start's second: history.
    Older,
    /// In the start's second: history if it was there before tracking could watch.
    StartSecond,
    Later,
}

fn waiting_to_appear(key: &ResourceKey) -> String {
    format!("Waiting for {} {:?} to appear...", key.kind, key.name)
}

/// Whether `event` is about `pod` (by uid when the event names one, else by name).
fn is_about(event: &Event, pod: &Pod) -> bool {
    let involved = &event.involved_object;
    involved.kind.as_deref() == Some("Pod")
        && match involved.uid.as_deref() {
            Some(uid) => pod.metadata.uid.as_deref() == Some(uid),
            None => involved.name.as_deref() == pod.metadata.name.as_deref(),
        }
}
