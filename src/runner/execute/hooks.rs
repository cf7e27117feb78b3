//! Phase `upgrading` with hooks: helm runs the chart's hooks and waits for hook Jobs and Pods itself;
//! meanwhile the tracker follows them and their status, Kubernetes Events and logs are streamed like
//! any resource's (DESIGN §4). helm's exit decides the deploy; when a hook made it fail (failed, or
//! still running when helm gave up), the verdict names the hook and a report carries its evidence.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use kube::api::{Api, DynamicObject};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{DeployRun, Interrupted};
use crate::domain::event::{EventType, Level, NewEvent, ResourceRef};
use crate::domain::policy::PolicyDuration;
use crate::domain::verdict::{Verdict, VerdictDetail, VerdictReason};
use crate::runner::chart::LocalChart;
use crate::runner::helm::{HelmError, HelmSlot, ReleaseInfo};
use crate::runner::manifest_check::ManifestCheck;
use crate::tracker::core::{ResourceReport, State, TrackedResource, plan};
use crate::tracker::watch::{
    Deadlines, TrackOptions, TrackReport, Tracking, WatchHold, WatchHub, track,
};

const HOOK_ANNOTATION: &str = "helm.sh/hook";
/// The hook events `helm upgrade --install` runs (test, delete and rollback hooks run elsewhere).
const UPGRADE_HOOK_EVENTS: [&str; 4] =
    ["pre-install", "post-install", "pre-upgrade", "post-upgrade"];
/// After helm exits, how long tracking may take to catch up with hooks helm already saw finish
/// (both read the same watch events, helm may simply read them first).
const CATCH_UP: Duration = Duration::from_secs(2);

/// The hook Jobs and Pods of a rendered chart that `helm upgrade --install` runs and waits for.
pub(super) fn upgrade_hooks(resources: &[TrackedResource]) -> Vec<TrackedResource> {
    resources
        .iter()
        .filter(|resource| {
            matches!(
                (resource.api_version.as_str(), resource.kind.as_str()),
                ("v1", "Pod") | ("batch/v1", "Job")
            ) && hook_events(resource).is_some_and(|events| {
                events
                    .split(',')
                    .any(|event| UPGRADE_HOOK_EVENTS.contains(&event.trim()))
            })
        })
        .cloned()
        .collect()
}

fn hook_events(resource: &TrackedResource) -> Option<&str> {
    resource
        .annotations
        .get(HOOK_ANNOTATION)
        .map(String::as_str)
}

fn is_hook(hook: &TrackedResource, resource: &ResourceRef) -> bool {
    hook.kind == resource.kind
        && hook.name == resource.name
        && hook.namespace.as_deref().unwrap_or_default() == resource.namespace
}

/// How far tracking got with each hook, from the events it emitted.
#[derive(Debug, Default)]
struct HookProgress {
    /// `true` once settled (ready or failed); `false` while seen running.
    settled: HashMap<ResourceRef, bool>,
}

impl HookProgress {
    /// Takes an event of the hook tracking; `false` when it is not worth streaming: the tracking's
    /// own report (helm decides, not it), and status changes of a settled hook (helm deleting it
    /// per its `hook-delete-policy` is expected, not news).
    fn observe(&mut self, event: &NewEvent) -> bool {
        if event.kind == EventType::Report {
            return false;
        }
        let Some(resource) = &event.resource else {
            return true;
        };
        let settled = self.settled.get(resource).copied().unwrap_or(false);
        match event.kind {
            EventType::ResourceStatus if settled => return false,
            EventType::ResourceStatus => {
                let state = event.data.get("state").and_then(serde_json::Value::as_str);
                if state != Some("pending") {
                    let done = matches!(state, Some("ready" | "failed"));
                    self.settled.insert(resource.clone(), done);
                }
            }
            EventType::ResourceReady | EventType::ResourceFailed => {
                self.settled.insert(resource.clone(), true);
            }
            _ => {}
        }
        true
    }

    /// Whether a hook seen running has not been seen settled yet.
    fn catching_up(&self) -> bool {
        self.settled.values().any(|settled| !settled)
    }
}

