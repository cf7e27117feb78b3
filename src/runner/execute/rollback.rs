//! Phase `rolling_back`: after a failure, `helm rollback` to the last good revision and tracking of
//! the revision it creates; a rollback interrupted by a dead process is resumed to its recorded
//! target.

use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{DeployRun, Flow, Interrupted, failed};
use crate::domain::deploy::Phase;
use crate::domain::event::{EventType, Level, NewEvent};
use crate::domain::verdict::Verdict;
use crate::runner::helm::{HelmError, HistoryEntry, ReleaseInfo};
use crate::store::deploys::{self, Finish};

impl DeployRun<'_> {
    /// A failed deploy: rolled back first when the request (or the server default) asks for it.
    pub(super) async fn after_failure(&self, failure: Verdict, revision: Option<i32>) -> Flow {
        if !(self.deploy.rollback_on_failure || self.runner.options.rollback_on_failure) {
            return Ok(failed(failure, revision));
        }
        self.enter_rollback(&failure).await?;
        let rolled_back_to = self.roll_back(revision, &self.halt.any).await?;
        Ok(Finish {
            rolled_back_to,
            ..failed(failure, revision)
        })
    }

    /// The `rolling_back` phase, recorded together with the failure it rolls back from.
    pub(super) async fn enter_rollback(&self, failure: &Verdict) -> Result<(), Interrupted> {
        self.writer.flush().await?;
        let events = &self.runner.context.events;
        let failure = &self.writer.redactor().redact_verdict(failure.clone());
        self.stored(|| async move {
            let mut tx = events.begin().await?;
            deploys::set_phase(&mut tx, self.deploy.id, Phase::RollingBack).await?;
            deploys::set_failure(&mut tx, self.deploy.id, failure).await?;
            events.commit(tx).await
        })
        .await
    }

    /// The newest good revision older than `failed` (any, when the failed one is unknown).
    pub(super) async fn last_good_revision(
        &self,
        failed: Option<i32>,
        stop: &CancellationToken,
    ) -> Result<Option<i32>, HelmError> {
        let history: Vec<HistoryEntry> = self
            .helm_json(self.helm().history(&self.target), stop)
            .await?;
        Ok(history
            .iter()
            .filter(|entry| matches!(entry.status.as_str(), "deployed" | "superseded"))
            .filter(|entry| failed.is_none_or(|failed| entry.revision < failed))
            .map(|entry| entry.revision)
            .max())
    }

    /// `helm rollback` to the last good revision, then tracking of the revision it creates; every
    /// step an event. Returns the revision returned to, if any.
    pub(super) async fn roll_back(
        &self,
        failed_revision: Option<i32>,
        stop: &CancellationToken,
    ) -> Result<Option<i32>, Interrupted> {
        let target = match self.last_good_revision(failed_revision, stop).await {
            Ok(Some(target)) => target,
            Ok(None) => {
                self.rollback_event(
                    EventType::RollbackFailed,
                    Level::Error,
                    "no earlier good revision to roll back to".into(),
                    json!({}),
                )
                .await?;
                return Ok(None);
            }
            Err(HelmError::Cancelled { .. }) => return Err(Interrupted::Halted),
            Err(error) => {
                self.rollback_event(
                    EventType::RollbackFailed,
                    Level::Error,
                    error.to_string(),
                    json!({"reason": error.reason()}),
                )
                .await?;
                return Ok(None);
            }
        };
        self.stored(|| async move {
            deploys::set_rollback_target(self.runner.context.events.pool(), self.deploy.id, target)
                .await
        })
        .await?;
        self.rollback_to(target, None, stop).await
    }

    /// `helm rollback` to `target`, then tracking of the revision it creates. `found`: what a
    /// resumed rollback found the release in.
    pub(super) async fn rollback_to(
        &self,
        target: i32,
        found: Option<&HistoryEntry>,
        stop: &CancellationToken,
    ) -> Result<Option<i32>, Interrupted> {
        let (message, data) = match found {
            None => (
                format!("rolling back to revision {target}"),
                json!({"to_revision": target}),
            ),
            Some(found) => (
                format!(
                    "resuming the rollback to revision {target}: the release is {} at revision {}",
                    found.status, found.revision
                ),
                json!({
                    "to_revision": target,
                    "resumed": true,
                    "repair": found.status.starts_with("pending"),
                    "status": found.status,
                    "revision": found.revision,
                }),
            ),
        };
        self.rollback_event(EventType::RollbackStarted, Level::Warning, message, data)
            .await?;
        let rollback = self.helm().rollback(&self.target, target, self.remaining());
        let restored = match self.run_helm(rollback, stop).await {
            Ok(_) => self.current_revision(stop).await,
            Err(error) => Err(error),
        };
        match restored {
            Ok(restored) => self.track_rollback(target, restored, stop).await,
            Err(HelmError::Cancelled { .. }) => Err(Interrupted::Halted),
            Err(error) => {
                self.rollback_event(
                    EventType::RollbackFailed,
                    Level::Error,
                    error.to_string(),
                    json!({"reason": error.reason(), "to_revision": target}),
                )
                .await?;
                Ok(None)
            }
        }
    }

    /// Tracks `restored`, the revision a rollback to `target` created, and records its verdict.
    pub(super) async fn track_rollback(
        &self,
        target: i32,
        restored: i32,
        stop: &CancellationToken,
    ) -> Result<Option<i32>, Interrupted> {
        match self.track(restored, None, stop).await? {
            Ok(()) => {
                self.rollback_event(
                    EventType::RollbackSucceeded,
                    Level::Info,
                    format!("rolled back to revision {target} (new revision {restored}), resources ready"),
                    json!({"to_revision": target, "revision": restored}),
                )
                .await?;
            }
            Err(rollback_verdict) => {
                self.rollback_event(
                    EventType::RollbackFailed,
                    Level::Error,
                    format!("rolled back to revision {target}, but: {}", rollback_verdict.message),
                    json!({"to_revision": target, "revision": restored, "verdict": rollback_verdict}),
                )
                .await?;
            }
        }
        Ok(Some(target))
    }

    /// A rollback whose process stopped: finished where helm got to. Done already (the newest
    /// revision is the rollback to the recorded target): tracked. Left `pending-*` or never
    /// started: helm rollback to the recorded target (not the newest deployed revision, which may
    /// be the failed one), then tracked.
    pub(super) async fn resume_rollback(
        &self,
        failed_revision: Option<i32>,
    ) -> Result<Option<i32>, Interrupted> {
        let stop = &self.halt.any;
        let Some(target) = self.deploy.rollback_target else {
            return self.roll_back(failed_revision, stop).await;
        };
        let history: Vec<HistoryEntry> = match self
            .helm_json(self.helm().history(&self.target), stop)
            .await
        {
            Ok(history) => history,
            Err(HelmError::Cancelled { .. }) => return Err(Interrupted::Halted),
            Err(error) => {
                self.rollback_event(
                    EventType::RollbackFailed,
                    Level::Error,
                    format!("cannot resume the rollback to revision {target}: {error}"),
                    json!({"reason": error.reason(), "to_revision": target}),
                )
                .await?;
                return Ok(None);
            }
        };
        let newest = history.into_iter().max_by_key(|entry| entry.revision);
        match newest {
            Some(entry)
                if entry.status == "deployed"
                    && entry.description == format!("Rollback to {target}")
                    && failed_revision.is_none_or(|failed| entry.revision > failed) =>
            {
                self.emit(
                    NewEvent::new(
                        EventType::HelmOutput,
                        format!(
                            "the rollback to revision {target} had completed (revision {}); tracking it",
                            entry.revision
                        ),
                    )
                    .data(json!({"command": "history", "to_revision": target, "revision": entry.revision})),
                )
                .await?;
                self.track_rollback(target, entry.revision, stop).await
            }
            found => self.rollback_to(target, found.as_ref(), stop).await,
        }
    }

    pub(super) async fn rollback_event(
        &self,
        kind: EventType,
        level: Level,
        message: String,
        data: serde_json::Value,
    ) -> Result<(), Interrupted> {
        self.emit(NewEvent::new(kind, message).level(level).data(data))
            .await
    }

    pub(super) async fn current_revision(
        &self,
        stop: &CancellationToken,
    ) -> Result<i32, HelmError> {
        let status: ReleaseInfo = self
            .helm_json(self.helm().status(&self.target), stop)
            .await?;
        Ok(status.version)
    }
}