/// When helm failed during its hooks: the verdict naming the hook that failed as tracking saw it
/// (with the tracker's reason), else the one still running when helm gave up (helm's own reason:
/// it timed out or lost the cluster while waiting for it).
fn hook_verdict(
    helm_error: &HelmError,
    report: &TrackReport,
    hooks: &[TrackedResource],
) -> Option<Verdict> {
    let verdict = |resource: &ResourceReport, detail: VerdictDetail, what: String| {
        let reference = ResourceRef::from(&resource.resource);
        let events = hooks
            .iter()
            .find(|hook| is_hook(hook, &reference))
            .and_then(hook_events)
            .unwrap_or_default();
        Verdict {
            reason: VerdictReason::HookFailed,
            resource: Some(reference.clone()),
            message: format!("hook {reference} ({events}){what}; {helm_error}"),
            detail,
        }
    };
    let failed = report.resources.iter().find_map(|resource| {
        let failure = resource.failure.as_ref()?;
        let detail = VerdictDetail {
            original_reason: Some(failure.reason.to_string()),
            ..failure.detail.clone()
        };
        Some(verdict(resource, detail, format!(": {}", failure.message)))
    });
    failed.or_else(|| {
        let running = report
            .resources
            .iter()
            .find(|resource| resource.status.state == State::Progressing)?;
        let what = format!(" had not finished: {}", running.status.message);
        let detail = VerdictDetail::original(helm_error.reason().to_string());
        Some(verdict(running, detail, what))
    })
}

/// UIDs of the hook objects already in the cluster: left by an earlier deploy, helm deletes them
/// (`before-hook-creation`) and creates new ones, which are the ones to follow.
async fn previous_uids(hub: &WatchHub, hooks: &[TrackedResource]) -> HashSet<String> {
    let mut uids = HashSet::new();
    for hook in hooks {
        let (Ok((api_resource, _)), Some(namespace)) = (
            hub.resolve(&hook.api_version, &hook.kind).await,
            hook.namespace.as_deref(),
        ) else {
            continue;
        };
        let api: Api<DynamicObject> =
            Api::namespaced_with(hub.client().clone(), namespace, &api_resource);
        match api.get_opt(&hook.name).await {
            Ok(found) => uids.extend(found.and_then(|object| object.metadata.uid)),
            // Unknown: at worst an old completed hook is reported ready until helm replaces it.
            Err(error) => tracing::warn!(hook = %hook.name, %error, "cannot read an existing hook"),
        }
    }
    uids
}

/// What `helm upgrade` is told about the manifest.
pub(super) enum UpgradePlan {
    /// Rendered beforehand with `helm template` (helm 3): what [`DeployRun::announce_plan`] gave.
    Rendered {
        hooks: Vec<TrackedResource>,
        watches: Vec<WatchHold>,
    },
    /// helm 4 hands it over before applying it.
    HandedOver(ManifestCheck),
}

/// The revision helm made, and the watches held for tracking it.
pub(super) struct Upgraded {
    pub release: ReleaseInfo,
    pub watches: Vec<WatchHold>,
}

/// Where the hand-over of a helm 4 upgrade stands.
enum HandOver {
    Awaited,
    /// Accepted, or not needed (rendered beforehand).
    Done,
    Refused(Box<Result<Verdict, Interrupted>>),
}

/// Why `helm upgrade` did not give a revision, and the verdict to record.
pub(super) struct UpgradeFailure {
    pub error: Option<HelmError>,
    pub verdict: Verdict,
    /// helm stopped before applying anything: nothing to repair.
    pub before_apply: bool,
}

impl UpgradeFailure {
    fn refused(verdict: Verdict) -> Self {
        UpgradeFailure {
            error: None,
            verdict,
            before_apply: true,
        }
    }
}

impl From<HelmError> for UpgradeFailure {
    fn from(error: HelmError) -> Self {
        UpgradeFailure {
            verdict: Verdict::new(error.reason(), error.to_string()),
            error: Some(error),
            before_apply: false,
        }
    }
}

/// The manifest, once helm hands it over; never, without a hand-over.
async fn handed_over(check: Option<&mut ManifestCheck>) -> std::io::Result<String> {
    match check {
        Some(check) => check.handed().await,
        None => std::future::pending().await,
    }
}

async fn next_event(tracking: Option<&mut Tracking>) -> Option<NewEvent> {
    match tracking {
        Some(tracking) => tracking.next_event().await,
        None => std::future::pending().await,
    }
}

impl DeployRun<'_> {
    /// `helm upgrade --install` while following the chart's hooks (from the rendered plan); stops
    /// following them once helm has exited.
    pub(super) async fn upgrade_following_hooks(
        &self,
        slot: &HelmSlot,
        chart: &LocalChart,
        plan: UpgradePlan,
    ) -> Result<Result<Upgraded, UpgradeFailure>, Interrupted> {
        let stop = self.halt.any.child_token();
        let (mut hooks, mut watches, mut check, mut hand_over) = match plan {
            UpgradePlan::Rendered { hooks, watches } => (hooks, watches, None, HandOver::Done),
            UpgradePlan::HandedOver(check) => {
                (Vec::new(), Vec::new(), Some(check), HandOver::Awaited)
            }
        };
        let mut tracking = self.follow_hooks(&hooks, stop.clone()).await;
        let mut progress = HookProgress::default();
        let post_render = check.as_ref().map(ManifestCheck::args).unwrap_or_default();
        let upgrade = self.upgrade(slot, chart, post_render);
        tokio::pin!(upgrade);
        let mut open = true;
        let upgraded = loop {
            tokio::select! {
                upgraded = &mut upgrade => break upgraded,
                handed = handed_over(check.as_mut()), if matches!(hand_over, HandOver::Awaited) => {
                    let Some(check) = check.as_mut() else { continue };
                    match self.take_over(handed).await {
                        Ok((taken_hooks, taken_watches)) => {
                            tracking = self.follow_hooks(&taken_hooks, stop.clone()).await;
                            (hooks, watches) = (taken_hooks, taken_watches);
                            hand_over = HandOver::Done;
                            if check.answer(true).await.is_err() {
                                tracing::warn!(deploy_id = %self.deploy.id, "helm left before its manifest was accepted");
                            }
                        }
                        Err(refusal) => {
                            hand_over = HandOver::Refused(Box::new(refusal));
                            let _gone = check.answer(false).await;
                        }
                    }
                },
                event = next_event(tracking.as_mut()), if open => match event {
                    Some(event) => self.forward_hook_event(event, &hooks, &mut progress).await,
                    None => open = false,
                },
            }
        };
        match hand_over {
            HandOver::Refused(refusal) => {
                return match *refusal {
                    Ok(verdict) => Ok(Err(UpgradeFailure::refused(verdict))),
                    Err(interrupted) => Err(interrupted),
                };
            }
            // helm stopped before it handed the manifest over: it applied nothing.
            HandOver::Awaited => {
                return Ok(upgraded
                    .map(|release| Upgraded { release, watches })
                    .map_err(|error| UpgradeFailure {
                        before_apply: true,
                        ..error.into()
                    }));
            }
            HandOver::Done => {}
        }
        let Some(mut tracking) = tracking else {
            return Ok(upgraded
                .map(|release| Upgraded { release, watches })
                .map_err(UpgradeFailure::from));
        };
        if open && !matches!(upgraded, Err(HelmError::Cancelled { .. })) {
            let catch_up = async {
                while progress.catching_up() {
                    let Some(event) = tracking.next_event().await else {
                        return;
                    };
                    self.forward_hook_event(event, &hooks, &mut progress).await;
                }
            };
            let _late = tokio::time::timeout(CATCH_UP, catch_up).await;
        }
        stop.cancel();
        while let Some(event) = tracking.next_event().await {
            self.forward_hook_event(event, &hooks, &mut progress).await;
        }
        let report = tracking.finish().await;
        let error = match upgraded {
            Ok(release) => return Ok(Ok(Upgraded { release, watches })),
            Err(error) => error,
        };
        let report = match report {
            Ok(report) => report,
            Err(track_error) => {
                tracing::warn!(deploy_id = %self.deploy.id, %track_error, "hook tracking failed");
                return Ok(Err(error.into()));
            }
        };
        let Some(verdict) = hook_verdict(&error, &report, &hooks) else {
            return Ok(Err(error.into()));
        };
        // The evidence of the failed hook (its last log lines and Events), since no tracking of the
        // revision follows to report it.
        let event = NewEvent::new(EventType::Report, verdict.message.clone())
            .level(Level::Error)
            .data(serde_json::to_value(&report).unwrap_or_default());
        if let Err(error) = self.emit(event).await {
            tracing::warn!(deploy_id = %self.deploy.id, %error, "hook report not recorded");
        }
        Ok(Err(UpgradeFailure {
            error: Some(error),
            verdict,
            before_apply: false,
        }))
    }

    /// The manifest helm handed over, planned and announced ([`DeployRun::announce_plan`]) before
    /// helm may apply it: its hooks and held watches. `Err`: it is refused (an invalid tracking
    /// policy, or the deploy cannot go on).
    async fn take_over(
        &self,
        handed: std::io::Result<String>,
    ) -> Result<(Vec<TrackedResource>, Vec<WatchHold>), Result<Verdict, Interrupted>> {
        let manifest = handed.map_err(|error| {
            Ok(Verdict::new(
                VerdictReason::HelmFailed,
                format!("cannot read the manifest helm handed over: {error}"),
            ))
        })?;
        let resources = plan(&manifest, &self.target.namespace, &self.deploy.tracking)
            .map_err(|error| Ok(Verdict::new(error.reason(), error.to_string())))?;
        self.announce_plan(&resources, "upgrade").await.map_err(Err)
    }

    /// Starts tracking the hooks; `None` (with a warning event) when they cannot be followed, which
    /// leaves helm's own waiting as the only judge.
    async fn follow_hooks(
        &self,
        hooks: &[TrackedResource],
        stop: CancellationToken,
    ) -> Option<Tracking> {
        if hooks.is_empty() {
            return None;
        }
        let hub = match self.runner.context.clusters.hub(&self.target.cluster).await {
            Ok(hub) => hub,
            Err(error) => {
                self.hook_warning(format!("hooks not followed: {error}"))
                    .await;
                return None;
            }
        };
        let remaining = self.remaining();
        // A hook helm has not reached yet (a post-upgrade Job while the pre-upgrade one runs) shows
        // no activity; helm's own hook timeout is the deploy's, so the tracker must not give up first.
        let hooks: Vec<TrackedResource> = hooks
            .iter()
            .cloned()
            .map(|mut hook| {
                hook.policy.no_activity_timeout = PolicyDuration(remaining);
                hook
            })
            .collect();
        let options = TrackOptions {
            deadlines: Deadlines {
                overall: remaining,
                ..Deadlines::default()
            },
            since: self.deploy.started_at,
            previous_uids: previous_uids(&hub, &hooks).await,
            before_apply: true,
            ..TrackOptions::default()
        };
        Some(track(&hub, hooks, options, stop))
    }

    /// Streams one event of the hook tracking, marked with the hook's events; a recording failure
    /// must not stop helm, so it is logged.
    async fn forward_hook_event(
        &self,
        mut event: NewEvent,
        hooks: &[TrackedResource],
        progress: &mut HookProgress,
    ) {
        if !progress.observe(&event) {
            return;
        }
        if let (Some(resource), Some(data)) = (&event.resource, event.data.as_object_mut())
            && let Some(events) = hooks
                .iter()
                .find(|hook| is_hook(hook, resource))
                .and_then(hook_events)
        {
            data.insert("hook".to_owned(), json!(events));
        }
        let recorded = match self.record_resource(&event).await {
            Ok(()) => self.emit(event).await,
            Err(error) => Err(error),
        };
        if let Err(error) = recorded {
            tracing::warn!(deploy_id = %self.deploy.id, %error, "hook event not recorded");
        }
    }

    async fn hook_warning(&self, message: String) {
        let event = NewEvent::new(EventType::TrackerWarning, message).level(Level::Warning);
        if let Err(error) = self.emit(event).await {
            tracing::warn!(deploy_id = %self.deploy.id, %error, "hook warning not recorded");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_manifest(manifest: &str, namespace: &str) -> Vec<TrackedResource> {
        plan(manifest, namespace, &Default::default()).unwrap()
    }

    const MANIFEST: &str = r#"---
apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
  annotations:
    helm.sh/hook: "pre-install, pre-upgrade"
---
apiVersion: batch/v1
kind: Job
metadata:
  name: nightly
---
apiVersion: v1
kind: Pod
metadata:
  name: smoke
  annotations:
    helm.sh/hook: test
---
apiVersion: v1
kind: Pod
metadata:
  name: warm-cache
  annotations:
    helm.sh/hook: post-upgrade
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  annotations:
    helm.sh/hook: pre-install
---
apiVersion: batch/v1
kind: Job
metadata:
  name: cleanup
  annotations:
    helm.sh/hook: pre-delete,pre-rollback
"#;

    fn names(resources: &[TrackedResource]) -> Vec<&str> {
        resources.iter().map(|r| r.name.as_str()).collect()
    }

    #[test]
    fn selects_the_hook_jobs_and_pods_that_an_upgrade_runs() {
        let resources = parse_manifest(MANIFEST, "prod");
        let hooks = upgrade_hooks(&resources);
        // Not the plain Job (tracked after the upgrade), not test or delete hooks, not a ConfigMap
        // hook (helm waits for nothing there).
        assert_eq!(names(&hooks), ["migrate", "warm-cache"]);
        assert_eq!(hooks[0].namespace.as_deref(), Some("prod"));
    }

    fn event(kind: EventType, name: &str, data: serde_json::Value) -> NewEvent {
        let resource = ResourceRef {
            kind: "Job".into(),
            namespace: "prod".into(),
            name: name.into(),
        };
        NewEvent::new(kind, "m").resource(resource).data(data)
    }

    #[test]
    fn progress_waits_for_hooks_seen_running_and_hides_what_follows_their_end() {
        let mut progress = HookProgress::default();
        assert!(progress.observe(&event(EventType::ResourceAdded, "migrate", json!({}))));
        assert!(progress.observe(&event(EventType::ResourceAdded, "warm", json!({}))));
        // Added but never seen in the cluster (a hook this upgrade does not run): nothing to wait for.
        assert!(!progress.catching_up());
        let running = json!({"state": "progressing"});
        assert!(progress.observe(&event(EventType::ResourceStatus, "migrate", running)));
        assert!(progress.catching_up());
        let ready = json!({"state": "ready"});
        assert!(progress.observe(&event(EventType::ResourceStatus, "migrate", ready)));
        assert!(progress.observe(&event(EventType::ResourceReady, "migrate", json!({}))));
        assert!(!progress.catching_up());
        // helm deletes a succeeded hook (`hook-succeeded`): not a status worth streaming.
        let deleted = json!({"state": "pending"});
        assert!(!progress.observe(&event(EventType::ResourceStatus, "migrate", deleted)));
        assert!(progress.observe(&event(EventType::PodStatus, "migrate", json!({}))));
        assert!(!progress.observe(&event(EventType::Report, "migrate", json!({}))));
    }

    #[test]
    fn the_hook_that_failed_or_kept_helm_waiting_becomes_the_verdict() {
        use crate::tracker::core::{Evidence, Failure, FailureKind, ResourceKey, ResourceStatus};
        let hooks = upgrade_hooks(&parse_manifest(MANIFEST, "prod"));
        let report = |failure: Option<Failure>, state: State| TrackReport {
            outcome: crate::tracker::watch::TrackOutcome::Cancelled,
            started_at: chrono::Utc::now(),
            finished_at: chrono::Utc::now(),
            resources: vec![ResourceReport {
                resource: ResourceKey::new("batch/v1", "Job", Some("prod"), "migrate"),
                status: ResourceStatus {
                    state,
                    message: "0 of 1 done".into(),
                    ready: None,
                    failures: None,
                    incidents: 0,
                },
                failure,
                incidents: Vec::new(),
            }],
            api_errors: 0,
            decided_at: None,
        };
        let helm_error = HelmError::Failed {
            command: "upgrade",
            reason: VerdictReason::HelmFailed,
            message: "UPGRADE FAILED: pre-upgrade hooks failed".into(),
        };
        assert!(hook_verdict(&helm_error, &report(None, State::Ready), &hooks).is_none());
        let running = hook_verdict(&helm_error, &report(None, State::Progressing), &hooks)
            .expect("the hook helm was waiting for");
        assert_eq!(running.reason, VerdictReason::HookFailed);
        assert_eq!(
            running.detail.original_reason.as_deref(),
            Some("HelmFailed")
        );
        assert_eq!(running.resource.unwrap().name, "migrate");
        assert!(
            running.message.starts_with(
                "hook Job prod/migrate (pre-install, pre-upgrade) had not finished: 0 of 1 done;"
            ),
            "{}",
            running.message
        );
        let failure = Failure {
            kind: FailureKind::Terminal,
            reason: VerdictReason::BackoffLimitExceeded,
            message: "Job has reached the specified backoff limit".into(),
            detail: VerdictDetail::original("BackoffLimitExceeded"),
            evidence: Evidence::default(),
        };
        let verdict = hook_verdict(&helm_error, &report(Some(failure), State::Failed), &hooks)
            .expect("the failed hook");
        assert_eq!(verdict.reason, VerdictReason::HookFailed);
        assert_eq!(
            verdict.detail.original_reason.as_deref(),
            Some("BackoffLimitExceeded")
        );
        let resource = verdict.resource.unwrap();
        assert_eq!(
            (resource.kind.as_str(), resource.name.as_str()),
            ("Job", "migrate")
        );
        assert!(
            verdict
                .message
                .starts_with("hook Job prod/migrate (pre-install, pre-upgrade): Job has"),
            "{}",
            verdict.message
        );
        assert!(verdict.message.contains("pre-upgrade hooks failed"));
    }
}
